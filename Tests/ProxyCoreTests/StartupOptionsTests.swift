// Table-driven tests for StartupOptions: parsing libpq's `options` ("-c a=b", "--a=b", backslash-escaped
// spaces) and merging startup parameters into the SET list (later wins, names lowercased, non-identifiers dropped).
import XCTest
import ProxyCore

final class StartupOptionsTests: XCTestCase {
    private func flat(_ pairs: [(String, String)]) -> [String] { pairs.map { $0.0 + "=" + $0.1 } }

    func testGreetingWithoutAServer() {
        let server = ["application_name": "first", "DateStyle": "ISO, MDY", "client_encoding": "UTF8", "server_version": "15.18"]
        let cached = StartupOptions.cacheableGreeting(server, startup: [("application_name", "first")])
        XCTAssertEqual(cached?["application_name"], "", "one client's application_name is not another's")
        XCTAssertNil(StartupOptions.cacheableGreeting(server, startup: [("options", "-c DateStyle=German")]))
        let base = cached!
        XCTAssertEqual(StartupOptions.greeting(cached: base, startup: [])?["application_name"], "")
        XCTAssertEqual(StartupOptions.greeting(cached: base, startup: [("application_name", "pgbench")])?["application_name"], "pgbench")
        XCTAssertEqual(StartupOptions.greeting(cached: base, startup: [("client_encoding", "utf-8")])?["client_encoding"], "UTF8")
        // Values only a server can check: greeted from a server, which refuses bad ones at login.
        XCTAssertNil(StartupOptions.greeting(cached: base, startup: [("DateStyle", "German")]))
        XCTAssertNil(StartupOptions.greeting(cached: base, startup: [("client_encoding", "LATIN1")]))
        XCTAssertNil(StartupOptions.greeting(cached: base, startup: [("options", "-c search_path=x")]))
    }

    func testParseOptionsTable() {
        let cases: [(String, [String], UInt)] = [
            ("-c search_path=a,b -c statement_timeout=5s", ["search_path=a,b", "statement_timeout=5s"], #line),
            ("--datestyle=ISO", ["datestyle=ISO"], #line),
            ("-c application_name=a\\ b", ["application_name=a b"], #line),
            ("-capplication_name=x", ["application_name=x"], #line),
            ("  -c\twork_mem=64MB   --geqo=off  ", ["work_mem=64MB", "geqo=off"], #line),
            ("-c statement-timeout=1s --lock-timeout=2s", ["statement_timeout=1s", "lock_timeout=2s"], #line),
            ("-c search_path=a=b", ["search_path=a=b"], #line),
            ("-c x=", ["x="], #line),
            ("-c a\\\\b=1", ["a\\b=1"], #line),
            ("-c novalue -c ok=1", ["ok=1"], #line),
            ("stray -c ok=1 -x y=2", ["ok=1"], #line),
            ("-c", [], #line),
            ("", [], #line),
        ]
        for (text, expected, line) in cases {
            XCTAssertEqual(flat(StartupOptions.parseOptions(text)), expected, "options \(text)", line: line)
        }
    }

    func testOptionsBecomeParameters() {
        let params = StartupOptions.effectiveParameters([("options", "-c search_path=a,b -c statement_timeout=5s --datestyle=ISO")])
        XCTAssertEqual(flat(params), ["search_path=a,b", "statement_timeout=5s", "datestyle=ISO"])
    }

    func testEscapedSpaceSurvivesIntoTheValue() {
        let params = StartupOptions.effectiveParameters([("options", "-c application_name=a\\ b")])
        XCTAssertEqual(flat(params), ["application_name=a b"])
    }

    func testLaterValuesOverrideEarlierOnesAndMoveToTheirPosition() {
        let params = StartupOptions.effectiveParameters([
            ("application_name", "first"),
            ("client_encoding", "UTF8"),
            ("options", "-c application_name=second -c search_path=x"),
            ("search_path", "y"),
        ])
        XCTAssertEqual(flat(params), ["client_encoding=UTF8", "application_name=second", "search_path=y"])
    }

    func testLaterValueWithinOptionsWins() {
        let params = StartupOptions.effectiveParameters([("options", "-c work_mem=1MB --work_mem=2MB -c WORK_MEM=3MB")])
        XCTAssertEqual(flat(params), ["work_mem=3MB"])
    }

    func testNamesAreLowercasedValuesAreNot() {
        let params = StartupOptions.effectiveParameters([("DateStyle", "ISO, MDY"), ("options", "-c TimeZone=Europe/Paris")])
        XCTAssertEqual(flat(params), ["datestyle=ISO, MDY", "timezone=Europe/Paris"])
    }

    func testNonIdentifierNamesAreDropped() {
        let params = StartupOptions.effectiveParameters([
            ("bad name", "1"),
            ("semi;colon", "2"),
            ("", "3"),
            ("quote\"d", "4"),
            ("myext.setting", "5"),
            ("options", "-c bad\\ name=6 -c ok_1=7 -c drop-me;=8"),
        ])
        XCTAssertEqual(flat(params), ["myext.setting=5", "ok_1=7"])
    }

    func testNoOptionsMeansParametersPassThroughInOrder() {
        let params = StartupOptions.effectiveParameters([("application_name", "psql"), ("client_encoding", "UTF8")])
        XCTAssertEqual(flat(params), ["application_name=psql", "client_encoding=UTF8"])
    }

    func testEmptyInput() {
        XCTAssertEqual(flat(StartupOptions.effectiveParameters([])), [])
        XCTAssertEqual(flat(StartupOptions.effectiveParameters([("options", "")])), [])
    }
}
