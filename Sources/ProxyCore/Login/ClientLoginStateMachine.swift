// The client side of a login, without sockets: startup packet, TLS negotiation (accept 'S', refuse 'N',
// 28000 for plaintext under require), cancel requests and authentication (trust, md5, SCRAM-SHA-256,
// client certificate). It returns actions; ProxyIO sends, starts TLS and closes.
import PGWire

/// What a client asked for once it is authenticated.
public struct ClientLogin: Equatable, Sendable {
    public var user: String
    public var database: String
    /// Startup parameters other than user and database, in the order sent (application_name, options...).
    public var parameters: [(String, String)]
    /// SCRAM ClientKey recovered from the client's proof, for logging in to a server that holds the same secret.
    public var scramClientKey: [UInt8]?

    public static func == (a: ClientLogin, b: ClientLogin) -> Bool {
        a.user == b.user && a.database == b.database && a.scramClientKey == b.scramClientKey
            && a.parameters.map { $0.0 + "=" + $0.1 } == b.parameters.map { $0.0 + "=" + $0.1 }
    }
}

/// What the TLS handshake established about a client.
public struct TLSPeer: Equatable, Sendable {
    /// The client presented a certificate; it verified against client_tls_ca_file (else the handshake failed).
    public var hasCertificate: Bool
    /// The certificate's subject CommonName, if it has exactly one without NUL bytes.
    public var commonName: String?

    public init(hasCertificate: Bool, commonName: String?) {
        self.hasCertificate = hasCertificate
        self.commonName = commonName
    }
}

public struct ClientLoginStateMachine {
    public enum State {
        case awaitingStartup
        /// 'S' was sent: the TLS handshake runs before the next startup packet.
        case awaitingTLSHandshake
        case awaitingMD5(user: String, secret: Secret?, salt: [UInt8])
        case awaitingSASLInitial(user: String, exchange: SCRAMServerExchange, known: Bool)
        case awaitingSASLFinal(user: String, exchange: SCRAMServerExchange, known: Bool)
        case authenticated
        case failed
    }

    public enum Action: Equatable {
        /// Send these bytes and keep reading.
        case send([UInt8])
        /// Answer an SSLRequest/GSSENCRequest with this single byte and keep reading a startup packet.
        case refuseEncryption(UInt8)
        /// Answer an SSLRequest with 'S' and run the TLS handshake as the server; then report `tlsEstablished`.
        case acceptEncryption
        /// Nothing to send: keep reading.
        case none
        /// Close without a reply (nothing can be sent: the TLS handshake failed).
        case close(reason: String)
        /// Forward a cancel for this proxy-issued key, then close without reply.
        case cancel(processID: Int32, secretKey: Int32)
        /// Send this ErrorResponse, then close.
        case fail([UInt8], reason: String)
        /// Done: the client may have its server. Any bytes still to send come first.
        case authenticated(ClientLogin, send: [UInt8])
    }

    public private(set) var state: State = .awaitingStartup
    private var pending: ClientLogin?
    let authType: AuthType
    let secrets: (String) -> Secret?
    let crypto: CryptoProvider
    let scramSecretFor: (String, String) -> SCRAMSecret
    /// Per-process random bytes: an unknown user's fake SCRAM salt is derived from it and the user name,
    /// so it is the same on every attempt and does not reveal that the user does not exist.
    let mockNonce: [UInt8]
    /// With an auth_file, trust still requires the user to be listed in it (PgBouncer does the same).
    public var requireKnownUserForTrust = false
    /// client_tls_sslmode: whether SSLRequest gets 'S', and whether plaintext or certificate-less logins are refused.
    public var tlsMode: ClientTLSMode = .disable
    /// The TLS session, once established; nil while the connection is plaintext.
    public private(set) var tls: TLSPeer?

    /// - Parameters:
    ///   - secrets: the auth_file lookup (nil for an unknown user).
    ///   - scramSecretFor: turns a user's plaintext password into a SCRAM secret (the caller caches it).
    public init(authType: AuthType, crypto: CryptoProvider, secrets: @escaping (String) -> Secret?,
                scramSecretFor: @escaping (String, String) -> SCRAMSecret, mockNonce: [UInt8] = []) {
        self.mockNonce = mockNonce
        self.authType = authType
        self.crypto = crypto
        self.secrets = secrets
        self.scramSecretFor = scramSecretFor
    }

