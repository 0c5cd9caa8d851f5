// Message type bytes of the Postgres v3 protocol, and the special codes of untyped startup-phase packets.
// Raw values are the ASCII type byte; comments name the letter.

/// Messages a client (frontend) sends after startup.
public enum FrontendMessageID: UInt8, Sendable {
    case bind = 66            // ascii: B
    case close = 67           // ascii: C
    case copyData = 100       // ascii: d
    case copyDone = 99        // ascii: c
    case copyFail = 102       // ascii: f
    case describe = 68        // ascii: D
    case execute = 69         // ascii: E
    case flush = 72           // ascii: H
    case functionCall = 70    // ascii: F
    case parse = 80           // ascii: P
    case password = 112       // ascii: p (also SASLInitialResponse, SASLResponse, GSSResponse)
    case query = 81           // ascii: Q
    case sync = 83            // ascii: S
    case terminate = 88       // ascii: X
}

/// Messages a server (backend) sends.
public enum BackendMessageID: UInt8, Sendable {
    case authentication = 82        // ascii: R
    case backendKeyData = 75        // ascii: K
    case bindComplete = 50          // ascii: 2
    case closeComplete = 51         // ascii: 3
    case commandComplete = 67       // ascii: C
    case copyData = 100             // ascii: d
    case copyDone = 99              // ascii: c
    case copyInResponse = 71        // ascii: G
    case copyOutResponse = 72       // ascii: H
    case copyBothResponse = 87      // ascii: W
    case dataRow = 68               // ascii: D
    case emptyQueryResponse = 73    // ascii: I
    case errorResponse = 69         // ascii: E
    case functionCallResponse = 86  // ascii: V
    case negotiateProtocolVersion = 118 // ascii: v
    case noData = 110               // ascii: n
    case noticeResponse = 78        // ascii: N
    case notificationResponse = 65  // ascii: A
    case parameterDescription = 116 // ascii: t
    case parameterStatus = 83       // ascii: S
    case parseComplete = 49         // ascii: 1
    case portalSuspended = 115      // ascii: s
    case readyForQuery = 90         // ascii: Z
    case rowDescription = 84        // ascii: T
}

/// The 32-bit code after the length of an untyped startup-phase packet.
public enum StartupCode {
    public static let protocolV3: Int32 = 196_608          // 3 << 16
    public static let cancelRequest: Int32 = 80_877_102    // 1234 << 16 | 5678
    public static let sslRequest: Int32 = 80_877_103       // 1234 << 16 | 5679
    public static let gssEncRequest: Int32 = 80_877_104    // 1234 << 16 | 5680
}

/// Transaction status carried by ReadyForQuery.
public enum TransactionStatus: UInt8, Sendable {
    case idle = 73           // ascii: I
    case inTransaction = 84  // ascii: T
    case failed = 69         // ascii: E
}
