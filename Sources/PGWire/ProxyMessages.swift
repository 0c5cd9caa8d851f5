// Messages the proxy writes itself: to clients (errors, auth requests, login replies) and to servers
// (startup, passwords, queries, cancel). Each returns the bytes ready to send.

/// SQLSTATE codes the proxy itself reports.
public enum SQLState {
    public static let protocolViolation = "08P01"
    public static let connectionFailure = "08006"
    public static let unableToConnect = "08001"
    public static let invalidPassword = "28P01"
    public static let invalidAuthorization = "28000"
    public static let tooManyConnections = "53300"
    public static let featureNotSupported = "0A000"
    public static let adminShutdown = "57P01"
    public static let queryCanceled = "57014"
    public static let readOnlySQLTransaction = "25006"
    public static let idleInTransactionTimeout = "25P03"
    public static let idleSessionTimeout = "57P05"
    public static let invalidParameterValue = "22023"
    public static let configFileError = "F0000"
    public static let internalError = "XX000"
}

public enum ProxyMessages {
    /// An ErrorResponse (or NoticeResponse with `notice: true`).
    public static func error(severity: String = "FATAL", code: String, message: String, detail: String? = nil, notice: Bool = false,
                             extra: [(UInt8, String)] = []) -> [UInt8] {
        var w = MessageWriter()
        w.begin(notice ? BackendMessageID.noticeResponse.rawValue : BackendMessageID.errorResponse.rawValue)
        for (field, value) in [("S", severity), ("V", severity), ("C", code), ("M", message)] {
            w.writeByte(UInt8(ascii: Unicode.Scalar(field)!))
            w.writeCString(value)
        }
        if let detail {
            w.writeByte(UInt8(ascii: "D"))
            w.writeCString(detail)
        }
        for (field, value) in extra {
            w.writeByte(field)
            w.writeCString(value)
        }
        w.writeByte(0)
        w.finish()
        return w.bytes
    }

    public static func authenticationOk() -> [UInt8] { authentication(code: 0, body: []) }
    public static func authenticationCleartext() -> [UInt8] { authentication(code: 3, body: []) }
    public static func authenticationMD5(salt: [UInt8]) -> [UInt8] { authentication(code: 5, body: salt) }
    public static func authenticationSASL(mechanisms: [String]) -> [UInt8] {
        var body: [UInt8] = []
        for m in mechanisms { body += Array(m.utf8) + [0] }
        return authentication(code: 10, body: body + [0])
    }
    public static func authenticationSASLContinue(_ data: [UInt8]) -> [UInt8] { authentication(code: 11, body: data) }
    public static func authenticationSASLFinal(_ data: [UInt8]) -> [UInt8] { authentication(code: 12, body: data) }

    private static func authentication(code: Int32, body: [UInt8]) -> [UInt8] {
        var w = MessageWriter()
        w.begin(BackendMessageID.authentication.rawValue)
        w.writeInt32(code)
        w.writeBytes(body)
        w.finish()
        return w.bytes
    }

    public static func parameterStatus(_ name: String, _ value: String) -> [UInt8] {
        var w = MessageWriter()
        w.begin(BackendMessageID.parameterStatus.rawValue)
        w.writeCString(name)
        w.writeCString(value)
        w.finish()
        return w.bytes
    }

    public static func backendKeyData(processID: Int32, secretKey: Int32) -> [UInt8] {
        var w = MessageWriter()
        w.begin(BackendMessageID.backendKeyData.rawValue)
        w.writeInt32(processID)
        w.writeInt32(secretKey)
        w.finish()
        return w.bytes
    }

    public static func readyForQuery(_ status: TransactionStatus) -> [UInt8] {
        [BackendMessageID.readyForQuery.rawValue, 0, 0, 0, 5, status.rawValue]
    }

    /// StartupMessage v3 sent to a server.
    public static func startup(parameters: [(String, String)]) -> [UInt8] {
        var w = MessageWriter()
        w.beginUntyped()
        w.writeInt32(StartupCode.protocolV3)
        for (k, v) in parameters {
            w.writeCString(k)
            w.writeCString(v)
        }
        w.writeByte(0)
        w.finish()
        return w.bytes
    }

    public static func cancelRequest(processID: Int32, secretKey: Int32) -> [UInt8] {
        var w = MessageWriter()
        w.beginUntyped()
        w.writeInt32(StartupCode.cancelRequest)
        w.writeInt32(processID)
        w.writeInt32(secretKey)
        w.finish()
        return w.bytes
    }

    /// SSLRequest: asks a server for TLS; it answers one byte, 'S' or 'N'.
    public static func sslRequest() -> [UInt8] {
        var w = MessageWriter()
        w.beginUntyped()
        w.writeInt32(StartupCode.sslRequest)
        w.finish()
        return w.bytes
    }

    /// PasswordMessage with a NUL-terminated password (cleartext or md5 response).
    public static func password(_ text: String) -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.password.rawValue)
        w.writeCString(text)
        w.finish()
        return w.bytes
    }

    public static func saslInitialResponse(mechanism: String, data: [UInt8]) -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.password.rawValue)
        w.writeCString(mechanism)
        w.writeInt32(Int32(data.count))
        w.writeBytes(data)
        w.finish()
        return w.bytes
    }

    public static func saslResponse(_ data: [UInt8]) -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.password.rawValue)
        w.writeBytes(data)
        w.finish()
        return w.bytes
    }

    public static func query(_ sql: String) -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.query.rawValue)
        w.writeCString(sql)
        w.finish()
        return w.bytes
    }

    /// CommandComplete with `tag` (e.g. "SET", "SHOW").
    public static func commandComplete(_ tag: String) -> [UInt8] {
        var w = MessageWriter()
        w.begin(BackendMessageID.commandComplete.rawValue)
        w.writeCString(tag)
        w.finish()
        return w.bytes
    }

    public static func terminate() -> [UInt8] { [FrontendMessageID.terminate.rawValue, 0, 0, 0, 4] }
}

/// Parses a client's SASLInitialResponse payload: mechanism name and the client-first-message.
public enum SASLInitialResponse {
    public static func parse(_ payload: [UInt8]) -> (mechanism: String, data: [UInt8])? {
        var r = MessageReader(payload)
        guard let mech = r.readCString(), let len = r.readInt32() else { return nil }
        if len == -1 { return (mech, []) }
        guard let data = r.readBytes(Int(len)), r.remaining == 0 else { return nil }
        return (mech, data)
    }
}
