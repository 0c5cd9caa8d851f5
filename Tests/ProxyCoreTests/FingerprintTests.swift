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
        XCTAssertEqual(Fingerprint.of("").id, Fingerprint(normalized: "").id)
        XCTAssertNotEqual(Fingerprint.of("").id, Fingerprint.of("x").id)
    }

    func testHashTakesEveryByteAndTheLength() {
        // Eight bytes per word: texts that differ in one byte anywhere, or only in length (a partial last word
        // padded with zero bits), have different ids.
        var ids = Set<UInt64>()
        for length in 0..<40 { ids.insert(Fingerprint(normalized: String(repeating: "a", count: length)).id) }
        XCTAssertEqual(ids.count, 40)
        let base = Array("select abalance from pgbench_accounts where aid = $1".utf8)
        var variants = Set<UInt64>([Fingerprint(normalized: String(decoding: base, as: UTF8.self)).id])
        for k in base.indices {
            var changed = base
            changed[k] ^= 1
            variants.insert(Fingerprint(normalized: String(decoding: changed, as: UTF8.self)).id)
        }
        XCTAssertEqual(variants.count, base.count + 1)
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

    // MARK: FingerprintCache

    func testCacheBuildsEachTextKeyOnceAndSharesItsText() {
        var cache = FingerprintCache(capacity: 100)
        let a = cache.of("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
        let b = cache.of("SELECT abalance FROM pgbench_accounts WHERE aid = 99999;")
        XCTAssertEqual(cache.built, 1)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, Fingerprint.of("SELECT abalance FROM pgbench_accounts WHERE aid = 5"))
        // Another spelling of the shape: a key of its own, the same fingerprint.
        XCTAssertEqual(cache.of("select abalance from pgbench_accounts where aid = 7"), a)
        XCTAssertEqual(cache.built, 2)
        XCTAssertEqual(cache.of("UPDATE t SET x = 1").normalized, "update t set x = $1")
        XCTAssertEqual(cache.built, 3)
        // Non-ASCII names are keyed too.
        XCTAssertEqual(cache.of("select café from t where x = 1").normalized, "select café from t where x = $1")
        XCTAssertEqual(cache.of("select café from t where x = 2").normalized, "select café from t where x = $1")
        XCTAssertEqual(cache.built, 4)
        XCTAssertEqual(cache.count, 4)
    }

    func testCacheHoldsAtMostItsCapacityAndKeepsRecentlyUsedShapes() {
        var cache = FingerprintCache(capacity: 10)
        let hot = "SELECT hot FROM t WHERE id = 1"
        for i in 0..<100 {
            _ = cache.of("SELECT c\(i) FROM t")
            _ = cache.of(hot)
            XCTAssertLessThanOrEqual(cache.count, 10)
        }
        let built = cache.built
        _ = cache.of("SELECT hot FROM t WHERE id = 2")
        XCTAssertEqual(cache.built, built, "the shape used all along is still cached")
        _ = cache.of("SELECT c0 FROM t")
        XCTAssertEqual(cache.built, built + 1, "an old shape was dropped")
        var off = FingerprintCache(capacity: 0)
        _ = off.of(hot)
        _ = off.of(hot)
        XCTAssertEqual(off.built, 2)
        XCTAssertEqual(off.count, 0)
    }

    private func effects(_ cache: inout FingerprintCache, _ sql: String) -> Bool {
        var text = sql
        return text.withUTF8 { cache.withEffects(utf8: UnsafeRawBufferPointer($0)).mayHaveEffects }
    }

    func testEffectsScanIsCachedPerKeyWithoutStringsAndRepeatedForTextsWithStrings() {
        var cache = FingerprintCache(capacity: 100)
        XCTAssertTrue(effects(&cache, "SET lock_timeout = 5"))
        XCTAssertTrue(effects(&cache, "SET lock_timeout = 7"))
        XCTAssertFalse(effects(&cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 1 /* x */"))
        // Same key, no strings: the first text's answer (the raw scan would see "set" in the comment).
        XCTAssertFalse(effects(&cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 2 /* set */"))
        XCTAssertEqual(cache.built, 2)
        // The raw scan says maybe (the trailing semicolon makes it a text of several statements); the full
        // analysis says no, once for the shape.
        XCTAssertTrue(SessionAnalyzer.mayHaveEffects("UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3;"))
        XCTAssertFalse(effects(&cache, "UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 3;"))
        XCTAssertFalse(effects(&cache, "UPDATE pgbench_tellers SET tbalance = tbalance + -7 WHERE tid = 9;"))
        XCTAssertTrue(effects(&cache, "SET lock_timeout = 9;"))
        // A string literal is a placeholder in the shape but is scanned every time.
        XCTAssertFalse(effects(&cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 'x'"))
        XCTAssertTrue(effects(&cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 'temp'"))
        XCTAssertTrue(effects(&cache, "DO $$ BEGIN PERFORM set_config('a', 'b', false); END $$"))
        XCTAssertFalse(effects(&cache, "DO $$ BEGIN PERFORM 1; END $$"))
        XCTAssertTrue(effects(&cache, "SELECT x FROM t WHERE y IN ('pg_temp', 'b')"))
        // A Unicode-escaped name: the raw scan cannot read it, the full analysis does (once per key).
        XCTAssertTrue(effects(&cache, "SELECT U&\"\\0073et_config\"('a', 'b', false)"))
    }
}
