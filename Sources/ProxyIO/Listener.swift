// The listening socket (libevent evconnlistener): accepts clients and hands them to the Proxy.
import CLibevent
import Foundation

struct ListenError: Error, CustomStringConvertible {
    let description: String
}

private let acceptCallback: evconnlistener_cb = { _, fd, sa, _, ctx in
    let listener = Unmanaged<Listener>.fromOpaque(ctx!).takeUnretainedValue()
    listener.proxy.accepted(fd: fd, peer: SocketOptions.peerName(sa.map { UnsafePointer($0) }))
}

/// Ownership: libevent holds an unretained pointer to the Listener; the Proxy keeps it alive and calls close().
final class Listener {
    /// Not weak: a weak reference gives the Proxy a side table, and every retain of it would take the slow path.
    /// The Proxy owns the listener and closes it before it goes.
    unowned(unsafe) let proxy: Proxy
    private var listener: OpaquePointer?

    init(proxy: Proxy, host: String, port: Int) throws {
        self.proxy = proxy
        guard let address = SocketAddress.resolve(host: host, port: port) else {
            throw ListenError(description: "cannot resolve listen_addr \(host)")
        }
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        let flags = UInt32(LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE)
        listener = address.withSockaddr { sa, len in
            evconnlistener_new_bind(proxy.loop.base, acceptCallback, ctx, flags, 1024, sa, len)
        }
        guard listener != nil else {
            throw ListenError(description: "cannot listen on \(host):\(port): \(String(cString: strerror(errno)))")
        }
    }

    func close() {
        if let l = listener { evconnlistener_free(l) }
        listener = nil
    }
}
