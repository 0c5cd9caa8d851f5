// Fingerprint normalisation: literals, comments, whitespace, case and IN lists fold; structure does not;
// bad input never traps. Also RouteHint's comment scan.
import XCTest
import ProxyCore

final class FingerprintTests: XCTestCase {
    private func same(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Fingerprint.of(a), Fingerprint.of(b), "\(a) vs \(b)", file: file, line: line)
        XCTAssertEqual(Fingerprint.of(a).id, Fingerprint.of(b).id, file: file, line: line)
    }

    private func differ(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(Fingerprint.of(a), Fingerprint.of(b), "\(a) vs \(b)", file: file, line: line)
        XCTAssertNotEqual(Fingerprint.of(a).id, Fingerprint.of(b).id, file: file, line: line)
    }

    func testBytesAndStringGiveTheSameFingerprint() {
        for sql in ["SELECT abalance FROM pgbench_accounts WHERE aid = 42;", "select 'é' || $1, \"Q\" from t where x in (1, 2)"] {
            var text = sql
            let fromBytes = text.withUTF8 { Fingerprint.of(utf8: UnsafeRawBufferPointer($0)) }
            XCTAssertEqual(fromBytes, Fingerprint.of(sql))
        }
    }

    func testNormalizedText() {
        XCTAssertEqual(Fingerprint.of("SELECT * FROM t WHERE id = 42 AND name = 'bob'").normalized,
                       "select * from t where id = $1 and name = $2")
        XCTAssertEqual(Fingerprint.of("select \"MyCol\" from \"T\"\"x\" where a IN (1, 2, 3);").normalized,
                       "select \"MyCol\" from \"T\"\"x\" where a in ( $1 )")
        XCTAssertEqual(Fingerprint.of("SELECT $1, $2::int").normalized, "select $1 , $2 :: int")
        XCTAssertEqual(Fingerprint.of("").normalized, "")
        XCTAssertEqual(Fingerprint.of("").id, 0xcbf2_9ce4_8422_2325) // FNV-1a offset basis
    }

    func testLiteralsFold() {
        same("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 987654")
        same("SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'it''s longer'")
        same("SELECT 1.5e3, E'x\\ny', $$dollar$$", "SELECT 2, 'plain', $tag$other$tag$")
        same("SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = 7")
        same("INSERT INTO t VALUES (1, 'a', B'101', X'1F')", "INSERT INTO t VALUES (2, 'b', B'0', X'FF')")
    }

    func testCommentsAndWhitespaceFold() {
        same("SELECT  a\n\tFROM t -- trailing\n", "SELECT a FROM t")
        same("/* leading /* nested */ */ SELECT a FROM t", "SELECT a FROM t")
        same("SELECT a FROM t;", "SELECT a FROM t")
        same("SELECT a /* switchyard:replica */ FROM t", "SELECT a FROM t")
    }

    func testCaseFolds() {
        same("SELECT A FROM T WHERE B = 1", "select a from t where b = 2")
        differ("SELECT \"A\" FROM t", "SELECT a FROM t")
        differ("SELECT \"a\" FROM t", "SELECT a FROM t") // quoted identifiers are kept apart from words
    }

    func testInListsCollapse() {
        same("SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN (1, 2, 3, 4, 5)")
        same("SELECT * FROM t WHERE id IN ('a','b')", "SELECT * FROM t WHERE id IN ($1, $2, $3)")
        same("SELECT * FROM t WHERE id IN (-1, +2)", "SELECT * FROM t WHERE id IN (7)")
        same("SELECT * FROM t WHERE id NOT IN (1,2) AND x = 3", "SELECT * FROM t WHERE id NOT IN (9) AND x = 4")
        // Not a literal list: kept as written.
        differ("SELECT * FROM t WHERE id IN (1, nextval('s'))", "SELECT * FROM t WHERE id IN (1)")
        differ("SELECT * FROM t WHERE id IN (SELECT 1)", "SELECT * FROM t WHERE id IN (1)")
        differ("SELECT * FROM t WHERE id IN (a, b)", "SELECT * FROM t WHERE id IN (1, 2)")
    }

    func testStructureDiffers() {
        differ("SELECT a FROM t", "SELECT b FROM t")
        differ("SELECT a FROM t", "SELECT a FROM t FOR UPDATE")
        differ("SELECT 1", "SELECT 1; SELECT 2")
        differ("SELECT f(1)", "SELECT g(1)")
        differ("SELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x < 1")
        differ("SELECT 1 @- 2", "SELECT 1 @ - 2")
        same("SELECT 1 <- 2", "SELECT 1 < - 2") // Postgres lexes <- as < then -
        differ("COPY t TO STDOUT", "COPY t TO 'stdout'")
        differ("SELECT data ? 'k' FROM t", "SELECT data ?| 'k' FROM t")
    }

    func testUnterminatedInputDoesNotTrap() {
        for sql in ["SELECT 'abc", "SELECT \"abc", "SELECT $x$ abc", "SELECT /* abc", "SELECT E'\\", "U&'",
                    "SELECT * FROM t WHERE id IN (1, 2", "IN (", "in", "$", "--", "/*/", "'", "\u{0}\u{FFFF}é"] {
            let f = Fingerprint.of(sql)
            XCTAssertEqual(f, Fingerprint.of(sql))
            _ = RouteHint.find(in: sql)
        }
        same("SELECT 'abc", "SELECT 'x")
    }

    func testRouteHints() {
        XCTAssertEqual(RouteHint.find(in: "/* switchyard:primary */ SELECT 1"), .primary)
        XCTAssertEqual(RouteHint.find(in: "SELECT 1 /* switchyard:replica */"), .replica)
        XCTAssertEqual(RouteHint.find(in: "SELECT 1 -- switchyard:replica"), .replica)
        XCTAssertEqual(RouteHint.find(in: "SELECT 1 /* app=web SwitchYard: Replica */"), .replica)
        XCTAssertEqual(RouteHint.find(in: "SELECT 1 /* outer /* switchyard:replica */ still */"), .replica)
        XCTAssertEqual(RouteHint.find(in: "/*switchyard:replica*/ SELECT 1 /*switchyard:primary*/"), .primary)
        XCTAssertNil(RouteHint.find(in: "SELECT 1"))
        XCTAssertNil(RouteHint.find(in: "SELECT '/* switchyard:replica */'"))
        XCTAssertNil(RouteHint.find(in: "SELECT E'\\' /* switchyard:replica */'"))
        XCTAssertNil(RouteHint.find(in: "SELECT $q$ -- switchyard:replica $q$"))
        XCTAssertNil(RouteHint.find(in: "SELECT \"-- switchyard:replica\" FROM t"))
        XCTAssertNil(RouteHint.find(in: "SELECT switchyard:replica"))
        XCTAssertNil(RouteHint.find(in: "SELECT 1 /* switchyard:other */"))
        XCTAssertEqual(RouteHint.find(in: "SELECT x$y$ FROM t /* switchyard:replica */"), .replica)
    }
}
