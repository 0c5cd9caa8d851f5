// `switchyard --microbench NAME`: in-process timings of the proxy's hot paths, meant for a release build
// (bench/run.sh prints them beside the pgbench table). Each benchmark is a case of `Microbenchmark`; a new one
// (as `stats` did) adds a case and a branch in `Microbenchmark.run`, and reuses `MicroTimer` and the output.
import ArgumentParser
import Foundation
import ProxyCore
import ProxyIO

/// The benchmarks `--microbench` can run.
enum Microbenchmark: String, CaseIterable, ExpressibleByArgument {
    /// Classifier.classify: a cached fingerprint hit and a miss (libpg_query parse), plus its parts.
    case classifier
    /// What stats cost per statement: StatsRegistry.record, and with the fingerprint it needs.
    case stats

    func run(timer: MicroTimer) -> MicrobenchReport {
        switch self {
        case .classifier: return ClassifierMicrobench.run(timer: timer)
        case .stats: return StatsMicrobench.run(timer: timer)
        }
    }
}

enum MicrobenchFormat: String, CaseIterable, ExpressibleByArgument {
    case json
    case markdown
}

/// The command-line options; `run()` of the command calls `runIfRequested()` first.
struct MicrobenchOptions: ParsableArguments {
    @Option(name: .long, help: "Time a hot path in-process and exit (\(Microbenchmark.allCases.map(\.rawValue).joined(separator: ", "))). Use a release build.")
    var microbench: Microbenchmark?

    @Option(name: .long, help: "Output of --microbench: json or markdown.")
    var microbenchFormat: MicrobenchFormat = .markdown

    @Option(name: .long, help: "Seconds of CPU time per --microbench case (split into 5 samples).")
    var microbenchSeconds: Double = 1.0

    /// Runs the requested benchmark and prints its report; false when none was asked for.
    func runIfRequested() throws -> Bool {
        guard let microbench else { return false }
        guard microbenchSeconds > 0 else { throw ValidationError("--microbench-seconds must be positive") }
        #if DEBUG
        FileHandle.standardError.write(Data("switchyard: warning: --microbench in a debug build; use swift build -c release\n".utf8))
        #endif
        let report = microbench.run(timer: MicroTimer(seconds: microbenchSeconds))
        switch microbenchFormat {
        case .json: print(report.json())
        case .markdown: print(report.markdown())
        }
        return true
    }
}

// MARK: Timing

/// One timed case: nanoseconds per operation over several samples.
struct MicrobenchResult {
    var name: String
    var detail: String
    /// Operations per sample.
    var operations: Int
    /// Thread CPU time per operation, one value per sample.
    var cpuNs: [Double]
    /// Wall-clock time per operation, one value per sample.
    var wallNs: [Double]

    var cpuMedian: Double { Self.median(cpuNs) }
    var cpuMin: Double { cpuNs.min() ?? .nan }
    var wallMedian: Double { Self.median(wallNs) }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// A named loop: `body(count)` performs `count` operations.
struct MicroCase {
    var name: String
    var detail: String
    var body: (Int) -> Void
}

/// Times cases: calibrates each so a sample takes about seconds / samples of thread CPU time, then takes the
/// samples round-robin over the cases, so a burst of load elsewhere on the machine hits them all alike. Thread
/// CPU time (CLOCK_THREAD_CPUTIME_ID) leaves out time other processes hold the core; wall time is kept too.
struct MicroTimer {
    var seconds: Double
    var samples = 5

