// Query-log lines: logfmt quoting and JSON escaping of quotes, newlines, control and format characters and
// unicode; and the sampler's decisions with a scripted random source.
import Foundation
@testable import ProxyCore
import XCTest

/// Returns the given fractions in turn as QuerySampler reads them (the top 53 bits).
struct ScriptedRandom: RandomNumberGenerator {
    var fractions: [Double]
    var draws = 0

    mutating func next() -> UInt64 {
        let f = fractions[draws % fractions.count]
        draws += 1
        return UInt64(f * 0x1p53) << 11
    }
}

final class StatsQueryLogTests: XCTestCase {
    func line(query: String = "select $1", applicationName: String = "psql",
              outcome: StatementSample.Outcome = .ok) -> QueryLogLine {
        QueryLogLine(durationMicros: 1_234_567, fingerprint: 0xabc, query: query, backend: "r1", role: .replica,
                     user: "app", database: "shop", client: "10.0.0.7:5123", applicationName: applicationName,
                     rows: 3, outcome: outcome)
    }

    func testLogfmtQuotesOnlyWhatNeedsIt() {
        XCTAssertEqual(line().formatted(.logfmt),
                       "duration_ms=1234.567 fingerprint=0000000000000abc query=\"select $1\" backend=r1 role=replica "
                           + "user=app database=shop client=10.0.0.7:5123 application_name=psql rows=3 outcome=ok")
        let tricky = line(query: "select \"a\"\nfrom t\twhere x = $1 -- \\", applicationName: "",
                          outcome: .error(sqlstate: "57014"))
        XCTAssertEqual(tricky.formatted(.logfmt),
                       #"duration_ms=1234.567 fingerprint=0000000000000abc query="select \"a\"\nfrom t\twhere x = $1 -- \\" "#
                           + #"backend=r1 role=replica user=app database=shop client=10.0.0.7:5123 application_name="" "#
                           + "rows=3 outcome=error sqlstate=57014")
        XCTAssertTrue(line(outcome: .timeout).formatted(.logfmt).hasSuffix(" outcome=timeout"))
    }

    func testLogfmtUnicode() {
        // Printable unicode is kept as is (quoted only for the space); controls, format and separator characters
        // are escaped, above U+FFFF as a surrogate pair.
        XCTAssertTrue(line(applicationName: "naïve😀").formatted(.logfmt).contains(" application_name=naïve😀 "))
        XCTAssertTrue(line(applicationName: "café ☕").formatted(.logfmt).contains(#" application_name="café ☕" "#))
        XCTAssertTrue(line(applicationName: "a\u{2028}b\u{7}c\u{E0001}").formatted(.logfmt)
            .contains(#" application_name="a\u2028b\u0007c\udb40\udc01" "#))
        XCTAssertTrue(line(applicationName: "k=v").formatted(.logfmt).contains(#" application_name="k=v" "#))
    }

    func testJSONRoundTrips() throws {
        let query = "select \"x\", 'é' from \"T\"\nwhere a = $1 and b like '\\%' \u{2028}\u{0}\u{1F}😀"
        let text = line(query: query, applicationName: "app \"1\"", outcome: .error(sqlstate: "23505"))
            .formatted(.json)
        XCTAssertFalse(text.contains("\n"), "one line")
        XCTAssertTrue(text.hasPrefix(#"{"duration_ms":1234.567,"fingerprint":"0000000000000abc","query":"select \"x\""#))
        XCTAssertTrue(text.contains(#"\u0000\u001f"#))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["query"] as? String, query)
        XCTAssertEqual(object["application_name"] as? String, "app \"1\"")
        XCTAssertEqual(try XCTUnwrap(object["duration_ms"] as? Double), 1234.567, accuracy: 1e-9)
        XCTAssertEqual(object["rows"] as? Int, 3)
        XCTAssertEqual(object["outcome"] as? String, "error")
        XCTAssertEqual(object["sqlstate"] as? String, "23505")
        XCTAssertEqual(object.count, 12)
        let ok = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line().formatted(.json).utf8)) as? [String: Any])
        XCTAssertNil(ok["sqlstate"])
    }

    func testSamplerDecisions() {
        var random = ScriptedRandom(fractions: [0.1, 0.9, 0.2499, 0.25])
        let all = QuerySampler(mode: .all, sampleRate: 0.25, slowThreshold: 1)
        XCTAssertEqual(all.slowThresholdMicros, 1_000_000)
        XCTAssertEqual((0..<4).map { _ in all.shouldLog(micros: 10, random: &random) }, [true, false, true, false])
        XCTAssertTrue(all.shouldLog(micros: 1_000_000, random: &random), "slow statements are always logged")
        XCTAssertEqual(random.draws, 4, "no draw for a slow statement")

        let slow = QuerySampler(mode: .slow, sampleRate: 1, slowThreshold: 0.5)
        XCTAssertFalse(slow.shouldLog(micros: 499_999, random: &random))
        XCTAssertTrue(slow.shouldLog(micros: 500_000, random: &random))
        let off = QuerySampler(mode: .off, sampleRate: 1, slowThreshold: 0.001)
        XCTAssertFalse(off.shouldLog(micros: 10_000_000, random: &random))
        let noSlowLog = QuerySampler(mode: .slow, sampleRate: 1, slowThreshold: 0)
        XCTAssertFalse(noSlowLog.shouldLog(micros: 10_000_000, random: &random))
        XCTAssertTrue(QuerySampler(mode: .all, sampleRate: 1, slowThreshold: 0).shouldLog(micros: 1, random: &random))
        XCTAssertFalse(QuerySampler(mode: .all, sampleRate: 0, slowThreshold: 0).shouldLog(micros: 1, random: &random))
        XCTAssertEqual(random.draws, 4, "rates 0 and 1 need no draw")
        XCTAssertEqual(QuerySampler(mode: .all, sampleRate: 7, slowThreshold: 0).sampleRate, 1)
    }

    func testSamplingRateOverManyStatements() {
        var random = RoutingTestRNG(seed: 42)   // SplitMix64, from BackendsTests
        let sampler = QuerySampler(mode: .all, sampleRate: 0.1, slowThreshold: 0)
        let logged = (0..<100_000).filter { _ in sampler.shouldLog(micros: 5, random: &random) }.count
        XCTAssertEqual(Double(logged), 10_000, accuracy: 400)
    }
}
