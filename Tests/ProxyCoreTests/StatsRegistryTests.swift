// StatsRegistry: the fingerprint bound, SHOW STATS averages with a manual clock, merging two workers (and workers
// at different points of their stats periods, against one registry that saw everything), the admin rows and
// summary line, and that recording a known statement does not grow the heap.
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
        let collector = MetricsCollector()
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
        let merged = view.fingerprints.rows[view.fingerprints.position(of: FingerprintKey(id: 1))!].latency.sinceStart
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

    // MARK: Merging across stats periods

    /// What the I/O layer builds for the summary line and SHOW STATS: each worker copies its registry into an empty
    /// one (Proxy.statsCopy), and the copies merge into an empty registry started at the earliest start
    /// (Proxy.mergedStats).
    func mergedView(_ workers: [StatsRegistry], collector: MetricsCollector) -> StatsRegistry {
        var view = StatsRegistry(settings: workers[0].settings, now: workers.map(\.startedAt).min()!,
                                 collector: collector)
        for worker in workers {
            var copy = StatsRegistry(settings: worker.settings, now: worker.startedAt, collector: collector)
            copy.merge(worker)
            view.merge(copy)
        }
        return view
    }

    /// Three workers at different points of their period cycle (one last ran before the boundary at 10, one from
    /// exactly 10 on, one started late at 12 and runs from exactly 20 on), merged right at boundaries and in
    /// every order: each period's line has its own statements and failures, once.
    func testMergingWorkersAtDifferentPointsOfTheirPeriodsCountsEachStatementOnceInItsPeriod() {
        let collector = MetricsCollector()
        let settings = StatsSettings(period: 10)
        var w1 = StatsRegistry(settings: settings, now: 0, collector: collector)
        var w2 = StatsRegistry(settings: settings, now: 0, collector: collector)
        var w3 = StatsRegistry(settings: settings, now: 12, collector: collector)
        func run(_ worker: inout StatsRegistry, _ count: Int, failing: Int, now: Double) {
            for i in 0..<count {
                worker.record(sample(1, micros: 1000, backend: "primary", role: .primary,
                                     outcome: i < failing ? .error(sqlstate: "57014") : .ok), now: now) { "q" }
            }
        }
        func check(now: Double, _ line: String, avgQueryCount: UInt64, total: UInt64,
                   file: StaticString = #filePath, lineNumber: UInt = #line) {
            for order in [[w1, w2, w3], [w3, w2, w1], [w2, w3, w1], [w3, w1, w2]] {
                let view = mergedView(order, collector: collector)
                XCTAssertEqual(view.summaryLine(now: now), line, file: file, line: lineNumber)
                let stats = view.statsRows(now: now)
                XCTAssertEqual(stats.map(\.database), ["app"], file: file, line: lineNumber)
                XCTAssertEqual(stats.first?.avgQueryCount, avgQueryCount, file: file, line: lineNumber)
                XCTAssertEqual(stats.first?.totals.queryCount, total, file: file, line: lineNumber)
                XCTAssertEqual(view.latencyRows(now: now).first?.totals.calls, total, file: file, line: lineNumber)
            }
        }

        run(&w1, 40, failing: 4, now: 8)
        run(&w2, 30, failing: 3, now: 10)
        // Right on the boundary at 10, w1 still in period 0, w2 in period 1, w3 empty: [0, 10] has 70 statements.
        check(now: 10, "stats: backend=primary role=primary qps=7.0 p50_ms=1.000 p99_ms=1.000 errors=7",
              avgQueryCount: 7, total: 70)
        run(&w2, 20, failing: 0, now: 19.999)
        // Just before the boundary at 20 the line still reaches back to 0: 90 statements in 19.999 s.
        check(now: 19.999, "stats: backend=primary role=primary qps=4.5 p50_ms=1.000 p99_ms=1.000 errors=7",
              avgQueryCount: 4, total: 90)
        run(&w3, 10, failing: 1, now: 20)
        // On the boundary at 20 (w1 in period 0, w2 in 1, w3 in 2): [10, 20] is w2's 50 and w3's 10, not w1's 40.
        check(now: 20, "stats: backend=primary role=primary qps=6.0 p50_ms=1.000 p99_ms=1.000 errors=4",
              avgQueryCount: 6, total: 100)
        run(&w3, 50, failing: 0, now: 25)
        // [20, 30]: only w3's 60; w1 and w2 are two and one periods behind.
        check(now: 30, "stats: backend=primary role=primary qps=6.0 p50_ms=1.000 p99_ms=1.000 errors=1",
              avgQueryCount: 6, total: 150)
        // An idle period later every worker is behind the view's period: no statement in the line's period.
        check(now: 40, "stats: backend=primary role=primary qps=0.0 p50_ms=1.000 p99_ms=1.000 errors=0",
              avgQueryCount: 0, total: 150)
    }

    /// Three workers' statements over 60 s on a 0.25 s clock (many exactly on a period boundary, an idle period,
    /// workers idle for several periods, one started late), merged just before, on, just after and between
    /// boundaries, one worker's copy a step behind the others: the merged view equals one registry that recorded the
    /// same statements. Nothing is dropped, moved to a neighbouring period or counted twice.
    func testMergedWorkersEqualOneRegistryThatRecordedEverything() {
        let collector = MetricsCollector()
        let settings = StatsSettings(window: 20, slotCount: 4, period: 10)
        var workers = [StatsRegistry(settings: settings, now: 0, collector: collector),
                       StatsRegistry(settings: settings, now: 0, collector: collector),
                       StatsRegistry(settings: settings, now: 5.25, collector: collector)]
        var all = StatsRegistry(settings: settings, now: 0, collector: collector)
        var seed: UInt64 = 0x5eed
        func random(_ n: UInt64) -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (seed >> 33) % n
        }
        func runs(_ worker: Int, at t: Double) -> Bool {
            switch worker {
            case 0: return t < 30 || t >= 40                    // all idle in [30, 40)
            case 1: return (t < 20 || t >= 45) && !(30..<40).contains(t)
            default: return t >= 5.25 && !(30..<40).contains(t)
            }
        }
        func record(_ worker: Int, at t: Double) {
            guard runs(worker, at: t) else { return }
            for _ in 0..<random(3) {
                let primary = random(2) == 0
                let s = sample(random(4), micros: 100 + random(5000), backend: primary ? "primary" : "r1",
                               role: primary ? .primary : .replica, database: random(3) == 0 ? "b" : "app",
                               outcome: random(8) == 0 ? .error(sqlstate: "23505") : random(16) == 0 ? .timeout : .ok)
                workers[worker].record(s, now: t) { "q" }
                all.record(s, now: t) { "q" }
            }
        }
        func assertSame(_ view: StatsRegistry, _ truth: StatsRegistry, now: Double, _ what: String) {
            // Backends appear in the order first seen, which merging changes: compare the parts.
            func parts(_ r: StatsRegistry) -> [Substring] {
                r.summaryLine(now: now).dropFirst("stats: ".count).split(separator: ";").map { $0.drop { $0 == " " } }
                    .sorted()
            }
            XCTAssertEqual(parts(view), parts(truth), "\(what) at \(now)")
            XCTAssertEqual(view.statsRows(now: now), truth.statsRows(now: now), "\(what) at \(now)")
            XCTAssertEqual(view.latencyRows(now: now), truth.latencyRows(now: now), "\(what) at \(now)")
            XCTAssertEqual(view.queryRows(limit: 10, now: now), truth.queryRows(limit: 10, now: now),
                           "\(what) at \(now)")
        }
        var checked = 0
        for step in 0..<240 {
            let t = Double(step) * 0.25
            record(1, at: t)
            record(2, at: t)
            guard [39, 0, 1, 20].contains(step % 40) else {
                record(0, at: t)
                continue
            }
            // Worker 0's copy is taken before its statements of this step (e.g. just before a boundary).
            let (behind, allButLatest) = (workers[0], all)
            record(0, at: t)
            let (view, viewBehind) = (mergedView(Array(workers.reversed()), collector: collector),
                                      mergedView([behind] + workers[1...], collector: collector))
            for now in [t, t + 0.1] {
                assertSame(view, all, now: now, "all copies")
                assertSame(viewBehind, allButLatest, now: now, "worker 0 a step behind")
            }
            checked += 1
        }
        XCTAssertEqual(checked, 24)
        XCTAssertGreaterThan(all.latencyRows(now: 60).reduce(0) { $0 + $1.totals.calls }, 300)
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
