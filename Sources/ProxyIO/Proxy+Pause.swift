// PAUSE and RESUME across workers: every worker stops handing out servers of the database, and the admin's
// PAUSE answers once no worker has one of them lent.
import PGWire
import ProxyCore

extension Proxy {
    func isPaused(_ database: String) -> Bool { pausedAll || pausedDatabases.contains(database) }

    /// PAUSE [db]: no server is handed out for `database` (all when nil); the admin's reply comes once every
    /// server of it is back in its pool (janitor).
    func pause(_ database: String?, by admin: ClientConnection) {
        workers.everywhere(from: self) { $0.applyPause(database) }
        logger.notice("paused", metadata: ["database": "\(database ?? "(all)")"])
        // The janitor replies once the database's servers are all back in every worker (never from inside the command).
        pauseWaiters.append((admin, database))
    }

    func applyPause(_ database: String?) {
        if let database { pausedDatabases.insert(database) } else { pausedAll = true }
    }

    /// RESUME [db]: clients waiting on a paused database get servers again, in every worker.
    func resume(_ database: String?) {
        workers.everywhere(from: self) { $0.applyResume(database) }
        logger.notice("resumed", metadata: ["database": "\(database ?? "(all)")"])
    }

    func applyResume(_ database: String?) {
        if let database { pausedDatabases.remove(database) } else {
            pausedAll = false
            pausedDatabases.removeAll()
        }
        for client in pausedClients where !isPaused(client.pool?.database ?? "") {
            pausedClients.remove(client)
            client.requestServer()
        }
    }

    /// Databases with a server lent to a client in this worker.
    func busyDatabases() -> Set<String> {
        Set(pools.values.filter { !$0.machine.active.isEmpty }.map(\.database))
    }

    /// Asks every worker which databases still have servers lent (after the PAUSE reached it: its mailbox is
    /// first in, first out), and answers the PAUSE commands whose database is idle everywhere.
    func finishPauses() {
        guard !pauseWaiters.isEmpty, !pauseCheckPending else { return }
        pauseCheckPending = true
        workers.gather(for: index, { $0.busyDatabases() }, then: { [unowned self] parts in
            pauseCheckPending = false
            let busy = parts.reduce(into: Set<String>()) { $0.formUnion($1) }
            pauseWaiters.removeAll { waiter in
                guard case .admin = waiter.client.phase else { return true }
                if waiter.database.map({ busy.contains($0) }) ?? !busy.isEmpty { return false }
                waiter.client.adminCommandFinished(AdminConsole.commandComplete("PAUSE"))
                return true
            }
        })
    }
}
