// Read-only views of a StatsRegistry: plain rows for the admin console (SHOW QUERIES, SHOW LATENCY, PgBouncer's
// SHOW STATS), each with its column list and text cells, and the periodic summary line for the log.

/// One fingerprint (SHOW QUERIES): since start, and calls and percentiles over the sliding window.
public struct QueryStatsRow: Equatable, Sendable {
    public var fingerprint: UInt64
    public var query: String
    public var calls: UInt64
    public var errors: UInt64
    public var rows: UInt64
    public var totalMicros: UInt64
    public var sinceStart: LatencySummary
    public var window: LatencySummary

    public var meanMicros: Double { calls == 0 ? 0 : Double(totalMicros) / Double(calls) }

    public static let columns: [(name: String, type: ResultSet.ColumnType)] = [
        ("fingerprint", .text), ("query", .text), ("calls", .int8), ("errors", .int8), ("total_ms", .text),
        ("mean_ms", .text), ("p50_ms", .text), ("p90_ms", .text), ("p95_ms", .text), ("p99_ms", .text),
        ("p999_ms", .text), ("max_ms", .text), ("window_calls", .int8), ("window_p50_ms", .text),
        ("window_p99_ms", .text), ("rows", .int8),
    ]

    /// Cells in `columns` order.
    public var cells: [String?] {
        [StatsFormat.hex(fingerprint), query, String(calls), String(errors), StatsFormat.millis(totalMicros),
         StatsFormat.millis(UInt64(meanMicros.rounded()))]
            + sinceStart.millisCells
            + [String(window.count), StatsFormat.millis(window.p50), StatsFormat.millis(window.p99), String(rows)]
    }
}

/// One backend (SHOW LATENCY): since start, then over the sliding window.
public struct LatencyStatsRow: Equatable, Sendable {
    public var backend: String
    public var role: BackendRole
    public var totals: LatencyTotals
    public var sinceStart: LatencySummary
    public var windowTotals: LatencyTotals
    public var window: LatencySummary

    public static let columns: [(name: String, type: ResultSet.ColumnType)] = [
        ("backend", .text), ("role", .text), ("calls", .int8), ("errors", .int8),
        ("p50_ms", .text), ("p90_ms", .text), ("p95_ms", .text), ("p99_ms", .text), ("p999_ms", .text),
        ("max_ms", .text), ("window_calls", .int8), ("window_errors", .int8), ("window_p50_ms", .text),
        ("window_p90_ms", .text), ("window_p95_ms", .text), ("window_p99_ms", .text), ("window_p999_ms", .text),
        ("window_max_ms", .text),
    ]

    public var cells: [String?] {
        [backend, role.rawValue, String(totals.calls), String(totals.errors)] + sinceStart.millisCells
            + [String(windowTotals.calls), String(windowTotals.errors)] + window.millisCells
    }
}

/// One database (PgBouncer 1.18's SHOW STATS): totals since start and averages over the last stats period.
public struct DatabaseStatsRow: Equatable, Sendable {
    public var database: String
    public var totals: DatabaseTotals
    /// Transactions and queries per second.
    public var avgXactCount: UInt64
    public var avgQueryCount: UInt64
    /// Bytes per second from and to clients.
    public var avgReceived: UInt64
    public var avgSent: UInt64
    /// Microseconds per transaction and per query.
    public var avgXactMicros: UInt64
    public var avgQueryMicros: UInt64
    /// Microseconds clients waited for a server, per second (1.18; later versions divide by server assignments).
    public var avgWaitMicros: UInt64

    /// PgBouncer's column names and order.
    public static let columns: [(name: String, type: ResultSet.ColumnType)] = [
        ("database", .text), ("total_xact_count", .int8), ("total_query_count", .int8), ("total_received", .int8),
        ("total_sent", .int8), ("total_xact_time", .int8), ("total_query_time", .int8), ("total_wait_time", .int8),
        ("avg_xact_count", .int8), ("avg_query_count", .int8), ("avg_recv", .int8), ("avg_sent", .int8),
        ("avg_xact_time", .int8), ("avg_query_time", .int8), ("avg_wait_time", .int8),
    ]

    public var cells: [String?] {
        let t = totals
        return [database] + [t.xactCount, t.queryCount, t.received, t.sent, t.xactMicros, t.queryMicros, t.waitMicros,
                             avgXactCount, avgQueryCount, avgReceived, avgSent, avgXactMicros, avgQueryMicros,
                             avgWaitMicros].map { String($0) }
    }
}

