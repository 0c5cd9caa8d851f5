// StatsRegistry: the fingerprint bound, SHOW STATS averages with a manual clock, merging two workers, the
// admin rows and summary line, and that recording a known statement does not grow the heap.
import Prometheus
@testable import ProxyCore
import XCTest

final class StatsRegistryTests: XCTestCase {
    func sample(_ fingerprint: UInt64, micros: UInt64, backend: String = "r1", role: BackendRole = .replica,
                database: String = "app", outcome: StatementSample.Outcome = .ok) -> StatementSample {
        StatementSample(fingerprint: fingerprint, database: database, backend: backend, role: role, micros: micros,
                        rows: 2, outcome: outcome, transactionMicros: micros)
    }

    func testQueryRowsAndTextIsAskedForOnlyOnce() {
        var r = StatsRegistry(now: 0)
        var asked = 0
        for v in 1...1000 {
            r.record(sample(0xfeed, micros: UInt64(v), outcome: v % 100 == 0 ? .error(sqlstate: "40001") : .ok),
                     now: 1) { asked += 1; return "select * from t where id = $1" }
        }
        r.record(sample(7, micros: 10), now: 2) { "select $1" }
        XCTAssertEqual(asked, 1)

        let rows = r.queryRows(limit: 10, now: 2)
        XCTAssertEqual(rows.map(\.fingerprint), [0xfeed, 7])
        let top = rows[0]
        XCTAssertEqual(top.query, "select * from t where id = $1")
        XCTAssertEqual(top.calls, 1000)
        XCTAssertEqual(top.errors, 10)
        XCTAssertEqual(top.rows, 2000)
        XCTAssertEqual(top.totalMicros, 500_500)
        XCTAssertEqual(Double(top.sinceStart.p50), 500, accuracy: 5)
        XCTAssertEqual(Double(top.sinceStart.p99), 990, accuracy: 10)
        XCTAssertEqual(top.window.count, 1000)
        XCTAssertEqual(top.sinceStart.max, 1000)

        let cells = top.cells
        XCTAssertEqual(cells.count, QueryStatsRow.columns.count)
        XCTAssertEqual(cells[0], "000000000000feed")
        XCTAssertEqual(cells[4], "500.500")   // total_ms
        XCTAssertEqual(cells[5], "0.501")     // mean_ms: 500.5 µs
        XCTAssertEqual(cells[11], "1.000")    // max_ms
        XCTAssertEqual(cells[12], "1000")     // window_calls
        XCTAssertEqual(r.queryRows(limit: 1, now: 2).count, 1)
    }

    func testLongTextIsCut() {
        var r = StatsRegistry(settings: StatsSettings(queryTextLimit: 300), now: 0)
        r.record(sample(1, micros: 1), now: 0) { String(repeating: "x", count: 400) }
        let text = r.queryRows(limit: 1, now: 0)[0].query
        XCTAssertEqual(text, String(repeating: "x", count: 300) + "…")
    }

    func testWhenFullANewFingerprintReplacesTheOneWithTheLeastTotalTime() {
        var r = StatsRegistry(settings: StatsSettings(maxFingerprints: 3), now: 0)
        r.record(sample(1, micros: 100), now: 0) { "q1" }
        r.record(sample(2, micros: 300), now: 0) { "q2" }
        r.record(sample(3, micros: 200), now: 0) { "q3" }
        r.record(sample(4, micros: 50), now: 1) { "q4" }
        XCTAssertEqual(r.fingerprintCount, 3)
        XCTAssertEqual(r.evictedFingerprints, 1)
        let rows = r.queryRows(limit: 10, now: 1)
        XCTAssertEqual(rows.map(\.fingerprint), [2, 3, 4])
        // The replacement starts from nothing: none of q1's numbers, its own text.
        XCTAssertEqual(rows[2].query, "q4")
        XCTAssertEqual(rows[2].calls, 1)
        XCTAssertEqual(rows[2].totalMicros, 50)
        XCTAssertEqual(rows[2].window.count, 1)
        XCTAssertEqual(rows[2].sinceStart.max, 50)
        // Known fingerprints keep adding up, and q1 coming back replaces the smallest (q4).
        r.record(sample(3, micros: 1000), now: 2) { "unused" }
        r.record(sample(1, micros: 60), now: 2) { "q1" }
        XCTAssertEqual(r.queryRows(limit: 10, now: 2).map(\.fingerprint), [3, 2, 1])
        XCTAssertEqual(r.evictedFingerprints, 2)
        XCTAssertTrue(r.prometheusText().contains("switchyard_stats_fingerprints_evicted_total 2\n"))
    }

