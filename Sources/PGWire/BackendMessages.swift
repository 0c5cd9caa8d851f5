// Decoded forms of the few backend messages the proxy looks inside (login, ParameterStatus,
// BackendKeyData, ReadyForQuery, errors). Everything else is forwarded as bytes.

/// An Authentication ('R') request from a server.
public enum AuthenticationRequest: Equatable, Sendable {
    case ok
    case cleartextPassword
    case md5Password(salt: [UInt8])
    case sasl(mechanisms: [String])
    case saslContinue(data: [UInt8])
    case saslFinal(data: [UInt8])
    case unsupported(code: Int32)

    public init(payload: [UInt8]) throws(ProtocolViolation) {
        var r = MessageReader(payload)
        guard let code = r.readInt32() else { throw .malformedMessage(type: BackendMessageID.authentication.rawValue) }
        switch code {
        case 0: self = .ok
        case 3: self = .cleartextPassword
        case 5:
            guard let salt = r.readBytes(4) else { throw .malformedMessage(type: BackendMessageID.authentication.rawValue) }
            self = .md5Password(salt: salt)
        case 10:
            var mechanisms: [String] = []
            while let m = r.readCString(), !m.isEmpty { mechanisms.append(m) }
            self = .sasl(mechanisms: mechanisms)
        case 11: self = .saslContinue(data: r.readRest())
        case 12: self = .saslFinal(data: r.readRest())
        default: self = .unsupported(code: code)
        }
    }
}

/// Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter codes.
public struct ErrorFields: Equatable, Sendable {
    public var fields: [UInt8: String]

    public init(fields: [UInt8: String]) { self.fields = fields }

    public init(payload: [UInt8]) {
        var r = MessageReader(payload)
        var fields: [UInt8: String] = [:]
        while let code = r.readByte(), code != 0, let value = r.readCString() { fields[code] = value }
        self.fields = fields
    }

    public var severity: String { fields[UInt8(ascii: "V")] ?? fields[UInt8(ascii: "S")] ?? "ERROR" }
    public var sqlState: String { fields[UInt8(ascii: "C")] ?? "XX000" }
    public var message: String { fields[UInt8(ascii: "M")] ?? "" }
}

/// Backend messages read during a server login or state tracking.
public enum BackendMessage: Equatable, Sendable {
    case authentication(AuthenticationRequest)
    case parameterStatus(name: String, value: String)
    case backendKeyData(processID: Int32, secretKey: Int32)
    case readyForQuery(TransactionStatus)
    case error(ErrorFields)
    case notice(ErrorFields)
    case negotiateProtocolVersion
    case other(type: UInt8)

    public init(_ frame: Frame) throws(ProtocolViolation) {
        var r = MessageReader(frame.payload)
        switch BackendMessageID(rawValue: frame.type) {
        case .authentication?: self = .authentication(try AuthenticationRequest(payload: frame.payload))
        case .parameterStatus?:
            guard let n = r.readCString(), let v = r.readCString() else { throw .malformedMessage(type: frame.type) }
            self = .parameterStatus(name: n, value: v)
        case .backendKeyData?:
            guard let p = r.readInt32(), let s = r.readInt32() else { throw .malformedMessage(type: frame.type) }
            self = .backendKeyData(processID: p, secretKey: s)
        case .readyForQuery?:
            guard let b = r.readByte(), let status = TransactionStatus(rawValue: b) else { throw .malformedMessage(type: frame.type) }
            self = .readyForQuery(status)
        case .errorResponse?: self = .error(ErrorFields(payload: frame.payload))
        case .noticeResponse?: self = .notice(ErrorFields(payload: frame.payload))
        case .negotiateProtocolVersion?: self = .negotiateProtocolVersion
        default: self = .other(type: frame.type)
        }
    }
}
