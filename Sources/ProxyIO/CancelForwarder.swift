// Sends one CancelRequest, with a server's real key, on a fresh connection to that server (over TLS when
// server_tls_sslmode asks for it), and waits for the server to close it: Postgres closes the connection once
// it has signalled the backend. Until then the cancelled server connection is not handed to another client
// (ServerConnection.cancelsOutstanding): a cancel still on its way would hit that client's statement.
import CLibevent
import Foundation
import PGWire

final class CancelForwarder: StreamHandler, Hashable {
    unowned let proxy: Proxy
    let stream: Stream
    let packet: [UInt8]
    let address: String
    /// server_connect_timeout from now: a server that never answers (connect, SSLRequest, handshake) is given up.
    let deadline: Double
    /// The server connection whose statement is being cancelled (gone if it closed meanwhile).
    weak var target: ServerConnection?
    /// The request was written; what follows is the server closing the connection.
    private var sent = false
    private var finished = false

    init?(proxy: Proxy, target: ServerConnection, address: SocketAddress, tls: ServerTLSSetup?, processID: Int32, secretKey: Int32) {
        self.proxy = proxy
        self.target = target
        self.packet = ProxyMessages.cancelRequest(processID: processID, secretKey: secretKey)
        self.address = address.description
        self.deadline = monotonicNow() + proxy.config.proxy.serverConnectTimeout
        let fd = socket(Int32(address.storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        evutil_make_socket_nonblocking(fd)
        stream = Stream(loop: proxy.loop, fd: fd, handler: DummyHandler.shared)
        stream.handler = self
        guard stream.connect(to: address, tls: tls) else {
            stream.close()
            return nil
        }
    }

    static func == (a: CancelForwarder, b: CancelForwarder) -> Bool { a === b }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    func streamReadable(_ stream: Stream) { stream.drain(stream.inputLength) }
    func streamWritable(_ stream: Stream) {}

    func streamEvent(_ stream: Stream, events: Int16) {
        if events & Int16(BEV_EVENT_CONNECTED) != 0 {
            sent = true
            stream.write(packet)
            return
        }
        if sent {
            // Postgres reads the request, signals the backend, and closes: the cancel has landed.
            proxy.logger.debug("cancel request delivered", metadata: ["server": "\(address)", "tls": "\(stream.tlsDescription ?? "off")"])
        } else {
            proxy.logger.warning("cancel request not delivered", metadata: [
                "reason": "\(stream.failure ?? (events & Int16(BEV_EVENT_EOF) != 0 ? "server closed the connection" : String(cString: strerror(errno))))"])
        }
        finish()
    }

    /// Janitor: past the deadline.
    func giveUp() {
        proxy.logger.warning(sent ? "cancel request unconfirmed" : "cancel request not delivered",
                             metadata: ["reason": "no answer within server_connect_timeout"])
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        stream.close()
        target?.cancelFinished()
        proxy.cancelDone(self)
    }
}