    static func now(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func measure(_ cases: [MicroCase]) -> [MicrobenchResult] {
        let perSample = seconds / Double(samples) * 1e9
        let counts = cases.map { c -> Int in
            c.body(1)   // warm up (first-use allocations, caches)
            var count = 1
            while true {
                let t0 = Self.now(CLOCK_THREAD_CPUTIME_ID)
                c.body(count)
                let ns = Double(Self.now(CLOCK_THREAD_CPUTIME_ID) - t0)
                if ns >= perSample / 4 || count >= 1 << 30 {
                    return max(1, Int(Double(count) * perSample / max(ns, 1)))
                }
                count *= 4
            }
        }
        var results = zip(cases, counts).map {
            MicrobenchResult(name: $0.name, detail: $0.detail, operations: $1, cpuNs: [], wallNs: [])
        }
        for _ in 0..<samples {
            for (i, c) in cases.enumerated() {
                let count = counts[i]
                let w0 = Self.now(CLOCK_MONOTONIC)
                let c0 = Self.now(CLOCK_THREAD_CPUTIME_ID)
                c.body(count)
                let c1 = Self.now(CLOCK_THREAD_CPUTIME_ID)
                let w1 = Self.now(CLOCK_MONOTONIC)
                results[i].cpuNs.append(Double(c1 - c0) / Double(count))
                results[i].wallNs.append(Double(w1 - w0) / Double(count))
            }
        }
        return results
    }
}

struct MicrobenchReport {
    var benchmark: String
    var results: [MicrobenchResult]
    /// Facts that show the cases measured what they say (cache hits, parse counts), printed with the report.
    var checks: [String: Int]
    var notes: [String]

    static var build: String {
        #if DEBUG
        return "debug"
        #else
        return "release"
        #endif
    }

    func json() -> String {
        let object: [String: Any] = [
            "benchmark": benchmark,
            "build": Self.build,
            "unit": "ns per statement",
            "checks": checks,
            "notes": notes,
            "results": results.map { r in
                [
                    "name": r.name, "detail": r.detail, "operations_per_sample": r.operations,
                    "cpu_ns_median": (r.cpuMedian * 10).rounded() / 10, "cpu_ns_min": (r.cpuMin * 10).rounded() / 10,
                    "wall_ns_median": (r.wallMedian * 10).rounded() / 10,
                ] as [String: Any]
            },
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    func markdown() -> String {
        func us(_ ns: Double) -> String { String(format: "%.2f", ns / 1000) }
        var lines = [
            "| case | what | CPU µs/statement (median) | min | wall µs (median) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in results {
            lines.append("| \(r.name) | \(r.detail) | \(us(r.cpuMedian)) | \(us(r.cpuMin)) | \(us(r.wallMedian)) |")
        }
        lines.append("")
        lines.append("\(benchmark) microbenchmark, \(Self.build) build; "
            + checks.filter { $0.key != "sink" }.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }
            .joined(separator: ", "))
        lines.append(contentsOf: notes.map { "- " + $0 })
        return lines.joined(separator: "\n")
    }
}

// MARK: Classifier

enum ClassifierMicrobench {
    /// pgbench's built-in select-only statement as `-M simple` sends it (the variable substituted in the text).
    static func pgbenchSelect(_ aid: Int) -> String { "SELECT abalance FROM pgbench_accounts WHERE aid = \(aid);" }

    /// Distinct statement shapes: pgbench's TPC-B-like script and what applications send (reads, writes,
    /// transaction control, locking, volatile functions, CTEs, multi-statement text).
    static let distinct: [String] = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
        "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 4711;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + -1234 WHERE tid = 7;",
        "UPDATE pgbench_branches SET bbalance = bbalance + -1234 WHERE bid = 3;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 3, 4711, -1234, CURRENT_TIMESTAMP);",
        "BEGIN;",
        "END;",
        "SELECT u.id, u.email, u.created_at FROM users u WHERE u.id = $1 LIMIT 1",
        "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
            + "WHERE o.created_at > now() - interval '7 days' ORDER BY o.created_at DESC LIMIT 50",
        "SELECT count(*) FROM events WHERE kind IN ('a', 'b', 'c') AND ts >= '2026-01-01'",
        "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') "
            + "SELECT customer_id, sum(total) FROM recent GROUP BY customer_id HAVING sum(total) > 100",
        "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED",
        "SELECT nextval('orders_id_seq')",
        "SELECT random() AS r, clock_timestamp()",
        "SHOW search_path",
        "SET application_name = 'web-1'",
        "EXPLAIN SELECT * FROM pgbench_accounts WHERE aid = 1",
        "BEGIN READ ONLY",
        "WITH moved AS (DELETE FROM queue WHERE id = 5 RETURNING *) INSERT INTO archive SELECT * FROM moved",
        "SELECT a.aid, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON a.bid = b.bid "
            + "WHERE a.aid BETWEEN 1 AND 100 UNION ALL SELECT 0, 0; SELECT 1",
    ]

