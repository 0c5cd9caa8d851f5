// The proxy's side of TLS negotiation with a Postgres server, without sockets: SSLRequest, the one-byte
// answer ('S' upgrades, 'N' falls back or fails per server_tls_sslmode), then the handshake's outcome.
import PGWire

public struct ServerTLSStateMachine {
    public enum State: Equatable {
        case connecting
        /// SSLRequest sent; waiting for 'S' or 'N'.
        case awaitingResponse
        case handshaking
        /// The startup packet (or cancel request) may go now.
        case ready(encrypted: Bool)
        case failed
    }

    public enum Action: Equatable {
        /// Send SSLRequest and read the one-byte answer.
        case sendSSLRequest
        /// Run the TLS handshake as the client (verifying the certificate as the mode says).
        case startTLS
        /// Negotiation is over: send the startup packet (or the cancel request).
        case proceed(encrypted: Bool)
        /// Give up on this connection; `reason` says why (it reaches clients in an 08001 error).
        case fail(reason: String)
    }

    public let mode: ServerTLSMode
    public private(set) var state: State = .connecting

    public init(mode: ServerTLSMode) {
        self.mode = mode
    }

    /// The TCP connection is up.
    public mutating func connected() -> Action {
        guard case .connecting = state else { return fail("connected twice") }
        if mode == .disable {
            state = .ready(encrypted: false)
            return .proceed(encrypted: false)
        }
        state = .awaitingResponse
        return .sendSSLRequest
    }

    /// The server's answer to SSLRequest; `trailingBytes` more were buffered after it (a server must not send any:
    /// they would be plaintext injected in front of the encrypted session).
    public mutating func responseReceived(_ byte: UInt8, trailingBytes: Int) -> Action {
        guard case .awaitingResponse = state else { return fail("unexpected data during TLS negotiation") }
        if byte == UInt8(ascii: "S") {
            guard trailingBytes == 0 else { return fail("received unencrypted data after SSL response") }
            state = .handshaking
            return .startTLS
        }
        if byte == UInt8(ascii: "N") {
            guard mode == .prefer else {
                return fail("server does not support TLS, but server_tls_sslmode = \(mode.rawValue) requires it")
            }
            state = .ready(encrypted: false)
            return .proceed(encrypted: false)
        }
        if byte == UInt8(ascii: "E") {
            return fail("server refused the SSL request with an error (a server older than Postgres 7.0?)")
        }
        return fail("received invalid response to SSL negotiation: \(ProtocolViolation.describe(byte))")
    }

    /// The TLS handshake (and the certificate checks the mode asks for) succeeded.
    public mutating func handshakeCompleted() -> Action {
        guard case .handshaking = state else { return fail("TLS handshake completed outside negotiation") }
        state = .ready(encrypted: true)
        return .proceed(encrypted: true)
    }

    /// The TLS handshake failed; `why` is OpenSSL's reason (with the certificate verification error, if any).
    public mutating func handshakeFailed(_ why: String) -> Action {
        fail("TLS handshake with the server failed: \(why)")
    }

    private mutating func fail(_ why: String) -> Action {
        state = .failed
        return .fail(reason: why)
    }
}
