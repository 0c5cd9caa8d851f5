// Sends one CancelRequest, with a server's real key, on a fresh connection to that server (over TLS when
// server_tls_sslmode asks for it), then closes.
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

    init?(proxy: Proxy, address: SocketAddress, tls: ServerTLSSetup?, processID: Int32, secretKey: Int32) {
        self.proxy = proxy
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

    func streamReadable(_ stream: Stream) {}
    func streamWritable(_ stream: Stream) {}

    func streamEvent(_ stream: Stream, events: Int16) {
        if events & Int16(BEV_EVENT_CONNECTED) != 0 {
            // The server closes the connection after reading the request; flush and close on our side too.
            proxy.logger.debug("cancel request sent", metadata: ["server": "\(address)", "tls": "\(stream.tlsDescription ?? "off")"])
            stream.closeAfterFlush(packet)
        } else {
            proxy.logger.warning("cancel request not delivered", metadata: [
                "reason": "\(stream.failure ?? (events & Int16(BEV_EVENT_EOF) != 0 ? "server closed the connection" : String(cString: strerror(errno))))"])
            stream.close()
        }
        proxy.cancelDone(self)
    }

    /// Janitor: past the deadline.
    func giveUp() {
        proxy.logger.warning("cancel request not delivered", metadata: ["reason": "no answer within server_connect_timeout"])
        stream.close()
        proxy.cancelDone(self)
    }
}
