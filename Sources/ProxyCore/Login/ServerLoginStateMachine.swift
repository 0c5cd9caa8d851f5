// The proxy logging in to a Postgres server, without sockets: answers whatever the server asks
// (trust, cleartext, md5, SCRAM-SHA-256) and collects ParameterStatus and BackendKeyData until ReadyForQuery.
import PGWire

/// What the proxy knows to log in as a user.
public enum ServerCredential: Sendable {
    case none
    case secret(Secret)
    /// SCRAM keys recovered from a client's login (pass-through for a SCRAM-only auth_file entry).
    case scramKeys(clientKey: [UInt8], serverKey: [UInt8])
}

public struct ServerLoginStateMachine {
    public enum State {
        case authenticating
        case scram(SCRAMClientExchange)
        case awaitingReady
        case ready
        case failed
    }

    public enum Action: Equatable {
        case none
        case send([UInt8])
        /// Login complete: the server's parameters and real cancel key.
        case ready(parameters: [String: String], processID: Int32, secretKey: Int32)
        /// Login failed: an ErrorResponse to hand to waiting clients, and a log reason.
        case fail(ErrorFields, reason: String)
    }

    public private(set) var state: State = .authenticating
    public private(set) var parameters: [String: String] = [:]
    private var key: (Int32, Int32) = (0, 0)
    public let user: String
    public let credential: ServerCredential
    let crypto: CryptoProvider
    /// SCRAM keys derived from the plaintext password at an earlier login, used when the server
    /// sends the same salt. The I/O layer may fill it any time before the server's SASLContinue
    /// (logins started together all find the keys the first of them derived).
    public var knownKeys: SCRAMDerivedKeys?
    /// SCRAM keys derived from the plaintext password at this login: worth keeping for the next.
    /// Safe to keep before the server has proved itself: they only ever answer the same salt.
    public private(set) var learnedKeys: SCRAMDerivedKeys?

    public init(user: String, credential: ServerCredential, crypto: CryptoProvider, knownKeys: SCRAMDerivedKeys? = nil) {
        self.user = user
        self.credential = credential
        self.crypto = crypto
        self.knownKeys = knownKeys
    }

    public mutating func received(_ message: BackendMessage) -> Action {
        switch message {
        case .authentication(let request): return authentication(request)
        case .parameterStatus(let name, let value):
            parameters[name] = value
            return .none
        case .backendKeyData(let pid, let secret):
            key = (pid, secret)
            return .none
        case .readyForQuery:
            guard case .awaitingReady = state else { return fail("ReadyForQuery before authentication completed") }
            state = .ready
            return .ready(parameters: parameters, processID: key.0, secretKey: key.1)
        case .error(let fields):
            state = .failed
            return .fail(fields, reason: "server refused login: \(fields.sqlState) \(fields.message)")
        case .notice, .negotiateProtocolVersion:
            return .none
        case .other(let type):
            return fail("unexpected message \(ProtocolViolation.describe(type)) during login")
        }
    }

    private mutating func authentication(_ request: AuthenticationRequest) -> Action {
        switch (request, state) {
        case (.ok, .authenticating):
            state = .awaitingReady
            return .none
        case (.ok, .scram(let exchange)):
            // Mutual authentication: the server must have proved it knows the secret (SASLFinal) first.
            guard exchange.succeeded else { return fail("server sent AuthenticationOk before completing SCRAM-SHA-256") }
            state = .awaitingReady
            return .none
        case (.cleartextPassword, .authenticating):
            guard case .secret(.plain(let p)) = credential else { return needPassword("cleartext") }
            return .send(ProxyMessages.password(p))
        case (.md5Password(let salt), .authenticating):
            guard case .secret(let s) = credential, let response = MD5Password.response(user: user, secret: s, salt: salt, crypto: crypto) else {
                return needPassword("md5")
            }
            return .send(ProxyMessages.password(response))
        case (.sasl(let mechanisms), .authenticating):
            guard mechanisms.contains("SCRAM-SHA-256") else { return fail("server offers no supported SASL mechanism: \(mechanisms)") }
            let c: SCRAMClientExchange.Credential
            switch credential {
            case .secret(.plain(let p)): c = .password(p, known: knownKeys)
            case .scramKeys(let ck, let sk): c = .keys(clientKey: ck, serverKey: sk)
            case .secret(.scram), .secret(.md5), .none: return needPassword("SCRAM-SHA-256")
            }
            var exchange = SCRAMClientExchange(user: user, credential: c, crypto: crypto)
            let first = exchange.clientFirstMessage()
            state = .scram(exchange)
            return .send(ProxyMessages.saslInitialResponse(mechanism: "SCRAM-SHA-256", data: first))
        case (.saslContinue(let data), .scram(var exchange)):
            switch exchange.receiveServerFirst(data) {
            case .success(let final):
                state = .scram(exchange)
                learnedKeys = exchange.derivedKeys
                return .send(ProxyMessages.saslResponse(final))
            case .failure(let f): return fail("SCRAM exchange with server failed: \(f)")
            }
        case (.saslFinal(let data), .scram(var exchange)):
            switch exchange.receiveServerFinal(data) {
            case .success:
                state = .scram(exchange)
                return .none
            case .failure(let f): return fail("server's SCRAM signature is invalid: \(f)")
            }
        case (.unsupported(let code), _):
            return fail("server requested unsupported authentication method \(code)")
        case (.ok, _), (.cleartextPassword, _), (.md5Password, _), (.sasl, _), (.saslContinue, _), (.saslFinal, _):
            return fail("unexpected authentication request \(request)")
        }
    }

    private mutating func needPassword(_ method: String) -> Action {
        state = .failed
        let fields = ErrorFields(fields: [
            UInt8(ascii: "S"): "FATAL", UInt8(ascii: "C"): SQLState.invalidPassword,
            UInt8(ascii: "M"): "switchyard has no usable secret for user \"\(user)\" to answer the server's \(method) authentication",
        ])
        return .fail(fields, reason: "no secret for server \(method) auth")
    }

    private mutating func fail(_ why: String) -> Action {
        state = .failed
        let fields = ErrorFields(fields: [UInt8(ascii: "S"): "FATAL", UInt8(ascii: "C"): SQLState.connectionFailure, UInt8(ascii: "M"): why])
        return .fail(fields, reason: why)
    }
}
