// Client side of SCRAM-SHA-256: the proxy logs in to a Postgres server that asked for it,
// with a plaintext password or with ClientKey/ServerKey passed through from a client login.

/// Logs in to a server with SCRAM-SHA-256, as libpq's fe-auth-scram.c does (no channel binding).
/// Send `clientFirstMessage()` in SASLInitialResponse, feed the AuthenticationSASLContinue data to
/// `receiveServerFirst` and send the result in SASLResponse, then feed the AuthenticationSASLFinal
/// data to `receiveServerFinal`.
public struct SCRAMClientExchange: Sendable {
    /// What the proxy knows about the user's password.
    public enum Credential: Sendable {
        /// The plaintext password, and the keys derived from it at an earlier login when known:
        /// they are used when the server sends the same salt and iteration count (PBKDF2 costs
        /// milliseconds of CPU, which a proxy must not spend per server connection).
        case password(String, known: SCRAMDerivedKeys? = nil)
        /// ClientKey and ServerKey, e.g. from `SCRAMServerExchange.clientKey` and the auth_file secret.
        /// The server's salt and iteration count are then not needed.
        case keys(clientKey: [UInt8], serverKey: [UInt8])
    }

    enum State: Sendable {
        case initial
        case sentClientFirst(clientFirstBare: [UInt8])
        case sentClientFinal(expectedServerSignature: [UInt8])
        case succeeded
        case failed
    }

    private var state: State = .initial
    private let user: String
    private let credential: Credential
    private let crypto: CryptoProvider
    private let clientNonce: [UInt8]
    private let sendsUserName: Bool
    /// The keys derived from the password at this login (nil for `.keys`), for the next login's `known`.
    public private(set) var derivedKeys: SCRAMDerivedKeys?

    /// - Parameters:
    ///   - nonce: the client nonce, used as-is (printable ASCII, no comma); a test hook.
    ///     By default it is base64 of 18 random bytes.
    ///   - sendsUserName: put `n=<user>` in client-first-message. Postgres ignores it and libpq
    ///     sends `n=`, the default; RFC test vectors need the name.
    public init(user: String, credential: Credential, crypto: CryptoProvider, nonce: [UInt8]? = nil,
                sendsUserName: Bool = false) {
        self.user = user
        self.credential = credential
        self.crypto = crypto
        self.clientNonce = nonce ?? SCRAM.makeNonce(crypto)
        self.sendsUserName = sendsUserName
    }

    /// True once the server's signature has been verified.
    public var succeeded: Bool {
        switch state {
        case .succeeded: return true
        case .initial, .sentClientFirst, .sentClientFinal, .failed: return false
        }
    }

    /// client-first-message: `n,,n=,r=<nonce>`. Calling it again starts the exchange over.
    public mutating func clientFirstMessage() -> [UInt8] {
        let name = sendsUserName ? Self.saslName(user) : []
        let bare = SCRAMMessage.bytes("n=") + name + SCRAMMessage.bytes(",r=") + clientNonce
        state = .sentClientFirst(clientFirstBare: bare)
        return SCRAMMessage.bytes("n,,") + bare
    }

    /// Takes server-first-message (`r=...,s=...,i=...`); returns client-final-message (`c=biws,r=...,p=...`).
    public mutating func receiveServerFirst(_ message: [UInt8]) -> Result<[UInt8], AuthFailure> {
        switch state {
        case let .sentClientFirst(clientFirstBare):
            switch serverFirst(message, clientFirstBare: clientFirstBare) {
            case let .success((expected, clientFinal)):
                state = .sentClientFinal(expectedServerSignature: expected)
                return .success(clientFinal)
            case let .failure(failure):
                state = .failed
                return .failure(failure)
            }
        case .initial, .sentClientFinal, .succeeded, .failed:
            state = .failed
            return .failure(.malformed("unexpected server-first-message"))
        }
    }

    /// Takes server-final-message (`v=...`) and checks the server's signature.
    public mutating func receiveServerFinal(_ message: [UInt8]) -> Result<Void, AuthFailure> {
        switch state {
        case let .sentClientFinal(expected):
            let result = serverFinal(message, expected: expected)
            switch result {
            case .success: state = .succeeded
            case .failure: state = .failed
            }
            return result
        case .initial, .sentClientFirst, .succeeded, .failed:
            state = .failed
            return .failure(.malformed("unexpected server-final-message"))
        }
    }

