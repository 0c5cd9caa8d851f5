// Server side of SCRAM-SHA-256: the proxy verifies a connecting client against an auth_file
// secret, as Postgres's auth-scram.c does (no channel binding).

/// Verifies a client with SCRAM-SHA-256. Feed it the SASLInitialResponse data, send back the
/// returned server-first-message in AuthenticationSASLContinue, feed it the SASLResponse data,
/// and send back the returned server-final-message in AuthenticationSASLFinal.
public struct SCRAMServerExchange: Sendable {
    enum State: Sendable {
        case awaitingClientFirst
        case awaitingClientFinal(gs2Header: [UInt8], clientFirstBare: [UInt8], serverFirst: [UInt8], nonce: [UInt8])
        case succeeded(clientKey: [UInt8])
        case failed
    }

    private var state: State = .awaitingClientFirst
    private let secret: SCRAMSecret
    private let crypto: CryptoProvider
    private let serverNonce: [UInt8]

    /// - Parameter nonce: the server's part of the nonce, used as-is (printable ASCII, no comma);
    ///   a test hook. By default it is base64 of 18 random bytes.
    public init(secret: SCRAMSecret, crypto: CryptoProvider, nonce: [UInt8]? = nil) {
        self.secret = secret
        self.crypto = crypto
        self.serverNonce = nonce ?? SCRAM.makeNonce(crypto)
    }

    /// After a successful exchange, `ClientKey = ClientProof XOR ClientSignature`. With it and
    /// the secret's ServerKey the proxy can log in to a server holding the same secret.
    public var clientKey: [UInt8]? {
        switch state {
        case let .succeeded(clientKey): return clientKey
        case .awaitingClientFirst, .awaitingClientFinal, .failed: return nil
        }
    }

    /// Takes client-first-message (`n,,n=user,r=nonce`); returns server-first-message (`r=...,s=...,i=...`).
    public mutating func receiveClientFirst(_ message: [UInt8]) -> Result<[UInt8], AuthFailure> {
        switch state {
        case .awaitingClientFirst:
            let result = clientFirst(message)
            switch result {
            case let .success((newState, serverFirst)):
                state = newState
                return .success(serverFirst)
            case let .failure(failure):
                state = .failed
                return .failure(failure)
            }
        case .awaitingClientFinal, .succeeded, .failed:
            state = .failed
            return .failure(.malformed("unexpected client-first-message"))
        }
    }

    /// Takes client-final-message (`c=biws,r=...,p=...`), verifies the proof, and returns
    /// server-final-message (`v=...`).
    public mutating func receiveClientFinal(_ message: [UInt8]) -> Result<[UInt8], AuthFailure> {
        switch state {
        case let .awaitingClientFinal(gs2Header, clientFirstBare, serverFirst, nonce):
            let result = clientFinal(message, gs2Header: gs2Header, clientFirstBare: clientFirstBare,
                                     serverFirst: serverFirst, nonce: nonce)
            switch result {
            case let .success((clientKey, serverFinal)):
                state = .succeeded(clientKey: clientKey)
                return .success(serverFinal)
            case let .failure(failure):
                state = .failed
                return .failure(failure)
            }
        case .awaitingClientFirst, .succeeded, .failed:
            state = .failed
            return .failure(.malformed("unexpected client-final-message"))
        }
    }

