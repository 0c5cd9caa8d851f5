// The HTTP endpoint (metrics_listen) on libevent's evhttp, in the proxy's event loop: /metrics (Prometheus
// text format), /health (process alive) and /ready (primary reachable and config loaded).
import CLibevent
import Foundation

/// One HTTP answer.
struct HTTPReply {
    var status: Int32
    var contentType: String
    var body: String
}

final class MetricsHTTP {
    private let http: OpaquePointer
    /// Answers a request path; nil is 404.
    let route: (String) -> HTTPReply?

    /// Binds `host:port`; throws when the address cannot be bound.
    init(base: OpaquePointer, host: String, port: Int, route: @escaping (String) -> HTTPReply?) throws {
        guard let http = evhttp_new(base) else { throw MetricsHTTPError(message: "evhttp_new failed") }
        guard evhttp_bind_socket(http, host, UInt16(port)) == 0 else {
            evhttp_free(http)
            throw MetricsHTTPError(message: "cannot listen on \(host):\(port) for metrics_listen: \(String(cString: strerror(errno)))")
        }
        self.http = http
        self.route = route
        evhttp_set_allowed_methods(http, UInt16(EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_HEAD.rawValue))
        // Ownership: unretained; the Proxy holds this object until it frees the evhttp in deinit.
        evhttp_set_gencb(http, metricsRequestCallback, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { evhttp_free(http) }

    /// `host:port` from metrics_listen ("127.0.0.1:9930", "[::1]:9930", ":9930" for every interface).
    static func parseListen(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    fileprivate func answer(_ request: OpaquePointer) {
        let uri = evhttp_request_get_evhttp_uri(request)
        let path = uri.flatMap { evhttp_uri_get_path($0) }.map { String(cString: $0) } ?? "/"
        let reply = route(path) ?? HTTPReply(status: 404, contentType: "text/plain; charset=utf-8",
                                             body: "not found: try /metrics, /health or /ready\n")
        evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", reply.contentType)
        let buffer = evbuffer_new()
        var body = reply.body
        body.withUTF8 { bytes in _ = evbuffer_add(buffer, bytes.baseAddress, bytes.count) }
        evhttp_send_reply(request, reply.status, reply.status == 200 ? "OK" : reply.status == 404 ? "Not Found" : "Service Unavailable", buffer)
        evbuffer_free(buffer)
    }
}

struct MetricsHTTPError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

private let metricsRequestCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Void = { request, ctx in
    guard let request, let ctx else { return }
    Unmanaged<MetricsHTTP>.fromOpaque(ctx).takeUnretainedValue().answer(request)
}
