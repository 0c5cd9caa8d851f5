// Protocol-level prepared statements of the whole process (transaction mode): one id, and so one server-side
// name ("sy_<id>"), per distinct statement in every worker, so a server prepared in one worker can serve clients
// of another. Shared by the workers behind one lock; each worker caches what never changes for an id.
import Foundation
import PGWire
import ProxyCore

final class SharedStatements {
    private let lock = NSLock()
    private var registry = StatementRegistry()
    /// Statements some server parsed without error: a client's Parse of one of them can be answered locally.
    private var valid: Set<Int> = []
    /// Bumped when a server reports "cached plan must not change result type" for a statement.
    private var epochs: [Int: Int] = [:]
    /// The server's own "cached plan must not change result type" error, replayed to clients that have not seen it.
    private var resultChanged: [UInt8]

    init(resultChangedError: [UInt8]) {
        resultChanged = resultChangedError
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func id(for key: StatementKey) -> Int { locked { registry.id(for: key) } }

    func key(for id: Int) -> StatementKey? { locked { registry.key(for: id) } }

    func knownValid(_ key: StatementKey) -> Int? {
        locked {
            guard let id = registry.existingID(for: key), valid.contains(id) else { return nil }
            return id
        }
    }

    func markValid(_ ids: [Int]) { locked { valid.formUnion(ids) } }

    func epoch(_ id: Int) -> Int { locked { epochs[id] ?? 0 } }

    func bumpEpoch(_ id: Int) -> Int {
        locked {
            let next = (epochs[id] ?? 0) + 1
            epochs[id] = next
            return next
        }
    }

    var resultChangedError: [UInt8] {
        get { locked { resultChanged } }
        set { locked { resultChanged = newValue } }
    }
}
