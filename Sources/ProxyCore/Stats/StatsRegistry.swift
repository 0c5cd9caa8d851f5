// The single owner of a worker's statistics: per query fingerprint, per backend and per database, fed one
// StatementSample per finished statement. Pure (the clock is passed in); registries of several workers merge for
// display. Views (admin rows, summary line) are in StatsRows.swift, Prometheus in StatsMetrics.swift.

import Prometheus

/// What the I/O layer reports for each finished statement. Built without allocating: the strings are the
/// connection's own (database, backend name), and the query text is passed separately, lazily.
public struct StatementSample: Sendable {
    /// How a statement ended.
    public enum Outcome: Equatable, Sendable {
        case ok
        case error(sqlstate: String)
        /// Cancelled by the proxy's statement timeout.
        case timeout

        /// "ok", "error" or "timeout", as logs and metrics print it.
        public var name: String {
            switch self {
            case .ok: return "ok"
            case .error: return "error"
            case .timeout: return "timeout"
            }
        }

        /// Errors and timeouts count as failed statements.
        public var failed: Bool {
            switch self {
            case .ok: return false
            case .error, .timeout: return true
            }
        }
    }

    /// `Fingerprint.id` of the statement.
    public var fingerprint: UInt64
    public var database: String
    /// The backend's name ("primary", or NAME of [replica.NAME]).
    public var backend: String
    /// The backend's role when the statement ran; it is also the route.
    public var role: BackendRole
    public var micros: UInt64
    /// Rows returned or affected.
    public var rows: UInt64
    public var outcome: Outcome
    /// Bytes from the client for this statement (SHOW STATS total_received).
    public var bytesReceived: UInt64
    /// Bytes to the client for this statement (total_sent).
    public var bytesSent: UInt64
    /// Microseconds the client waited for a server before this statement ran (total_wait_time); 0 when none.
    public var waitMicros: UInt64
    /// On the statement that ended a transaction, the transaction's microseconds (total_xact_count, total_xact_time);
    /// a statement outside a transaction block is its own transaction and passes its own duration. nil otherwise.
    public var transactionMicros: UInt64?

    public init(fingerprint: UInt64, database: String, backend: String, role: BackendRole, micros: UInt64,
                rows: UInt64 = 0, outcome: Outcome = .ok, bytesReceived: UInt64 = 0, bytesSent: UInt64 = 0,
                waitMicros: UInt64 = 0, transactionMicros: UInt64? = nil) {
        self.fingerprint = fingerprint
        self.database = database
        self.backend = backend
        self.role = role
        self.micros = micros
        self.rows = rows
        self.outcome = outcome
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.waitMicros = waitMicros
        self.transactionMicros = transactionMicros
    }
}

/// The registry's sizes and periods (from stats_window, stats_period, stats_max_fingerprints).
public struct StatsSettings: Equatable, Sendable {
    /// Seconds of the sliding window (stats_window).
    public var window: Double
    /// Slots of the window; a read covers the last (window - window / slotCount) to window seconds.
    public var slotCount: Int
    /// SHOW STATS averaging period and the summary line's period (stats_period); 0 or less averages over 60 s.
    public var period: Double
    /// Fingerprints kept (stats_max_fingerprints). When full, a new fingerprint replaces the one with the least
    /// total time: established heavy statements stay, the long tail of rare ones takes turns.
    public var maxFingerprints: Int
    /// Characters of normalised text kept per fingerprint.
    public var queryTextLimit: Int

    public init(window: Double = 60, slotCount: Int = 6, period: Double = 60, maxFingerprints: Int = 1000,
                queryTextLimit: Int = 300) {
        precondition(maxFingerprints > 0, "stats need room for one fingerprint")
        self.window = window
        self.slotCount = slotCount
        self.period = period > 0 ? period : 60
        self.maxFingerprints = maxFingerprints
        self.queryTextLimit = queryTextLimit
    }
}

/// Rows in insertion order, found by key and updated in place (no copy of a row on the hot path).
struct KeyedRows<Key: Hashable & Sendable, Row: Sendable>: Sendable {
    private(set) var keys: [Key] = []
    var rows: [Row] = []
    private var index: [Key: Int] = [:]
    /// The key looked up last and its position: consecutive statements mostly share their database and backend
    /// (and often their fingerprint), and comparing a key costs less than hashing it.
    private var lastKey: Key?
    private var lastPosition = 0

    func position(of key: Key) -> Int? {
        if let lastKey, lastKey == key { return lastPosition }
        return index[key]
    }

