// The pool_size cap over all workers: each worker owns its own pools and servers, and asks here before it
// opens a server, so one (database, user, backend) never has more than pool_size servers in the process.
// Pure bookkeeping; the I/O layer keeps one behind a lock.

/// Server connections per pool key across workers, and which workers wait for one.
///
/// A worker whose clients wait and whose pool is at the process-wide cap asks to be woken (`acquire` returns
/// false and queues it); when a server of that key closes anywhere, `release` names the worker to wake. A worker
/// with an idle server closes it when `othersWaiting` says another worker needs the slot, so every worker's
/// clients are served even when the cap is smaller than the number of workers.
public struct PoolSlots {
    struct Entry {
        var used = 0
        /// Workers with clients waiting at the cap, first come first served, each once.
        var wanting: [Int] = []
    }

    private var entries: [String: Entry] = [:]

    public init() {}

    /// Worker `worker` wants to open one more server of `key`, whose cap is `limit`. True: it may (the slot is
    /// counted). False: the cap is reached; when `wait`, the worker is woken by a later `release`.
    public mutating func acquire(_ key: String, limit: Int, worker: Int, wait: Bool) -> Bool {
        var entry = entries[key] ?? Entry()
        defer { entries[key] = entry }
        if entry.used < limit {
            entry.used += 1
            entry.wanting.removeAll { $0 == worker }
            return true
        }
        if wait, !entry.wanting.contains(worker) { entry.wanting.append(worker) }
        return false
    }

    /// A server of `key` is gone (closed, or its connect failed): the worker to wake, if any waits.
    public mutating func release(_ key: String) -> Int? {
        guard var entry = entries[key] else { return nil }
        entry.used = max(0, entry.used - 1)
        let next = entry.wanting.isEmpty ? nil : entry.wanting.removeFirst()
        entries[key] = entry.used == 0 && entry.wanting.isEmpty ? nil : entry
        return next
    }

    /// Whether a worker other than `worker` waits for a slot of `key`.
    public func othersWaiting(_ key: String, besides worker: Int) -> Bool {
        entries[key]?.wanting.contains { $0 != worker } ?? false
    }

    /// An idle server of `key` moves from `worker` to the first other worker waiting for one (the slot goes with
    /// it, so the count does not change): that worker, no longer waiting; nil when none waits.
    public mutating func takeWaiter(_ key: String, besides worker: Int) -> Int? {
        guard let i = entries[key]?.wanting.firstIndex(where: { $0 != worker }) else { return nil }
        return entries[key]?.wanting.remove(at: i)
    }

    /// `worker` no longer needs a slot of `key` (its waiting clients left).
    public mutating func stopWaiting(_ key: String, worker: Int) {
        entries[key]?.wanting.removeAll { $0 == worker }
    }

    /// Waiting entries over all keys (a worker waiting for two pools counts twice).
    public var waitingWorkers: Int { entries.values.reduce(0) { $0 + $1.wanting.count } }

    /// Servers of `key` open or opening in all workers.
    public func used(_ key: String) -> Int { entries[key]?.used ?? 0 }
}