    func testLatencyRowsAndSummaryLine() {
        var r = StatsRegistry(settings: StatsSettings(period: 10), now: 0)
        for i in 0..<100 { r.record(sample(1, micros: 400), now: 5 + Double(i) * 0.01) { "q" } }
        for i in 0..<50 {
            r.record(sample(2, micros: 2000, backend: "primary", role: .primary, outcome: i < 2 ? .timeout : .ok),
                     now: 12) { "w" }
        }
        let rows = r.latencyRows(now: 20)
        XCTAssertEqual(rows.map(\.backend), ["primary", "r1"])
        XCTAssertEqual(rows[0].totals, LatencyTotals(calls: 50, errors: 2, micros: 100_000))
        XCTAssertEqual(rows[0].window.p50, 2000)
        XCTAssertEqual(rows[1].windowTotals.calls, 100)
        XCTAssertEqual(Double(rows[1].sinceStart.p99), 400, accuracy: 4)
        XCTAssertEqual(rows[1].cells.count, LatencyStatsRow.columns.count)
        XCTAssertEqual(Array(rows[1].cells[0..<4]), ["r1", "replica", "100", "0"])

        // Just after the boundary at 20 the last period is [10, 20): r1 ran nothing then, primary 50 statements.
        XCTAssertEqual(r.summaryLine(now: 20),
                       "stats: backend=r1 role=replica qps=0.0 p50_ms=0.400 p99_ms=0.400 errors=0; "
                           + "backend=primary role=primary qps=5.0 p50_ms=2.000 p99_ms=2.000 errors=2")
    }