extension StatsRegistry {
    /// The `limit` fingerprints with the most total time, most first.
    public func queryRows(limit: Int, now: Double) -> [QueryStatsRow] {
        let rows = fingerprints.rows
        let top = rows.indices.sorted { rows[$0].latency.totals.micros > rows[$1].latency.totals.micros }.prefix(Swift.max(0, limit))
        return top.map { i in
            let latency = rows[i].latency
            return QueryStatsRow(fingerprint: fingerprints.keys[i].id, query: rows[i].text, calls: latency.totals.calls,
                                 errors: latency.totals.errors, rows: rows[i].rows, totalMicros: latency.totals.micros,
                                 sinceStart: latency.sinceStart.summary,
                                 window: latency.windowHistogram(now: now).summary)
        }
    }

    /// Every backend, primaries first, then by name.
    public func latencyRows(now: Double) -> [LatencyStatsRow] {
        zip(backends.keys, backends.rows).map { key, row in
            LatencyStatsRow(backend: key.name, role: key.role, totals: row.latency.totals,
                            sinceStart: row.latency.sinceStart.summary,
                            windowTotals: row.latency.windowTotals(now: now),
                            window: row.latency.windowHistogram(now: now).summary)
        }.sorted { ($0.role == .primary ? 0 : 1, $0.backend) < ($1.role == .primary ? 0 : 1, $1.backend) }
    }

    /// SHOW STATS: every database by name. Averages as PgBouncer 1.18's calc_average: over the time since the
    /// period boundary before the last one (between one and two stats periods), in integer arithmetic.
    public func statsRows(now: Double) -> [DatabaseStatsRow] {
        zip(databases.keys, databases.rows).map { name, row in
            let (delta, seconds) = sinceOlderBoundary(row.period, current: row.totals, now: now)
            let micros = UInt64(Swift.max(0, seconds * 1e6))
            func perSecond(_ v: UInt64) -> UInt64 { micros == 0 ? 0 : v * 1_000_000 / micros }
            func per(_ v: UInt64, _ count: UInt64) -> UInt64 { micros == 0 || count == 0 ? 0 : v / count }
            return DatabaseStatsRow(database: name, totals: row.totals,
                                    avgXactCount: perSecond(delta.xactCount), avgQueryCount: perSecond(delta.queryCount),
                                    avgReceived: perSecond(delta.received), avgSent: perSecond(delta.sent),
                                    avgXactMicros: per(delta.xactMicros, delta.xactCount),
                                    avgQueryMicros: per(delta.queryMicros, delta.queryCount),
                                    avgWaitMicros: perSecond(delta.waitMicros))
        }.sorted { $0.database < $1.database }
    }

    /// One log line for the last stats period, per backend: statements per second and failures over the period,
    /// p50 and p99 over the sliding window. Meant to be called just after each period boundary.
    public func summaryLine(now: Double) -> String {
        let parts = zip(backends.keys, backends.rows).map { key, row in
            let (delta, seconds) = sinceOlderBoundary(row.period, current: row.latency.totals, now: now)
            let window = row.latency.windowHistogram(now: now)
            let qps = seconds > 0 ? Double(delta.calls) / seconds : 0
            return "backend=\(key.name) role=\(key.role.rawValue) qps=\(StatsFormat.fixed(qps, places: 1))"
                + " p50_ms=\(StatsFormat.millis(window.percentile(50))) p99_ms=\(StatsFormat.millis(window.percentile(99)))"
                + " errors=\(delta.errors)"
        }
        return "stats: " + (parts.isEmpty ? "no statements" : parts.joined(separator: "; "))
    }

    /// What grew since the period boundary before the last one, and the seconds since then (not before start).
    private func sinceOlderBoundary<T>(_ snapshots: PeriodSnapshots<T>, current: T, now: Double) -> (T, Double) {
        var s = snapshots
        s.advance(to: periodEpoch(now), current: current)
        let since = Swift.max(Double(s.newerEpoch - 1) * settings.period, startedAt)
        return (current - s.older, now - since)
    }
}

/// Number formatting without Foundation.
enum StatsFormat {
    /// `value` rounded to `places` decimals: fixed(1.5, places: 3) is "1.500".
    static func fixed(_ value: Double, places: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<places { scale *= 10 }
        let scaled = (Swift.abs(value) * Double(scale)).rounded()
        guard scaled.isFinite, scaled < 9e18 else { return String(value) }
        let n = UInt64(scaled)
        let sign = value < 0 && n > 0 ? "-" : ""
        guard places > 0 else { return sign + String(n) }
        let fraction = String(n % scale)
        return sign + String(n / scale) + "." + String(repeating: "0", count: places - fraction.count) + fraction
    }

    /// Microseconds as milliseconds with 3 decimals.
    static func millis(_ micros: UInt64) -> String { fixed(Double(micros) / 1000, places: 3) }

    /// 16 lowercase hex digits.
    static func hex(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
