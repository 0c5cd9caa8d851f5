// What a server connection holds of a session: the parameters SET on it, and the prepared statements it has
// (current, or stale after DDL or a failed batch).
import ProxyCore

extension ServerConnection {
    /// What the server forgets when a session-clearing statement ran on it.
    func forget(_ effect: SessionEffect) {
        switch effect {
        case .discardAll:
            sessionParams = [:]
            statements.removeAll()
            staleStatements = []
        case .resetAll: sessionParams = [:]
        case .deallocate(nil):
            statements.removeAll()
            staleStatements = []
        case .set, .reset, .discardTemp, .deallocate, .sqlPrepare, .listen, .unlisten, .advisoryLock, .advisoryUnlock,
             .advisoryUnlockAll, .createTemp, .declareWithHold, .closeCursor, .unknownSessionChange:
            break
        }
    }

    /// Session parameters as this server has them, for the keys `client` cares about: what was SET here,
    /// else the value the server reported in ParameterStatus (quoted as SQL).
    func effectiveParams(for client: [String: String]) -> [String: String] {
        var view = sessionParams
        for name in client.keys where view[name] == nil {
            if let reported = parameters.first(where: { $0.key.lowercased() == name })?.value {
                view[name] = SQLText.quote(reported)
            }
        }
        return view
    }

    /// Whether this server holds a current copy of statement `id` (marks it used). A copy prepared before the
    /// statement's result changed is stale.
    func hasCurrentStatement(_ id: Int) -> Bool {
        guard !staleStatements.contains(id) else { return false }
        if (preparedEpoch[id] ?? 0) < proxy.statementEpoch(id) {
            if statements.contains(id) { markStale(id) }
            return false
        }
        return statements.touch(id)
    }

    /// The server copy of statement `id` may be wrong: close and re-prepare it on next use.
    func markStale(_ id: Int) {
        statements.remove(id)
        staleStatements.insert(id)
    }
}