    /// The position of `key`'s row, appending `make()` when the key is new.
    mutating func position(of key: Key, orAppend make: () -> Row) -> Int {
        if let lastKey, lastKey == key { return lastPosition }
        let i: Int
        if let known = index[key] {
            i = known
        } else {
            i = rows.count
            index[key] = i
            keys.append(key)
            rows.append(make())
        }
        lastKey = key
        lastPosition = i
        return i
    }

    /// Puts a row for `key` in place of the row at `i`.
    mutating func replace(at i: Int, key: Key, with row: Row) {
        lastKey = nil
        index[keys[i]] = nil
        index[key] = i
        keys[i] = key
        rows[i] = row
    }
}

/// A fingerprint id as a stats key, hashed by `Fingerprint.tableHash` rather than SipHash.
struct FingerprintKey: Hashable, Sendable {
    var id: UInt64

    func hash(into hasher: inout Hasher) { hasher.combine(id) }
    func _rawHashValue(seed: Int) -> Int { Fingerprint.tableHash(id, seed: seed) }
}

/// A backend as stats see it: a promoted replica starts new series under role "primary".
struct BackendKey: Hashable, Sendable {
    var name: String
    var role: BackendRole
}

struct FingerprintStats: Sendable {
    /// Normalised text from the first statement, cut to StatsSettings.queryTextLimit.
    let text: String
    var latency: WindowedLatency
    var rows: UInt64 = 0
}

struct BackendStats: Sendable {
    var latency: WindowedLatency
    /// For the summary line's per-period rates.
    var period: PeriodSnapshots<LatencyTotals>
    var metrics: BackendMetrics
}

/// PgBouncer's per-database totals (PgStats): counts, bytes and microseconds.
public struct DatabaseTotals: AdditiveArithmetic, Sendable {
    public var xactCount: UInt64 = 0
    public var queryCount: UInt64 = 0
    public var received: UInt64 = 0
    public var sent: UInt64 = 0
    public var xactMicros: UInt64 = 0
    public var queryMicros: UInt64 = 0
    public var waitMicros: UInt64 = 0

    public init() {}

    public static var zero: DatabaseTotals { DatabaseTotals() }
    public static func + (a: DatabaseTotals, b: DatabaseTotals) -> DatabaseTotals { combine(a, b, &+) }
    public static func - (a: DatabaseTotals, b: DatabaseTotals) -> DatabaseTotals { combine(a, b, &-) }

    private static func combine(_ a: DatabaseTotals, _ b: DatabaseTotals,
                                _ op: (UInt64, UInt64) -> UInt64) -> DatabaseTotals {
        var r = DatabaseTotals()
        r.xactCount = op(a.xactCount, b.xactCount)
        r.queryCount = op(a.queryCount, b.queryCount)
        r.received = op(a.received, b.received)
        r.sent = op(a.sent, b.sent)
        r.xactMicros = op(a.xactMicros, b.xactMicros)
        r.queryMicros = op(a.queryMicros, b.queryMicros)
        r.waitMicros = op(a.waitMicros, b.waitMicros)
        return r
    }

    mutating func add(_ s: StatementSample) {
        queryCount &+= 1
        queryMicros &+= s.micros
        received &+= s.bytesReceived
        sent &+= s.bytesSent
        waitMicros &+= s.waitMicros
        if let xact = s.transactionMicros {
            xactCount &+= 1
            xactMicros &+= xact
        }
    }
}

struct DatabaseStats: Sendable {
    var totals = DatabaseTotals.zero
    var period: PeriodSnapshots<DatabaseTotals>
}

