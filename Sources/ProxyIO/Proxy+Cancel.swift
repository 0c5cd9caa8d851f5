// Cancel requests: a client's CancelRequest (proxy-issued key) forwarded to the server it is on, with the
// real key, on a connection of its own; and the proxy's own cancels for statement_timeout.
import Foundation
import ProxyCore

extension Proxy {
    /// A CancelRequest with a proxy-issued key: send the real key to the server the client is on. The key's
    /// low byte names the worker that owns the client; another worker's key goes to that worker.
    func forwardCancel(processID: Int32, secretKey: Int32) {
        let owner = Int(processID & 0xff)
        if owner != index, owner < workers.count {
            logger.info("cancel request passed to its worker", metadata: ["worker": "\(owner)"])
            return workers.post(to: owner) { $0.forwardCancel(processID: processID, secretKey: secretKey) }
        }
        guard let client = cancelKeys[cancelKey(processID, secretKey)] else {
            logger.info("cancel request with unknown key ignored")
            return
        }
        if case .riding(let server) = client.phase {
            // Its statement has not started: the cancel goes when it does.
            return server.cancelWhenStarted(client)
        }
        if case .waitingForServer = client.phase, client.greeted, client.poolMode == .transaction, !client.heldBegin {
            // Its statement has not reached a server: it is cancelled here, before it starts.
            logger.info("cancel request for a client waiting for a server: its statement is cancelled", metadata: ["client": "\(client.label)"])
            return client.cancelWhileWaiting()
        }
        guard case .active(let server) = client.phase else { return }
        server.cancelInFlight = true
        logger.info("forwarding cancel", metadata: ["client": "\(client.label)", "server": "\(server.label)"])
        sendCancel(to: server)
    }

    /// A CancelRequest with the server's real key, on a connection of its own.
    func sendCancel(to server: ServerConnection) {
        if let f = CancelForwarder(proxy: self, target: server, address: server.address, tls: serverTLS(for: server.backend),
                                   processID: server.processID, secretKey: server.secretKey) {
            cancelForwarders.insert(f)
            server.cancelsSent += 1
            server.cancelsOutstanding += 1
        }
    }

    func cancelDone(_ f: CancelForwarder) { cancelForwarders.remove(f) }

    /// statement_timeout passed for the statement `client` runs on `server`: cancel it on the server. The
    /// server's cancel error becomes the client's statement-timeout error (ServerConnection).
    func statementTimedOut(client: ClientConnection, server: ServerConnection) {
        statementTimeouts += 1
        logger.notice("statement timeout: cancelling on the server", metadata: [
            "client": "\(client.label)", "server": "\(server.label)",
            "statement_timeout": "\(ConfigUnits.renderDuration(server.cancelledAfter))"])
        sendCancel(to: server)
    }
}
