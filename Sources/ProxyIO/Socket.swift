// Address resolution and socket options: the one place the proxy makes socket syscalls itself
// (libevent does the reads and writes).
import CLibevent
import Foundation

/// A resolved TCP address.
public struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    public let description: String

    /// Resolves host:port (numeric or a name) with getaddrinfo; IPv4 and IPv6.
    public static func resolve(host: String, port: Int) -> SocketAddress? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var addr = SocketAddress(description: "\(host):\(port)")
        memcpy(&addr.storage, first.pointee.ai_addr, Int(first.pointee.ai_addrlen))
        addr.length = first.pointee.ai_addrlen
        return addr
    }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, Int32) -> T) -> T {
        var copy = storage
        return withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, Int32(length)) }
        }
    }
}

enum SocketOptions {
    /// Small protocol messages must not wait for Nagle.
    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The peer's address as text, for logs.
    static func peerName(_ sa: UnsafePointer<sockaddr>?) -> String {
        guard let sa else { return "?" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let len = socklen_t(sa.pointee.sa_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        guard getnameinfo(sa, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV) == 0 else { return "?" }
        return String(cString: host) + ":" + String(cString: serv)
    }
}