    static func run(timer: MicroTimer) -> MicrobenchReport {
        // Texts built beforehand so string formatting is not timed; aids as pgbench -s 10 draws them.
        var rng = SystemRandomNumberGenerator()
        let selects = (0..<4096).map { _ in pgbenchSelect(Int.random(in: 1...1_000_000, using: &rng)) }
        let parser = PgQueryParser()
        var sink = 0
        var checks: [String: Int] = [:]
        var cases: [MicroCase] = []

        // 1. Cached: one parse, then every text with other literals is a fingerprint hit.
        let cached = Classifier(parser: parser, catalog: BuiltinFunctionCatalog())
        cases.append(MicroCase(name: "cached", detail: "classify(pgbench -S text), literal varies: fingerprint + cache hit") { n in
            var i = 0
            for _ in 0..<n {
                if cached.classify(selects[i]).route == .replica { sink &+= 1 }
                i = i == selects.count - 1 ? 0 : i + 1
            }
        })

        // 2. Cached, the 20 shapes (longer texts, some primary-bound).
        let warm = Classifier(parser: parser, catalog: BuiltinFunctionCatalog())
        for sql in distinct { _ = warm.classify(sql) }
        cases.append(MicroCase(name: "cached-mix", detail: "classify, \(distinct.count) distinct statements, all cached") { n in
            var i = 0
            for _ in 0..<n {
                if warm.classify(distinct[i]).route == .replica { sink &+= 1 }
                i = i == distinct.count - 1 ? 0 : i + 1
            }
        })

        // 3. Uncached: the cache is cleared before every statement, so each is fingerprinted, parsed by
        // libpg_query, decoded from JSON, walked and stored.
        let cold = Classifier(parser: parser, catalog: BuiltinFunctionCatalog())
        cases.append(MicroCase(name: "uncached", detail: "invalidate() + classify, \(distinct.count) distinct statements: libpg_query parse") { n in
            var i = 0
            for _ in 0..<n {
                cold.invalidate()
                if cold.classify(distinct[i]).route == .replica { sink &+= 1 }
                i = i == distinct.count - 1 ? 0 : i + 1
            }
        })

        // Parts, to see where the time goes.
        cases.append(MicroCase(name: "fingerprint", detail: "Fingerprint.of(pgbench -S text): lexer + normalise + FNV-1a") { n in
            var i = 0
            for _ in 0..<n {
                sink &+= Int(truncatingIfNeeded: Fingerprint.of(selects[i]).id & 1)
                i = i == selects.count - 1 ? 0 : i + 1
            }
        })
        cases.append(MicroCase(name: "text-key", detail: "Fingerprint.textKey(utf8:) of pgbench -S text: the key the hot path finds fingerprints by") { n in
            var i = 0
            for _ in 0..<n {
                var text = selects[i]
                sink &+= Int(truncatingIfNeeded: text.withUTF8 { Fingerprint.textKey(utf8: UnsafeRawBufferPointer($0)).id } & 1)
                i = i == selects.count - 1 ? 0 : i + 1
            }
        })
        // pgbench's TPC-B-like statements (BEGIN and END aside), literals varying as pgbench draws them.
        let tpcb: [[UInt8]] = (0..<1024).map { k in
            let (aid, tid, bid, delta) = (Int.random(in: 1...1_000_000, using: &rng), Int.random(in: 1...100, using: &rng),
                                          Int.random(in: 1...10, using: &rng), Int.random(in: -5000...5000, using: &rng))
            switch k % 5 {
            case 0: return Array("UPDATE pgbench_accounts SET abalance = abalance + \(delta) WHERE aid = \(aid);".utf8)
            case 1: return Array("SELECT abalance FROM pgbench_accounts WHERE aid = \(aid);".utf8)
            case 2: return Array("UPDATE pgbench_tellers SET tbalance = tbalance + \(delta) WHERE tid = \(tid);".utf8)
            case 3: return Array("UPDATE pgbench_branches SET bbalance = bbalance + \(delta) WHERE bid = \(bid);".utf8)
            default: return Array("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (\(tid), \(bid), \(aid), \(delta), CURRENT_TIMESTAMP);".utf8)
            }
        }
        let tpcbBytes = tpcb.reduce(0) { $0 + $1.count }
        cases.append(MicroCase(name: "text-key-tpcb", detail: "Fingerprint.textKey(utf8:) of pgbench TPC-B-like statements (\(tpcbBytes / tpcb.count) bytes each on average)") { n in
            var i = 0
            for _ in 0..<n {
                sink &+= Int(truncatingIfNeeded: tpcb[i].withUnsafeBytes { Fingerprint.textKey(utf8: $0).id } & 1)
                i = i == tpcb.count - 1 ? 0 : i + 1
            }
        })
        cases.append(MicroCase(name: "fingerprint-mix", detail: "Fingerprint.of, \(distinct.count) distinct statements") { n in
            var i = 0
            for _ in 0..<n {
                sink &+= Int(truncatingIfNeeded: Fingerprint.of(distinct[i]).id & 1)
                i = i == distinct.count - 1 ? 0 : i + 1
            }
        })
        cases.append(MicroCase(name: "parse-mix", detail: "libpg_query parse to JSON only, \(distinct.count) distinct statements") { n in
            var i = 0
            for _ in 0..<n {
                if case let .success(json) = parser.parseJSON(distinct[i]) { sink &+= json.utf8.count & 1 }
                i = i == distinct.count - 1 ? 0 : i + 1
            }
        })
        let results = timer.measure(cases)
        checks["cached_parses"] = cached.parseCount
        checks["cached_hits"] = cached.cacheHits
        checks["uncached_parses"] = cold.parseCount
        checks["uncached_hits"] = cold.cacheHits
        checks["statements_distinct"] = distinct.count
        checks["replica_routed_distinct"] = distinct.filter { warm.classify($0).route == .replica }.count
        checks["sink"] = sink & 1   // keeps the loops' results alive (JSON only)
        return MicrobenchReport(
            benchmark: "classifier", results: results, checks: checks,
            notes: [
                "uncached includes invalidate() (dropping a one-entry cache) before each statement",
                "uncached - fingerprint-mix - parse-mix ≈ JSON decode + tree walk + cache insert",
            ])
    }
}

/// Stats recording per statement: the registry update alone (a known fingerprint, three backends, two databases,
/// windows rotating on a 20 µs-per-statement clock), and with the fingerprint of a pgbench -S text before it.
enum StatsMicrobench {
    static func run(timer: MicroTimer) -> MicrobenchReport {
        var registry = StatsRegistry(now: 0)
        let backends: [(String, BackendRole)] = [("primary", .primary), ("r1", .replica), ("r2", .replica)]
        var clock = 0.0
        var n = 0
        var rng = SystemRandomNumberGenerator()
        let selects = (0..<4096).map { _ in ClassifierMicrobench.pgbenchSelect(Int.random(in: 1...1_000_000, using: &rng)) }
        var fingerprints = FingerprintCache()
        func record(_ fingerprint: UInt64) {
            let (backend, role) = backends[n % 3]
            registry.record(StatementSample(fingerprint: fingerprint, database: "sydb", backend: backend, role: role,
                                            micros: UInt64(100 + n % 5000), rows: 1, bytesReceived: 60, bytesSent: 200,
                                            transactionMicros: UInt64(100 + n % 5000)), now: clock) { "select $1" }
            n += 1
            clock += 20e-6
        }
        let cases = [
            MicroCase(name: "record", detail: "StatsRegistry.record of a known fingerprint (HdrHistogram + Prometheus series)") { count in
                for i in 0..<count { record(UInt64(i % 100)) }
            },
            MicroCase(name: "fingerprint+record", detail: "FingerprintCache.of(pgbench -S text) then record: the per-statement stats cost") { count in
                for i in 0..<count { record(fingerprints.of(selects[i % selects.count]).id) }
            },
        ]
        let results = timer.measure(cases)
        return MicrobenchReport(benchmark: "stats", results: results,
                                checks: ["fingerprints": registry.fingerprintCount, "statements": n],
                                notes: ["the proxy records one sample per Query or Sync (ReadyForQuery)"])
    }
}