    func testShowStatsAveragesFollowPgBouncer() {
        var r = StatsRegistry(settings: StatsSettings(period: 10), now: 0)
        func statement(micros: UInt64, wait: UInt64, xact: UInt64?) -> StatementSample {
            StatementSample(fingerprint: 1, database: "app", backend: "primary", role: .primary, micros: micros,
                            bytesReceived: 10, bytesSent: 20, waitMicros: wait, transactionMicros: xact)
        }
        for _ in 0..<10 { r.record(statement(micros: 1000, wait: 0, xact: 1000), now: 5) { "q" } }
        // Period [10, 20): 30 statements in 15 transactions of 2.
        for i in 0..<30 { r.record(statement(micros: 100, wait: 30, xact: i % 2 == 1 ? 250 : nil), now: 12) { "q" } }
        r.record(statement(micros: 7, wait: 0, xact: 7), now: 13) { "q" }
        r.record(StatementSample(fingerprint: 1, database: "b", backend: "primary", role: .primary, micros: 7),
                 now: 13) { "q" }

        // During [10, 20) the base is the boundary at 0 (the totals were 0 then): 12.5 s, 41 statements.
        var row = r.statsRows(now: 12.5)[0]
        XCTAssertEqual(row.database, "app")
        XCTAssertEqual(row.avgQueryCount, 3)   // 41 / 12.5 = 3.28, integer like PgBouncer

        // At 25 the base is the boundary at 10 (10 statements then): 31 statements in 15 s.
        row = r.statsRows(now: 25)[0]
        XCTAssertEqual(row.totals.queryCount, 41)
        XCTAssertEqual(row.totals.xactCount, 26)
        XCTAssertEqual(row.totals.queryMicros, 10 * 1000 + 30 * 100 + 7)
        XCTAssertEqual(row.totals.xactMicros, 10 * 1000 + 15 * 250 + 7)
        XCTAssertEqual(row.totals.received, 410)
        XCTAssertEqual(row.totals.waitMicros, 900)
        XCTAssertEqual(row.avgQueryCount, 2)        // 31 / 15 s
        XCTAssertEqual(row.avgXactCount, 1)         // 16 / 15 s
        XCTAssertEqual(row.avgReceived, 20)         // 310 B / 15 s
        XCTAssertEqual(row.avgSent, 41)             // 620 B / 15 s
        XCTAssertEqual(row.avgQueryMicros, 97)      // 3007 / 31
        XCTAssertEqual(row.avgXactMicros, 234)      // 3757 / 16
        XCTAssertEqual(row.avgWaitMicros, 60)       // 900 µs / 15 s
        XCTAssertEqual(row.cells.count, DatabaseStatsRow.columns.count)
        XCTAssertEqual(DatabaseStatsRow.columns.map(\.name), [
            "database", "total_xact_count", "total_query_count", "total_received", "total_sent", "total_xact_time",
            "total_query_time", "total_wait_time", "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
            "avg_xact_time", "avg_query_time", "avg_wait_time",
        ])
        XCTAssertEqual(row.cells[0], "app")
        XCTAssertEqual(row.cells[2], "41")
        XCTAssertEqual(r.statsRows(now: 25).map(\.database), ["app", "b"])

        // Two idle periods later every average is 0 and the totals stay.
        row = r.statsRows(now: 45)[0]
        XCTAssertEqual([row.avgQueryCount, row.avgXactCount, row.avgQueryMicros, row.avgWaitMicros], [0, 0, 0, 0])
        XCTAssertEqual(row.totals.queryCount, 41)
    }

    func testMergingTwoWorkers() {
        let collector = PrometheusCollectorRegistry()
        let settings = StatsSettings(period: 10)
        var w1 = StatsRegistry(settings: settings, now: 0, collector: collector)
        var w2 = StatsRegistry(settings: settings, now: 0, collector: collector)
        for _ in 0..<10 { w1.record(sample(1, micros: 1000), now: 5) { "q1" } }
        for _ in 0..<30 { w2.record(sample(1, micros: 3000), now: 6) { "q1" } }
        for _ in 0..<5 { w2.record(sample(2, micros: 100, backend: "primary", role: .primary, database: "b"), now: 15) { "q2" } }

        var view = StatsRegistry(settings: settings, now: 0, collector: collector)
        view.merge(w1)
        view.merge(w2)
        let queries = view.queryRows(limit: 10, now: 15)
        XCTAssertEqual(queries.map(\.fingerprint), [1, 2])
        XCTAssertEqual(queries[0].calls, 40)
        XCTAssertEqual(queries[0].totalMicros, 100_000)
        XCTAssertEqual(queries[0].window.count, 40)
        XCTAssertEqual(Double(queries[0].sinceStart.p50), 3000, accuracy: 30)
        let merged = view.fingerprints.rows[view.fingerprints.position(of: 1)!].latency.sinceStart
        XCTAssertEqual(Double(merged.percentile(20)), 1000, accuracy: 10)
        XCTAssertEqual(queries[1].query, "q2")
        let latency = view.latencyRows(now: 15)
        XCTAssertEqual(latency.map(\.backend), ["primary", "r1"])
        XCTAssertEqual(latency[1].totals.calls, 40)
        let stats = view.statsRows(now: 15)
        XCTAssertEqual(stats.map(\.database), ["app", "b"])
        XCTAssertEqual(stats[0].totals.queryCount, 40)
        XCTAssertEqual(stats[0].avgQueryCount, 2)   // 40 statements since the boundary at 0, over 15 s
        XCTAssertEqual(view.summaryLine(now: 20).contains("backend=r1 role=replica qps=0.0"), true)

        // The workers are untouched, and recording into them after the merge copies nothing (no shared buffers).
        XCTAssertEqual(w1.queryRows(limit: 1, now: 15)[0].calls, 10)
        for _ in 0..<10 { w1.record(sample(1, micros: 1000), now: 7) { "q1" } }
        let before = heapInUse()
        for _ in 0..<1000 { w1.record(sample(1, micros: 1000), now: 7) { "q1" } }
        XCTAssertEqual(heapInUse() - before, 0)
        XCTAssertEqual(view.queryRows(limit: 1, now: 15)[0].calls, 40)
        // Prometheus series are shared through the collector: both workers' statements in one count.
        XCTAssertTrue(view.prometheusText().contains(
            "switchyard_backend_query_duration_seconds_count{backend=\"r1\",role=\"replica\"} 1050\n"))
    }