    /// A startup packet arrived; `trailingBytes` are buffered after it (a client must wait for the answer to
    /// SSLRequest, so bytes there would be plaintext slipped in before the handshake).
    public mutating func startupReceived(_ packet: StartupPacket, trailingBytes: Int = 0) -> Action {
        guard case .awaitingStartup = state else {
            return failProtocol(.unexpectedMessage(type: 0))
        }
        switch packet {
        case .sslRequest:
            guard tls == nil else { return failProtocol("SSLRequest received on a connection that already uses TLS") }
            if tlsMode == .disable { return .refuseEncryption(UInt8(ascii: "N")) }
            guard trailingBytes == 0 else { return failProtocol("received unencrypted data after SSL request") }
            state = .awaitingTLSHandshake
            return .acceptEncryption
        case .gssEncRequest:
            guard tls == nil else { return failProtocol("GSSENCRequest received on a connection that already uses TLS") }
            return .refuseEncryption(UInt8(ascii: "N"))
        case .cancel(let pid, let key):
            // A cancel key is its own credential: accepted with or without TLS, as Postgres and PgBouncer do.
            state = .failed
            return .cancel(processID: pid, secretKey: key)
        case .startup(let parameters):
            if tlsMode.requiresTLS && tls == nil {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.invalidAuthorization,
                                                 message: "TLS required: switchyard accepts only encrypted connections (client_tls_sslmode = \(tlsMode.rawValue)); connect with sslmode=require"),
                             reason: "plaintext login refused (TLS required)")
            }
            if tlsMode.requiresCertificate && tls?.hasCertificate != true {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.invalidAuthorization, message: "connection requires a valid client certificate"),
                             reason: "no client certificate")
            }
            var user = ""
            var database: String?
            var rest: [(String, String)] = []
            for (k, v) in parameters {
                if k == "user" {
                    user = v
                } else if k == "database" {
                    database = v
                } else if k == "replication" {
                    state = .failed
                    return .fail(ProxyMessages.error(code: SQLState.featureNotSupported, message: "replication connections are not supported by switchyard"),
                                 reason: "replication requested")
                } else {
                    rest.append((k, v))
                }
            }
            let login = ClientLogin(user: user, database: database ?? user, parameters: rest, scramClientKey: nil)
            pending = login
            return beginAuthentication(login)
        }
    }

    /// The TLS handshake that followed 'S' completed.
    public mutating func tlsEstablished(_ peer: TLSPeer) -> Action {
        guard case .awaitingTLSHandshake = state else { return failProtocol("TLS handshake outside SSL negotiation") }
        tls = peer
        state = .awaitingStartup
        return .none
    }

    /// The TLS handshake failed (bad ClientHello, wrong certificate, protocol mismatch): nothing more can be said.
    public mutating func tlsFailed(_ why: String) -> Action {
        state = .failed
        return .close(reason: "TLS handshake failed: \(why)")
    }

    private mutating func beginAuthentication(_ login: ClientLogin) -> Action {
        let secret = secrets(login.user)
        switch authType {
        case .cert:
            guard let peer = tls, peer.hasCertificate, let commonName = peer.commonName else {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.invalidAuthorization, message: "connection requires a valid client certificate"),
                             reason: "no client certificate")
            }
            guard commonName == login.user else {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.invalidAuthorization,
                                                 message: "certificate authentication failed for user \"\(login.user)\""),
                             reason: "certificate CommonName \"\(commonName)\" is not the user name")
            }
            return finish()
        case .trust:
            guard secret != nil || !requireKnownUserForTrust else {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.invalidAuthorization, message: "no such user: \"\(login.user)\" is not in auth_file"),
                             reason: "unknown user")
            }
            return finish()
        case .md5:
            if case .scram? = secret { return beginSCRAM(user: login.user, secret: secret) }
            let salt = crypto.randomBytes(4)
            state = .awaitingMD5(user: login.user, secret: secret, salt: salt)
            return .send(ProxyMessages.authenticationMD5(salt: salt))
        case .scramSHA256:
            if case .md5? = secret {
                // An md5 hash cannot drive SCRAM; fall back to md5 as PgBouncer does.
                let salt = crypto.randomBytes(4)
                state = .awaitingMD5(user: login.user, secret: secret, salt: salt)
                return .send(ProxyMessages.authenticationMD5(salt: salt))
            }
            return beginSCRAM(user: login.user, secret: secret)
        }
    }

    private mutating func beginSCRAM(user: String, secret: Secret?) -> Action {
        let scram: SCRAMSecret
        var known = true
        switch secret {
        case .scram(let s)?: scram = s
        case .plain(let p)?: scram = scramSecretFor(user, p)
        case .md5?, nil:
            // Unknown user: run the exchange against a random secret so the reply does not reveal it.
            known = false
            let salt = Array(crypto.sha256(Array(user.utf8) + mockNonce).prefix(16))
            scram = SCRAM.makeSecret(password: String(decoding: crypto.randomBytes(12).map { 65 + $0 % 26 }, as: UTF8.self),
                                     salt: salt, iterations: SCRAM.defaultIterations, crypto: crypto)
        }
        state = .awaitingSASLInitial(user: user, exchange: SCRAMServerExchange(secret: scram, crypto: crypto), known: known)
        return .send(ProxyMessages.authenticationSASL(mechanisms: ["SCRAM-SHA-256"]))
    }

    /// A 'p' message (PasswordMessage, SASLInitialResponse or SASLResponse) arrived.
    public mutating func passwordReceived(_ frame: Frame) -> Action {
        guard frame.type == FrontendMessageID.password.rawValue else {
            return failProtocol(.unexpectedMessage(type: frame.type))
        }
        switch state {
        case .awaitingMD5(let user, let secret, let salt):
            var r = MessageReader(frame.payload)
            guard let response = r.readCString() else { return failProtocol(.malformedMessage(type: frame.type)) }
            guard let secret, MD5Password.verify(user: user, secret: secret, salt: salt, response: response, crypto: crypto) else {
                return wrongPassword(user)
            }
            return finish()
        case .awaitingSASLInitial(let user, var exchange, let known):
            guard let (mechanism, data) = SASLInitialResponse.parse(frame.payload) else {
                return failProtocol(.malformedMessage(type: frame.type))
            }
            guard mechanism == "SCRAM-SHA-256" else {
                state = .failed
                return .fail(ProxyMessages.error(code: SQLState.protocolViolation, message: "client selected an invalid SASL authentication mechanism"),
                             reason: "bad SASL mechanism")
            }
            switch exchange.receiveClientFirst(data) {
            case .success(let serverFirst):
                state = .awaitingSASLFinal(user: user, exchange: exchange, known: known)
                return .send(ProxyMessages.authenticationSASLContinue(serverFirst))
            case .failure(let f): return scramFailed(user, f)
            }
        case .awaitingSASLFinal(let user, var exchange, let known):
            switch exchange.receiveClientFinal(frame.payload) {
            case .success(let serverFinal):
                guard known else { return wrongPassword(user) }
                pending?.scramClientKey = exchange.clientKey
                return finish(prefix: ProxyMessages.authenticationSASLFinal(serverFinal))
            case .failure(let f): return scramFailed(user, f)
            }
        case .awaitingStartup, .awaitingTLSHandshake, .authenticated, .failed:
            return failProtocol(.unexpectedMessage(type: frame.type))
        }
    }

    private mutating func finish(prefix: [UInt8] = []) -> Action {
        state = .authenticated
        return .authenticated(pending!, send: prefix)
    }

    private mutating func scramFailed(_ user: String, _ failure: AuthFailure) -> Action {
        switch failure {
        case .wrongPassword: return wrongPassword(user)
        case .malformed(let why), .unsupported(let why):
            state = .failed
            return .fail(ProxyMessages.error(code: SQLState.protocolViolation, message: "malformed SCRAM message: \(why)"), reason: "bad SCRAM message")
        }
    }

    private mutating func wrongPassword(_ user: String) -> Action {
        state = .failed
        return .fail(ProxyMessages.error(code: SQLState.invalidPassword, message: "password authentication failed for user \"\(user)\""),
                     reason: "wrong password")
    }

    private mutating func failProtocol(_ v: ProtocolViolation) -> Action {
        failProtocol(v.message)
    }

    private mutating func failProtocol(_ message: String) -> Action {
        state = .failed
        return .fail(ProxyMessages.error(code: SQLState.protocolViolation, message: message), reason: "protocol violation")
    }
}