    private func clientFirst(_ message: [UInt8]) -> Result<(State, [UInt8]), AuthFailure> {
        // gs2-header: cbind-flag "," [authzid] ","
        guard let flag = message.first else { return .failure(.malformed("empty client-first-message")) }
        switch flag {
        case UInt8(ascii: "n"), UInt8(ascii: "y"):
            break
        case UInt8(ascii: "p"):
            return .failure(.unsupported("channel binding (SCRAM-SHA-256-PLUS) is not supported"))
        default:
            return .failure(.malformed("invalid channel binding flag in client-first-message"))
        }
        guard message.count >= 3, message[1] == SCRAMMessage.comma else {
            return .failure(.malformed("invalid gs2 header in client-first-message"))
        }
        if message[2] == UInt8(ascii: "a") {
            return .failure(.unsupported("authorization identity is not supported"))
        }
        guard message[2] == SCRAMMessage.comma else {
            return .failure(.malformed("invalid gs2 header in client-first-message"))
        }
        let gs2Header = Array(message[0..<3])
        let bare = message[3...]
        guard let attrs = SCRAMMessage.attributes(bare), attrs.count >= 2 else {
            return .failure(.malformed("invalid client-first-message"))
        }
        if attrs[0].name == UInt8(ascii: "m") {
            return .failure(.unsupported("mandatory SCRAM extensions are not supported"))
        }
        // Postgres reads n= but ignores it: the user name comes from the startup packet.
        guard attrs[0].name == UInt8(ascii: "n") else {
            return .failure(.malformed("client-first-message has no user name attribute"))
        }
        guard attrs[1].name == UInt8(ascii: "r"), SCRAMMessage.isPrintableNonce(attrs[1].value) else {
            return .failure(.malformed("client-first-message has no valid nonce"))
        }
        // Any further attributes are extensions, which Postgres skips.
        let nonce = Array(attrs[1].value) + serverNonce
        let serverFirst = SCRAMMessage.bytes("r=") + nonce + SCRAMMessage.bytes(",s=")
            + AuthBase64.encode(secret.salt) + SCRAMMessage.bytes(",i=\(secret.iterations)")
        let next = State.awaitingClientFinal(gs2Header: gs2Header, clientFirstBare: Array(bare),
                                             serverFirst: serverFirst, nonce: nonce)
        return .success((next, serverFirst))
    }

    private func clientFinal(_ message: [UInt8], gs2Header: [UInt8], clientFirstBare: [UInt8],
                             serverFirst: [UInt8], nonce: [UInt8]) -> Result<([UInt8], [UInt8]), AuthFailure> {
        guard let attrs = SCRAMMessage.attributes(message[...]), attrs.count >= 3 else {
            return .failure(.malformed("invalid client-final-message"))
        }
        guard attrs[0].name == UInt8(ascii: "c"), let binding = AuthBase64.decode(attrs[0].value) else {
            return .failure(.malformed("client-final-message has no valid channel binding attribute"))
        }
        guard binding == gs2Header else {
            return .failure(.malformed("channel binding data does not match client-first-message"))
        }
        guard attrs[1].name == UInt8(ascii: "r"), Array(attrs[1].value) == nonce else {
            return .failure(.malformed("nonce does not match"))
        }
        let last = attrs[attrs.count - 1]
        guard last.name == UInt8(ascii: "p"), attrs[2..<(attrs.count - 1)].allSatisfy({ $0.name != UInt8(ascii: "p") }) else {
            return .failure(.malformed("client-final-message must end with the proof"))
        }
        guard let proof = AuthBase64.decode(last.value), proof.count == 32 else {
            return .failure(.malformed("invalid client proof"))
        }
        // client-final-message-without-proof: everything before ",p=".
        let withoutProof = message[0..<(message.count - last.value.count - 3)]
        let authMessage = clientFirstBare + [SCRAMMessage.comma] + serverFirst + [SCRAMMessage.comma] + withoutProof
        let clientSignature = crypto.hmacSHA256(key: secret.storedKey, data: authMessage)
        let clientKey = AuthBytes.xor(proof, clientSignature)
        guard AuthBytes.constantTimeEquals(crypto.sha256(clientKey), secret.storedKey) else {
            return .failure(.wrongPassword)
        }
        let serverSignature = crypto.hmacSHA256(key: secret.serverKey, data: authMessage)
        return .success((clientKey, SCRAMMessage.bytes("v=") + AuthBase64.encode(serverSignature)))
    }
}