    private mutating func serverFirst(_ message: [UInt8], clientFirstBare: [UInt8]) -> Result<([UInt8], [UInt8]), AuthFailure> {
        guard let attrs = SCRAMMessage.attributes(message[...]), !attrs.isEmpty else {
            return .failure(.malformed("invalid server-first-message"))
        }
        if attrs[0].name == UInt8(ascii: "m") {
            return .failure(.unsupported("mandatory SCRAM extensions are not supported"))
        }
        guard attrs.count == 3 else {
            return .failure(.malformed("invalid server-first-message"))
        }
        let nonce = attrs[0].value
        guard attrs[0].name == UInt8(ascii: "r"), SCRAMMessage.isPrintableNonce(nonce),
              nonce.count > clientNonce.count, nonce.starts(with: clientNonce) else {
            return .failure(.malformed("server nonce does not start with client nonce"))
        }
        guard attrs[1].name == UInt8(ascii: "s"), let salt = AuthBase64.decode(attrs[1].value), !salt.isEmpty else {
            return .failure(.malformed("invalid salt in server-first-message"))
        }
        guard attrs[2].name == UInt8(ascii: "i"), let iterations = SCRAMMessage.positiveInt(attrs[2].value) else {
            return .failure(.malformed("invalid iteration count in server-first-message"))
        }
        let clientKey: [UInt8]
        let serverKey: [UInt8]
        switch credential {
        case let .password(password, known):
            if let known, known.salt == salt, known.iterations == iterations {
                (clientKey, serverKey) = (known.clientKey, known.serverKey)
            } else {
                (clientKey, serverKey) = SCRAM.deriveKeys(password: password, salt: salt, iterations: iterations, crypto: crypto)
            }
            derivedKeys = SCRAMDerivedKeys(salt: salt, iterations: iterations, clientKey: clientKey, serverKey: serverKey)
        case let .keys(givenClientKey, givenServerKey):
            guard givenClientKey.count == 32, givenServerKey.count == 32 else {
                return .failure(.malformed("client and server keys must be 32 bytes"))
            }
            (clientKey, serverKey) = (givenClientKey, givenServerKey)
        }
        // c=biws is base64("n,,"): no channel binding.
        let withoutProof = SCRAMMessage.bytes("c=") + AuthBase64.encode(SCRAMMessage.bytes("n,,"))
            + SCRAMMessage.bytes(",r=") + Array(nonce)
        let authMessage = clientFirstBare + [SCRAMMessage.comma] + message + [SCRAMMessage.comma] + withoutProof
        let proof = SCRAM.clientProof(clientKey: clientKey, authMessage: authMessage, crypto: crypto)
        let expected = crypto.hmacSHA256(key: serverKey, data: authMessage)
        return .success((expected, withoutProof + SCRAMMessage.bytes(",p=") + AuthBase64.encode(proof)))
    }

    private func serverFinal(_ message: [UInt8], expected: [UInt8]) -> Result<Void, AuthFailure> {
        guard let attrs = SCRAMMessage.attributes(message[...]), attrs.count == 1 else {
            return .failure(.malformed("invalid server-final-message"))
        }
        switch attrs[0].name {
        case UInt8(ascii: "e"):
            if attrs[0].value.elementsEqual("invalid-proof".utf8) { return .failure(.wrongPassword) }
            return .failure(.malformed("server-final-message reports an error"))
        case UInt8(ascii: "v"):
            guard let signature = AuthBase64.decode(attrs[0].value) else {
                return .failure(.malformed("invalid server signature"))
            }
            guard AuthBytes.constantTimeEquals(signature, expected) else {
                return .failure(.malformed("incorrect server signature"))
            }
            return .success(())
        default:
            return .failure(.malformed("invalid server-final-message"))
        }
    }

    /// RFC 5802 saslname: "=" becomes "=3D" and "," becomes "=2C".
    static func saslName(_ user: String) -> [UInt8] {
        var out: [UInt8] = []
        for b in user.utf8 {
            switch b {
            case UInt8(ascii: "="): out += SCRAMMessage.bytes("=3D")
            case UInt8(ascii: ","): out += SCRAMMessage.bytes("=2C")
            default: out.append(b)
            }
        }
        return out
    }
}

/// ClientKey and ServerKey derived from a password with a server's salt and iteration count.
public struct SCRAMDerivedKeys: Sendable, Equatable {
    public let salt: [UInt8]
    public let iterations: Int
    public let clientKey: [UInt8]
    public let serverKey: [UInt8]
}