    /// Known fingerprint, backend and database: recording grows nothing, with window slots rotating (the clock moves
    /// 4 ms per statement) and one fingerprint that comes and goes so slot histograms cycle through the pool.
    /// Net growth of malloc's heap: an allocation freed again within the loop does not show here.
    func testRecordingKnownStatementsDoesNotGrowTheHeap() {
        var r = StatsRegistry(now: 0)
        let samples = (0..<64).map { (n: Int) -> StatementSample in
            let primary = n % 3 == 0
            let outcome: StatementSample.Outcome = n % 16 == 0 ? .error(sqlstate: "23505") : .ok
            return sample(UInt64(n % 4), micros: UInt64(100 + n * 37), backend: primary ? "primary" : "r1",
                          role: primary ? .primary : .replica, database: n % 2 == 0 ? "app" : "b", outcome: outcome)
        }
        var clock = 0.0
        func run(_ count: Int) {
            for n in 0..<count {
                clock += 0.004
                // Fingerprint 9 runs for 60 s, then rests 60 s.
                if Int(clock / 60) % 2 == 0 { r.record(sample(9, micros: 250), now: clock) { "sometimes" } }
                r.record(samples[n & 63], now: clock) { "select $1" }
            }
        }
        run(75_000)   // five windows: every slot and the pool have what they need
        let before = heapInUse()
        run(75_000)
        XCTAssertEqual(heapInUse() - before, 0)
        // The check sees growth: a new fingerprint adds its since-start histogram (its slot comes from the pool).
        r.record(sample(1234, micros: 5), now: clock) { "new" }
        XCTAssertGreaterThan(heapInUse() - before, 13_312)
        XCTAssertGreaterThan(r.spareHistograms, 0, "fingerprint 9's slots went back to the pool")
        XCTAssertEqual(r.queryRows(limit: 10, now: clock).reduce(0) { $0 + $1.calls } > 150_000, true)
    }

    /// The memory numbers in the report: one fingerprint entry, fresh (a since-start and a slot histogram) and idle.
    func testMemoryPerFingerprintEntry() {
        var r = StatsRegistry(settings: StatsSettings(maxFingerprints: 2000), now: 0)
        let text = "select a, b, c from orders where customer_id = $1 and status = $2"
        r.record(sample(0, micros: 1), now: 0) { text }
        let before = heapInUse()
        for id in 1...1000 { r.record(sample(UInt64(id), micros: 1), now: 0) { text } }
        let fresh = (heapInUse() - before) / 1000
        // At 75 the slots of time 0 have left the window: their histograms go back to the pool, and the
        // fingerprint and the backend recording at 75 take one each.
        r.record(sample(0, micros: 1), now: 75) { text }
        XCTAssertEqual(r.spareHistograms, 1000)
        let idle = fresh - 13_400
        print("fingerprint entry heap bytes: fresh \(fresh), idle about \(idle) (its slot histogram back in the pool)")
        XCTAssertLessThan(fresh, 2 * 13_400 + 2_000)
        XCTAssertGreaterThan(fresh, 2 * 13_312)
    }
}
