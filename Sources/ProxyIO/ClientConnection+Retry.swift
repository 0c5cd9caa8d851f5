// Running a client's query again after the server's error was hidden from it: a read that reached a replica
// and failed with 25006 (or lost the replica before any reply) goes to the primary; a rider's statement
// cancelled by a cancel meant for a statement ahead of it is routed again.
import ProxyCore

extension ClientConnection {
    /// Safety net: a read sent to a replica failed with 25006 or lost its connection before any reply. The
    /// replica goes back (if still usable), the query goes back in front of the input, and it runs on the primary.
    func retryOnPrimary(_ query: [UInt8], from server: ServerConnection?, misroutedOn backend: String) {
        proxy.recordMisroute(backend: backend)
        log.warning("misrouted read retried on the primary", metadata: ["client": "\(label)"])
        runAgain(query, from: server, onPrimary: true)
    }

    /// This rider's statement was cancelled by a request meant for a statement ahead of it on `server`: the
    /// error was hidden, and the query goes back in front of the input and is routed again.
    func retryAfterStrayCancel(_ query: [UInt8], from server: ServerConnection) {
        log.info("statement hit by a cancel meant for another client's: running it again", metadata: ["client": "\(label)", "server": "\(server.label)"])
        runAgain(query, from: server, onPrimary: false)
    }

    /// `server` (if this client is on it) goes back, the query goes back in front of the input and is routed.
    private func runAgain(_ query: [UInt8], from server: ServerConnection?, onPrimary: Bool) {
        if let server, case .active(let current) = phase, current === server {
            server.retryable.clear()
            phase = .idle
            server.clientDone()
        } else if case .active = phase {
            phase = .idle
        }
        guard case .idle = phase else { return }
        remaining = 0
        stream.prepend(query)
        forcePrimary = onPrimary
        requestServer()
    }
}
