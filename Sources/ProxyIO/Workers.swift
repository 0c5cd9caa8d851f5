// Several event loops in one process: each worker thread runs one Proxy (its own event loop, clients, pools and
// servers). Everything that crosses workers goes through this file: mailboxes, the process-wide pool_size cap and
// client count, gauges for /metrics, and gathering every worker's part of an admin view.
import CLibevent
import Foundation
import PGWire
import ProxyCore
import Synchronization

private let mailboxCallback: event_callback_fn = { _, _, ctx in
    Unmanaged<Mailbox>.fromOpaque(ctx!).takeUnretainedValue().drain()
}

/// Jobs for one worker's loop, posted from any thread; a pipe wakes the loop. Jobs run in the order posted.
/// Ownership: libevent holds an unretained pointer to the Mailbox; its Proxy keeps it alive for the loop's life.
final class Mailbox {
    private let lock = NSLock()
    private var queue: [() -> Void] = []
    private var fds: [Int32] = [-1, -1]
    private var event: OpaquePointer?

    init(loop: EventLoop) {
        guard pipe(&fds) == 0 else { fatalError("pipe() failed: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        event = event_new(loop.base, fds[0], Int16(EV_READ | EV_PERSIST), mailboxCallback,
                          Unmanaged.passUnretained(self).toOpaque())
        event_add(event, nil)
    }

    deinit {
        if let event { event_free(event) }
        close(fds[0])
        close(fds[1])
    }

    /// Runs `job` on the mailbox's loop (never inline, even when posted from that loop).
    func post(_ job: @escaping () -> Void) {
        lock.lock()
        let wake = queue.isEmpty
        queue.append(job)
        lock.unlock()
        if wake {
            var byte: UInt8 = 1
            _ = write(fds[1], &byte, 1)
        }
    }

    fileprivate func drain() {
        var sink = [UInt8](repeating: 0, count: 64)
        while read(fds[0], &sink, sink.count) > 0 {}
        lock.lock()
        let jobs = queue
        queue.removeAll(keepingCapacity: true)
        lock.unlock()
        for job in jobs { job() }
    }
}

/// Connection counts of one worker, refreshed by its janitor, for /metrics served by worker 0.
struct WorkerGauges {
    var clientsByState: [String: Int] = [:]
    /// "backend/state" -> servers.
    var servers: [String: Int] = [:]
}

/// The state shared by all workers of one process, behind one lock. Workers never touch each other's objects:
/// they post jobs to each other's mailboxes.
public final class Workers {
    public let count: Int
    /// Filled by `add` before any loop runs; read-only afterwards.
    private(set) var proxies: [Proxy] = []
    /// Prometheus series of every worker's stats registry: histograms and counters add up across workers.
    let collector = MetricsCollector()
    /// Prepared statements of all workers (one server-side name per distinct statement).
    let statements = SharedStatements(resultChangedError: ProxyMessages.error(
        severity: "ERROR", code: SQLState.featureNotSupported, message: cachedPlanMessage,
        extra: [(UInt8(ascii: "R"), "RevalidateCachedQuery")]))
    fileprivate let lock = NSLock()
    private var slots = PoolSlots()
    /// How many workers wait for a pool slot anywhere (kept under `lock`, read without it): the check every
    /// released server makes costs no lock while nobody waits.
    private let slotWaiters = Atomic<Int>(0)
    private var clientCount = 0
    private var gauges: [WorkerGauges]
    /// Round-robin position of the next accepted client (touched by worker 0 only).
    private var nextAccept = 0

    public init(count: Int) {
        self.count = max(1, count)
        gauges = Array(repeating: WorkerGauges(), count: self.count)
    }