/// All statistics of one worker (event loop), owned and mutated by that worker only.
///
/// Per finished statement the I/O layer calls `record(_:now:queryText:)`; for a fingerprint, backend and database
/// seen before it does not allocate (StatsRegistryTests checks the heap), except when a window slot starts and the
/// pool has no spare histogram. Prometheus series go to a `MetricsCollector` that every worker's registry shares
/// (pass the same one to each): each registry records into cells of its own there, and a scrape adds them up.
///
/// `now` is monotonic seconds (CLOCK_MONOTONIC), the same clock in every worker: window slots and stats periods
/// are aligned to multiples of their length on it, which is what lets registries merge slot by slot.
///
/// To display several workers, start an empty registry with the same settings and collector and `merge` each
/// worker's registry into it on that worker's thread; merging copies counts and shares no buffers with the worker.
///
/// Cost (release build, `benchmarkRecordCost`): about 330 ns per statement, half of it the shared Prometheus
/// series (two histograms behind a lock, one or three atomic counters); a window pays one histogram reset (~25 µs)
/// per slot it starts, i.e. once per window / slotCount seconds while it is in use.
public struct StatsRegistry: Sendable {
    public let settings: StatsSettings
    /// Monotonic seconds at creation; SHOW STATS averages do not reach back before it.
    public let startedAt: Double
    var metrics: StatsMetrics
    var fingerprints = KeyedRows<FingerprintKey, FingerprintStats>()
    var backends = KeyedRows<BackendKey, BackendStats>()
    var databases = KeyedRows<String, DatabaseStats>()
    private var pool = LatencyPool()
    /// When the next slot starts: then windows give expired slots back to the pool.
    private var nextRelease: Double
    /// Fingerprints replaced because the table was full.
    public private(set) var evictedFingerprints: UInt64 = 0

    public init(settings: StatsSettings = StatsSettings(), now: Double,
                collector: MetricsCollector = MetricsCollector()) {
        self.settings = settings
        self.startedAt = now
        self.metrics = StatsMetrics(collector: collector)
        self.nextRelease = now
    }

    /// Fingerprints tracked now.
    public var fingerprintCount: Int { fingerprints.rows.count }
    /// Histograms waiting in the pool for a window slot.
    public var spareHistograms: Int { pool.spareCount }

    // MARK: Recording

    /// Records one finished statement. `queryText` (the normalised text) is called only for a new fingerprint.
    public mutating func record(_ sample: StatementSample, now: Double, queryText: () -> String) {
        let failed = sample.outcome.failed
        if now >= nextRelease { releaseExpiredSlots(now: now) }

        let f = fingerprintPosition(FingerprintKey(id: sample.fingerprint), countingEviction: true, queryText)
        fingerprints.rows[f].latency.record(micros: sample.micros, failed: failed, now: now, pool: &pool)
        fingerprints.rows[f].rows &+= sample.rows

        let epoch = periodEpoch(now)
        let b = backendPosition(BackendKey(name: sample.backend, role: sample.role), epoch: epoch)
        backends.rows[b].period.advance(to: epoch, current: backends.rows[b].latency.totals)
        backends.rows[b].latency.record(micros: sample.micros, failed: failed, now: now, pool: &pool)
        backends.rows[b].metrics.record(micros: sample.micros, outcome: sample.outcome, collector: metrics.collector)
        metrics.recordRoute(sample.role, micros: sample.micros, failed: failed)

        let d = databasePosition(sample.database, epoch: epoch)
        databases.rows[d].period.advance(to: epoch, current: databases.rows[d].totals)
        databases.rows[d].totals.add(sample)
    }

    /// A statement sent to `backend` that had to go elsewhere (e.g. a write that reached a replica).
    public mutating func recordMisroute(backend: String, role: BackendRole, now: Double) {
        let b = backendPosition(BackendKey(name: backend, role: role), epoch: periodEpoch(now))
        backends.rows[b].metrics.misroutes.increment()
    }

    /// A lone read went behind another client's statement on a server of `backend` (the shared pipeline).
    public mutating func recordPipelined(backend: String, role: BackendRole, now: Double) {
        let b = backendPosition(BackendKey(name: backend, role: role), epoch: periodEpoch(now))
        backends.rows[b].metrics.pipelined.increment()
    }

    // MARK: Merging

    /// Adds another worker's statistics (same settings, same clock). Prometheus series are not touched: they are
    /// shared through the collector already.
    public mutating func merge(_ other: StatsRegistry) {
        precondition(other.settings == settings, "registries with different settings do not merge")
        for (i, id) in other.fingerprints.keys.enumerated() {
            let theirs = other.fingerprints.rows[i]
            let f = fingerprintPosition(id, countingEviction: false) { theirs.text }
            fingerprints.rows[f].latency.merge(theirs.latency, pool: &pool)
            fingerprints.rows[f].rows &+= theirs.rows
        }
        for (i, key) in other.backends.keys.enumerated() {
            let theirs = other.backends.rows[i]
            let b = backendPosition(key, epoch: theirs.period.newerEpoch)
            backends.rows[b].period.merge(theirs.period, current: backends.rows[b].latency.totals,
                                          otherCurrent: theirs.latency.totals)
            backends.rows[b].latency.merge(theirs.latency, pool: &pool)
        }
        for (i, name) in other.databases.keys.enumerated() {
            let theirs = other.databases.rows[i]
            let d = databasePosition(name, epoch: theirs.period.newerEpoch)
            databases.rows[d].period.merge(theirs.period, current: databases.rows[d].totals,
                                           otherCurrent: theirs.totals)
            databases.rows[d].totals = databases.rows[d].totals + theirs.totals
        }
        evictedFingerprints &+= other.evictedFingerprints
    }

