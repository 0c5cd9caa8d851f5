// The /metrics text: every line parses as Prometheus exposition, histogram buckets and counts match what was
// recorded per backend and per route, counters and scrape-time gauges appear with their labels.
@testable import ProxyCore
import XCTest

final class StatsMetricsTests: XCTestCase {
    /// Series ("name{labels}") to value; fails the test on a line that is not a comment or `series value`.
    func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String: Double] {
        var series: [String: Double] = [:]
        var typed: Set<String> = []
        for row in text.split(separator: "\n") {
            if row.hasPrefix("# TYPE ") {
                typed.insert(String(row.split(separator: " ")[2]))
                continue
            }
            if row.hasPrefix("#") { continue }
            guard let space = row.lastIndex(of: " "), let value = Double(row[row.index(after: space)...]) else {
                XCTFail("not a sample line: \(row)", file: file, line: line)
                continue
            }
            let name = String(row[..<space])
            let family = String(name.prefix { $0 != "{" })
            let base = ["_bucket", "_sum", "_count"].reduce(family) { f, suffix in
                f.hasSuffix(suffix) && typed.contains(String(f.dropLast(suffix.count))) ? String(f.dropLast(suffix.count)) : f
            }
            XCTAssertTrue(typed.contains(base), "no # TYPE before \(name)", file: file, line: line)
            XCTAssertNil(series[name], "\(name) twice", file: file, line: line)
            series[name] = value
        }
        return series
    }

    func testHistogramsCountersAndGaugesPerBackendAndRoute() throws {
        var r = StatsRegistry(now: 0)
        func record(_ backend: String, _ role: BackendRole, _ micros: UInt64, _ outcome: StatementSample.Outcome = .ok) {
            r.record(StatementSample(fingerprint: 1, database: "app", backend: backend, role: role, micros: micros,
                                     outcome: outcome), now: 1) { "q" }
        }
        record("r1", .replica, 400)
        record("r1", .replica, 800)
        record("r1", .replica, 3000, .error(sqlstate: "42P01"))
        record("r2", .replica, 20_000_000, .timeout)   // beyond the last bucket (10 s)
        record("primary", .primary, 700)
        record("primary", .primary, 120_000)
        r.recordMisroute(backend: "r1", role: .replica, now: 2)

        let inputs = ScrapeInputs(
            clientConnections: ["active": 5, "waiting": 1],
            serverConnections: [ScrapeInputs.Servers(backend: "r1", role: .replica, state: "idle", count: 3)],
            replicaLag: [ScrapeInputs.Lag(backend: "r1", bytes: 1024, seconds: 0.25),
                         ScrapeInputs.Lag(backend: "r2", bytes: nil, seconds: nil)])
        let m = parse(r.prometheusText(inputs))

        let r1 = #"backend="r1",role="replica""#
        let h = "switchyard_backend_query_duration_seconds"
        for (le, count) in [("0.0005", 1.0), ("0.001", 2), ("0.0025", 2), ("0.005", 3), ("10.0", 3), ("+Inf", 3)] {
            XCTAssertEqual(m["\(h)_bucket{\(r1),le=\"\(le)\"}"], count, "le=\(le)")
        }
        XCTAssertEqual(m["\(h)_count{\(r1)}"], 3)
        XCTAssertEqual(try XCTUnwrap(m["\(h)_sum{\(r1)}"]), 0.0042, accuracy: 1e-9)
        XCTAssertEqual(m["\(h)_bucket{backend=\"r2\",role=\"replica\",le=\"10.0\"}"], 0)
        XCTAssertEqual(m["\(h)_bucket{backend=\"r2\",role=\"replica\",le=\"+Inf\"}"], 1)
        XCTAssertEqual(m["\(h)_count{backend=\"primary\",role=\"primary\"}"], 2)
        // 14 buckets and +Inf, counts cumulative.
        let r1Buckets = m.filter { $0.key.hasPrefix("\(h)_bucket{\(r1)") }.map { key, count in
            (le: Double(key.split(separator: "\"")[5]) ?? .infinity, count: count)
        }.sorted { $0.le < $1.le }
        XCTAssertEqual(r1Buckets.count, 15)
        XCTAssertEqual(r1Buckets.map(\.count), r1Buckets.map(\.count).sorted())

        let route = "switchyard_route_query_duration_seconds"
        XCTAssertEqual(m["\(route)_count{route=\"replica\"}"], 4)
        XCTAssertEqual(m["\(route)_count{route=\"primary\"}"], 2)
        XCTAssertEqual(m["\(route)_bucket{route=\"primary\",le=\"0.001\"}"], 1)
        XCTAssertEqual(m["\(route)_bucket{route=\"primary\",le=\"0.25\"}"], 2)

        XCTAssertEqual(m["switchyard_backend_queries_total{\(r1)}"], 3)
        XCTAssertEqual(m["switchyard_backend_errors_total{\(r1)}"], 1)
        XCTAssertEqual(m["switchyard_backend_errors_total{backend=\"r2\",role=\"replica\"}"], 1)
        XCTAssertEqual(m["switchyard_backend_statement_timeouts_total{backend=\"r2\",role=\"replica\"}"], 1)
        XCTAssertEqual(m["switchyard_backend_statement_timeouts_total{\(r1)}"], 0)
        XCTAssertEqual(m["switchyard_backend_misroutes_total{\(r1)}"], 1)

        XCTAssertEqual(m["switchyard_client_connections{state=\"active\"}"], 5)
        XCTAssertEqual(m["switchyard_client_connections{state=\"waiting\"}"], 1)
        XCTAssertEqual(m["switchyard_server_connections{\(r1),state=\"idle\"}"], 3)
        XCTAssertEqual(m["switchyard_replica_lag_bytes{backend=\"r1\"}"], 1024)
        XCTAssertEqual(m["switchyard_replica_lag_seconds{backend=\"r1\"}"], 0.25)
        XCTAssertNil(m["switchyard_replica_lag_bytes{backend=\"r2\"}"], "unknown lag has no series")

        // Lag that becomes unknown removes the series; a later scrape sets it again.
        let unknown = ScrapeInputs(replicaLag: [ScrapeInputs.Lag(backend: "r1", bytes: nil, seconds: nil)])
        XCTAssertNil(parse(r.prometheusText(unknown))["switchyard_replica_lag_bytes{backend=\"r1\"}"])
        let known = ScrapeInputs(replicaLag: [ScrapeInputs.Lag(backend: "r1", bytes: 7, seconds: 0)])
        XCTAssertEqual(parse(r.prometheusText(known))["switchyard_replica_lag_bytes{backend=\"r1\"}"], 7)
    }

    func testLabelValuesAreEscaped() {
        var r = StatsRegistry(now: 0)
        r.record(StatementSample(fingerprint: 1, database: "app", backend: "odd \"name\"\\x", role: .replica,
                                 micros: 10), now: 0) { "q" }
        let text = r.prometheusText()
        XCTAssertTrue(text.contains(#"switchyard_backend_queries_total{backend="odd \"name\"\\x",role="replica"} 1"#))
    }

    func testWorkersSharingACollectorAddUp() {
        let collector = MetricsCollector()
        var a = StatsRegistry(now: 0, collector: collector)
        var b = StatsRegistry(now: 0, collector: collector)
        let s = StatementSample(fingerprint: 1, database: "app", backend: "r1", role: .replica, micros: 100)
        for _ in 0..<3 { a.record(s, now: 0) { "q" } }
        for _ in 0..<4 { b.record(s, now: 0) { "q" } }
        let m = parse(a.prometheusText())
        XCTAssertEqual(m[#"switchyard_backend_query_duration_seconds_count{backend="r1",role="replica"}"#], 7)
        XCTAssertEqual(m[#"switchyard_route_query_duration_seconds_count{route="replica"}"#], 7)
    }

    /// A bound is inclusive (Prometheus `le`): 500 µs counts at le=0.0005, 501 µs at the next bucket; the sum is
    /// exact microseconds; a registry that only merged (a SHOW or summary view) adds no series of its own.
    func testBucketBoundsAreInclusiveAndMergedViewsAddNothing() {
        let collector = MetricsCollector()
        var worker = StatsRegistry(now: 0, collector: collector)
        for micros: UInt64 in [500, 501, 1000, 10_000_000, 10_000_001] {
            worker.record(StatementSample(fingerprint: 1, database: "app", backend: "primary", role: .primary,
                                          micros: micros), now: 0) { "q" }
        }
        var view = StatsRegistry(now: 0, collector: collector)
        view.merge(worker)
        let m = parse(view.prometheusText())
        let h = #"switchyard_backend_query_duration_seconds_bucket{backend="primary",role="primary",le="#
        XCTAssertEqual(m[h + #""0.0005"}"#], 1)
        XCTAssertEqual(m[h + #""0.001"}"#], 3)
        XCTAssertEqual(m[h + #""10.0"}"#], 4)
        XCTAssertEqual(m[h + #""+Inf"}"#], 5)
        XCTAssertEqual(try XCTUnwrap(m[#"switchyard_backend_query_duration_seconds_sum{backend="primary",role="primary"}"#]),
                       20.002002, accuracy: 1e-9)
        XCTAssertEqual(m[#"switchyard_route_query_duration_seconds_bucket{route="primary",le="0.0005"}"#], 1)
        XCTAssertNil(m[#"switchyard_route_query_duration_seconds_count{route="replica"}"#], "no replica statement yet")
        XCTAssertEqual(m[#"switchyard_backend_queries_total{backend="primary",role="primary"}"#], 5)
    }
}