    /// `workers = 0`: one per core.
    public static func resolvedCount(_ configured: Int) -> Int {
        configured > 0 ? configured : max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    func add(_ proxy: Proxy) {
        precondition(proxies.count < count, "more workers than configured")
        proxies.append(proxy)
    }

    // MARK: Messages between workers

    /// Runs `job` on worker `index`'s loop.
    func post(to index: Int, _ job: @escaping (Proxy) -> Void) {
        let proxy = proxies[index]
        proxy.mailbox.post { job(proxy) }
    }

    /// Runs `job` on every worker but `sender` (the sender does its own part inline).
    func broadcast(from sender: Int, _ job: @escaping (Proxy) -> Void) {
        for index in proxies.indices where index != sender { post(to: index, job) }
    }

    /// Runs `job` on `sender` now and on every other worker through its mailbox: state every worker keeps
    /// a copy of (backend health, the function catalog, paused databases).
    func everywhere(from sender: Proxy, _ job: @escaping (Proxy) -> Void) {
        job(sender)
        broadcast(from: sender.index, job)
    }

    /// Runs `build` on every worker (each on its own loop, after the jobs posted to it before), then `done` with
    /// the results in worker order on `requester`'s loop.
    func gather<T>(for requester: Int, _ build: @escaping (Proxy) -> T, then done: @escaping ([T]) -> Void) {
        let box = GatherBox<T>(count: proxies.count)
        for index in proxies.indices {
            post(to: index) { [self] proxy in
                if box.put(build(proxy), at: index) {
                    post(to: requester) { _ in done(box.results.map { $0! }) }
                }
            }
        }
    }

    /// The worker that takes the next accepted client (round robin; called by the accepting worker only).
    func nextAcceptWorker() -> Int {
        let index = nextAccept
        nextAccept = (nextAccept + 1) % count
        return index
    }

    // MARK: Counts across workers

    /// A client connected; returns the number of clients in the process, it included.
    func clientOpened() -> Int {
        lock.lock()
        defer { lock.unlock() }
        clientCount += 1
        return clientCount
    }

    func clientClosed() {
        lock.lock()
        clientCount -= 1
        lock.unlock()
    }

    /// May worker `worker` open one more server of pool `key` (cap `limit` over all workers)? When not and
    /// `wait`, the worker's `slotFreed(key)` runs once a server of `key` closes somewhere.
    func acquireSlot(_ key: String, limit: Int, worker: Int, wait: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let granted = slots.acquire(key, limit: limit, worker: worker, wait: wait)
        slotWaiters.store(slots.waitingWorkers, ordering: .relaxed)
        return granted
    }

    func releaseSlot(_ key: String) {
        lock.lock()
        let wake = slots.release(key)
        slotWaiters.store(slots.waitingWorkers, ordering: .relaxed)
        lock.unlock()
        if let wake { post(to: wake) { $0.slotFreed(key) } }
    }

    func othersWaitForSlot(_ key: String, besides worker: Int) -> Bool {
        guard count > 1, slotWaiters.load(ordering: .relaxed) > 0 else { return false }
        lock.lock()
        defer { lock.unlock() }
        return slots.othersWaiting(key, besides: worker)
    }

    /// The worker an idle server of `key` moves to (see PoolSlots.takeWaiter).
    func takeSlotWaiter(_ key: String, besides worker: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        let taken = slots.takeWaiter(key, besides: worker)
        slotWaiters.store(slots.waitingWorkers, ordering: .relaxed)
        return taken
    }

    func stopWaitingForSlot(_ key: String, worker: Int) {
        lock.lock()
        slots.stopWaiting(key, worker: worker)
        slotWaiters.store(slots.waitingWorkers, ordering: .relaxed)
        lock.unlock()
    }

    /// Transaction mode's cached greetings ("db\0user" -> ParameterStatus values), read at each login.
    struct Greetings {
        fileprivate let workers: Workers
        subscript(key: String) -> [String: String]? {
            get {
                workers.lock.lock()
                defer { workers.lock.unlock() }
                return workers.greetingCache[key]
            }
            nonmutating set {
                workers.lock.lock()
                workers.greetingCache[key] = newValue
                workers.lock.unlock()
            }
        }
    }

    fileprivate var greetingCache: [String: [String: String]] = [:]
    var greetings: Greetings { Greetings(workers: self) }

    func publish(_ g: WorkerGauges, worker: Int) {
        lock.lock()
        gauges[worker] = g
        lock.unlock()
    }

    /// The gauges every worker but `worker` published last.
    func gaugesOfOthers(than worker: Int) -> [WorkerGauges] {
        lock.lock()
        defer { lock.unlock() }
        return gauges.indices.filter { $0 != worker }.map { gauges[$0] }
    }
}

/// Results of one `gather`, filled by the workers in any order.
private final class GatherBox<T> {
    private let lock = NSLock()
    private(set) var results: [T?]
    private var missing: Int

    init(count: Int) {
        results = Array(repeating: nil, count: count)
        missing = count
    }

    /// Stores one worker's result; true for the last one.
    func put(_ value: T, at index: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        results[index] = value
        missing -= 1
        return missing == 0
    }
}