    // MARK: Rows

    /// The row of fingerprint `id`; a new one when unseen, replacing the one with the least total time when full
    /// (counted unless a display registry makes room while merging).
    private mutating func fingerprintPosition(_ id: FingerprintKey, countingEviction: Bool, _ queryText: () -> String) -> Int {
        if let i = fingerprints.position(of: id) { return i }
        let row = FingerprintStats(text: Self.cut(queryText(), to: settings.queryTextLimit),
                                   latency: WindowedLatency(window: settings.window, slotCount: settings.slotCount))
        guard fingerprints.rows.count >= settings.maxFingerprints else {
            return fingerprints.position(of: id) { row }
        }
        let victim = fingerprints.rows.indices.min {
            fingerprints.rows[$0].latency.totals.micros < fingerprints.rows[$1].latency.totals.micros
        }!
        fingerprints.rows[victim].latency.releaseSlots(expiredAt: nil, pool: &pool)
        fingerprints.replace(at: victim, key: id, with: row)
        if countingEviction {
            evictedFingerprints &+= 1
            metrics.evictions.increment()
        }
        return victim
    }

    private mutating func backendPosition(_ key: BackendKey, epoch: Int64) -> Int {
        backends.position(of: key) {
            BackendStats(latency: WindowedLatency(window: settings.window, slotCount: settings.slotCount),
                         period: PeriodSnapshots(epoch: epoch),
                         metrics: BackendMetrics(collector: metrics.collector, name: key.name, role: key.role))
        }
    }

    private mutating func databasePosition(_ name: String, epoch: Int64) -> Int {
        databases.position(of: name) { DatabaseStats(period: PeriodSnapshots(epoch: epoch)) }
    }

    /// Gives every window's expired slot histograms back to the pool; runs once per slot length, from `record`.
    private mutating func releaseExpiredSlots(now: Double) {
        for i in fingerprints.rows.indices {
            fingerprints.rows[i].latency.releaseSlots(expiredAt: now, pool: &pool)
        }
        for i in backends.rows.indices {
            backends.rows[i].latency.releaseSlots(expiredAt: now, pool: &pool)
        }
        nextRelease = now + settings.window / Double(settings.slotCount)
    }

    /// The stats period `now` falls in.
    func periodEpoch(_ now: Double) -> Int64 { Int64((now / settings.period).rounded(.down)) }

    /// `text` cut to `limit` characters, marked with "…" when cut.
    static func cut(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "…"
    }

    // MARK: Benchmark

    /// Nanoseconds per `record` call (wall clock) for `samples` statements over 100 known fingerprints, 3 backends
    /// and 2 databases, with the clock moving 20 µs per statement so window slots rotate. For a release build's
    /// CLI (`--microbench`); unit tests do not time it.
    public static func benchmarkRecordCost(samples: Int) -> Double {
        var registry = StatsRegistry(now: 0)
        let backends: [(String, BackendRole)] = [("primary", .primary), ("r1", .replica), ("r2", .replica)]
        let databases = ["app", "reports"]
        func sample(_ n: Int) -> StatementSample {
            let (backend, role) = backends[n % backends.count]
            return StatementSample(fingerprint: UInt64(n % 100), database: databases[n % databases.count],
                                   backend: backend, role: role, micros: UInt64(100 + n % 5000), rows: 1,
                                   outcome: n % 97 == 0 ? .error(sqlstate: "23505") : .ok,
                                   bytesReceived: 60, bytesSent: 200, transactionMicros: UInt64(100 + n % 5000))
        }
        let warmUp = 100_000
        for n in 0..<warmUp { registry.record(sample(n), now: Double(n) * 20e-6) { "select $1" } }
        let inputs = (0..<1024).map(sample)
        let elapsed = ContinuousClock().measure {
            for n in 0..<samples {
                registry.record(inputs[n & 1023], now: Double(warmUp + n) * 20e-6) { "select $1" }
            }
        }
        let (seconds, attoseconds) = elapsed.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(Swift.max(samples, 1))
    }
}
