// An idle server moving between workers: the worker that holds it duplicates its socket and passes what the
// proxy knows of its session; the worker whose clients wait builds a ServerConnection around it (Pool.adopt).
import Foundation
import ProxyCore

extension ServerConnection {
    /// Whether this idle server can move to another worker as it is: plain TCP (a TLS session stays with its
    /// loop) and nothing buffered. Its prepared statements go along (their names are the process's).
    var canHandOff: Bool {
        guard case .idle = phase else { return false }
        return stream.tlsDescription == nil && stream.inputLength == 0 && stream.outputLength == 0
    }

    /// Lets go of this idle server for another worker: the socket (duplicated) and what the proxy knows of the
    /// session go into the handoff; this connection closes without a Terminate and without giving back its slot.
    func handOff() -> ServerHandoff? {
        let fd = dup(stream.fd)
        guard fd >= 0 else { return nil }
        let handoff = ServerHandoff(fd: fd, backend: backend, address: address, openedAt: openedAt,
                                    processID: processID, secretKey: secretKey, parameters: parameters,
                                    sessionParams: sessionParams, statements: statements,
                                    staleStatements: staleStatements, preparedEpoch: preparedEpoch)
        phase = .closed
        stream.close()
        return handoff
    }
}

/// An idle, logged-in server on its way from one worker to another (the socket is a dup the receiver owns).
struct ServerHandoff {
    let fd: Int32
    let backend: BackendConfig
    let address: SocketAddress
    let openedAt: Double
    let processID: Int32
    let secretKey: Int32
    let parameters: [String: String]
    let sessionParams: [String: String]
    let statements: ServerStatementCache
    let staleStatements: Set<Int>
    let preparedEpoch: [Int: Int]
}
