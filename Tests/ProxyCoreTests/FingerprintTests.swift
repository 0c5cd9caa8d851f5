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

    func testOnePassReadsLongWordsAsTheFullFingerprint() {
        // Words read eight bytes at a time: every length, letter case, digit, _ and $, and what ends a word
        // (including a non-ASCII byte, which only the full fingerprint handles) at every offset.
        var rng = SystemRandomNumberGenerator()
        let wordChars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$@[`{")
        let enders = [" ", ".", "(", ",", "'x'", "é", "\"Q\"", "", ";", "::", "-1"]
        var compared = 0
        for _ in 0..<3000 {
            var sql = String(repeating: " ", count: Int.random(in: 0...9, using: &rng)) + "SELECT "
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let length = Int.random(in: 1...30, using: &rng)
                sql += "q" + String((0..<length).map { _ in wordChars.randomElement(using: &rng)! })
                sql += enders.randomElement(using: &rng)! + " "
            }
            var text = sql
            let id = text.withUTF8 { Fingerprint.id(utf8: UnsafeRawBufferPointer($0)) }
            // Nil only for a non-ASCII word (then the full fingerprint gives the id).
            guard let id else {
                XCTAssertTrue(sql.contains("é"), sql)
                continue
            }
            XCTAssertEqual(id, Fingerprint.of(sql).id, sql)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 1000)
    }

    func testOnePassNumbersManyPlaceholdersAsTheFullFingerprint() {
        for count in [1, 9, 10, 11, 99, 100, 101, 123, 1000, 1001] {
            let sql = "SELECT " + (1...count).map { "x + \($0)" }.joined(separator: ", ")
            let full = Fingerprint.of(sql)
            XCTAssertTrue(full.normalized.hasSuffix("$\(count)"), full.normalized.suffix(20).description)
            var text = sql
            XCTAssertEqual(text.withUTF8 { Fingerprint.id(utf8: UnsafeRawBufferPointer($0)) }, full.id, "\(count) placeholders")
        }
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

    // MARK: The one-pass id

    private func onePassID(_ sql: String) -> UInt64? {
        var text = sql
        return text.withUTF8 { Fingerprint.id(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// Texts that exercise every token kind and normalisation rule (IN lists that do and do not collapse,
    /// trailing and inner semicolons, escapes, unterminated input).
    static let tricky = [
        "", ";", ";;", "SELECT 1;", "SELECT 1; ;", "SELECT 1;SELECT 2;;", " ; SELECT 1",
        "SELECT * FROM t WHERE id = 42 AND name = 'bob'",
        "select \"MyCol\" from \"T\"\"x\" where a IN (1, 2, 3);",
        "SELECT $1, $2::int", "select x from t where y in (-1, +2, $3, 'a', E'b\\'c', 1.5e-3)",
        "select x from t where y in (1, - 2)", "select x from t where y in (1, a)", "select x in ( )",
        "select x in (1", "select x in (1,", "select x in (1 2)", "SELECT x IN (SELECT 1)", "select in", "select x in",
        "select x in (- a)", "select x in (1)in(2)", "select x in (1);", "select 1 in (2); in (3)",
        "SELECT 1.5e3, E'x\\ny', $$dollar$$, $tag$other$tag$, B'101', X'1F', N'n', 0x1F, 0o17, 0b101, 1_000, .5",
        "SELECT 'unterminated", "SELECT \"unterminated", "SELECT $tag$ unterminated", "SELECT /* open comment",
        "SELECT 1 -- comment", "SELECT /* a /* nested */ b */ 1", "select a::text, b := 1, c..d, e.f[1:2]",
        "select a<>b, a!=b, a>=-1, a||b, a@>b, a->>'k', a#-'{x}', a ~* 'y', a+-b, a*-1, a/*c*/+b",
        "select E'\\'', E'\\x41\\101\\u0041', U&'d\\0061t\\+000061', 'it''s'",
        "select \"a\"\"\"\"b\", \"\", \"x y\"", "SELECT $", "SELECT $ $1 $a $a$ x $a$", "select @ # ` ?",
        "UPDATE pgbench_accounts SET abalance = abalance + -4242 WHERE aid = 77;",
        "BEGIN; SELECT 1; COMMIT;", "select\tx\nfrom\rt\u{0C}where y=1", "select x in ('a'   ,   'b'   )",
        "SeLeCt X fRoM T wHeRe Y iN (1, 2)", "select 1 in (2) in (3, 4)", "select \u{01} \u{7F}",
    ]

    func testOnePassIDEqualsTheFullFingerprintsID() {
        for sql in Self.tricky {
            XCTAssertEqual(onePassID(sql), Fingerprint.of(sql).id, "\(sql)")
        }
    }

    func testOnePassIDEqualsTheFullFingerprintsIDOnRandomTokenSoup() {
        // Fixed-seed soup of fragments: any divergence between the one-pass hash and normalize shows here.
        let fragments = ["select", "SELECT", "in", "IN", "(", ")", ",", ";", " ", "  ", "\n", "-", "+", "1", "2.5", "1e5",
                         "'s'", "'it''s'", "E'\\''", "$1", "$22", "$$x$$", "$q$y$q$", "\"Id\"", "\"a\"\"b\"", "x", "y_1",
                         "::", ":", ".", "..", "[", "]", "<>", "->>", "--c\n", "/*c*/", "/* /* */ */", "$", "@", "=", "*",
                         "'open", "\"open", "$t$open", "/*open", "0x1F", "B'1'", "N'n'", "U&'u'",
                         // Letters that can prefix a string, glued to what follows by the soup: e'..', u&"..", _'..'.
                         "e", "E", "b", "x", "n", "u", "U", "_", "&", "'q'", "\"q\"", "in(", "IN (1,2)", "a$1", "t_",
                         // Integers and ( ) , = next to what may or may not end them (the one-pass fast path).
                         "12345", "0", "7)", "(8", "9,", "10;", "=", "==", "=>", "=-", "=1", "1=", "1.", "1_0", "1a", "42e", "=/*c*/"]
        var rng = RoutingTestRNG(seed: 0x5EED)   // SplitMix64, from BackendsTests
        for _ in 0..<8_000 {
            var sql = ""
            for _ in 0..<Int(rng.next() % 14) {
                sql += fragments[Int(rng.next() % UInt64(fragments.count))]
                if rng.next() % 3 == 0 { sql += " " }
            }
            if let id = onePassID(sql) {
                XCTAssertEqual(id, Fingerprint.of(sql).id, "\(sql)")
            } else {
                // Only a Unicode-escaped identifier is left to the full fingerprint (no other non-ASCII here).
                XCTAssertTrue(sql.lowercased().contains("u&\""), "\(sql)")
            }
        }
    }

    func testOnePassIDLeavesNonASCIINamesAndUnicodeIdentifiersToTheFullFingerprint() {
        XCTAssertNil(onePassID("select café from t"))
        XCTAssertNil(onePassID("select \"naïve\" from t"))
        XCTAssertNil(onePassID("select U&\"d\\0061ta\" from t"))
        // Non-ASCII inside literals and comments does not matter: they are placeholders or skipped.
        XCTAssertEqual(onePassID("select 'é' /* ü */ from t"), Fingerprint.of("select 'é' /* ü */ from t").id)
    }

    // MARK: FingerprintCache

    func testCacheBuildsEachStatementShapeOnceAndSharesItsText() {
        var cache = FingerprintCache(capacity: 100)
        let a = cache.of("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
        let b = cache.of("select abalance from pgbench_accounts where aid = 99999")
        XCTAssertEqual(cache.built, 1)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, Fingerprint.of("SELECT abalance FROM pgbench_accounts WHERE aid = 5"))
        XCTAssertEqual(cache.of("UPDATE t SET x = 1").normalized, "update t set x = $1")
        XCTAssertEqual(cache.built, 2)
        // Left to the full fingerprint every time: a non-ASCII name.
        XCTAssertEqual(cache.of("select café from t").normalized, "select café from t")
        XCTAssertEqual(cache.of("select café from t").normalized, "select café from t")
        XCTAssertEqual(cache.built, 4)
        XCTAssertEqual(cache.count, 2)
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

    func testEffectsScanIsCachedPerShapeWithoutStringsAndRepeatedForTextsWithStrings() {
        var cache = FingerprintCache(capacity: 100)
        XCTAssertTrue(effects(&cache, "SET lock_timeout = 5"))
        XCTAssertTrue(effects(&cache, "set lock_timeout = 7"))
        XCTAssertFalse(effects(&cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 1"))
        // Same shape, no strings: the first text's answer (the raw scan would see "set" in the comment).
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
        // Texts the one-pass id leaves out are scanned too.
        XCTAssertTrue(effects(&cache, "SELECT U&\"\\0073et_config\"('a', 'b', false)"))
    }

    private func pass(_ sql: String) -> (id: UInt64, check: UInt64, hasStrings: Bool)? {
        var text = sql
        return text.withUTF8 { Fingerprint.onePass(utf8: UnsafeRawBufferPointer($0)) }
    }

    func testOnePassCheckHashFollowsTheShapeAndStringsAreNoticed() {
        let a = pass("SELECT x FROM t WHERE id = 1")!
        let b = pass("select x  from t where id = 99 -- comment")!
        XCTAssertEqual(a.id, b.id)
        XCTAssertEqual(a.check, b.check)
        XCTAssertNotEqual(a.check, pass("SELECT y FROM t WHERE id = 1")!.check)
        // The check covers every normalised byte, across its 8-byte words and the length.
        XCTAssertNotEqual(pass("select abcdefg")!.check, pass("select abcdefgh")!.check)
        XCTAssertNotEqual(pass("select abcdefgh")!.check, pass("select abcdefghi")!.check)
        XCTAssertNotEqual(pass("a")!.check, pass("a b")!.check)
        XCTAssertFalse(a.hasStrings)
        XCTAssertTrue(pass("SELECT x FROM t WHERE id = 'a'")!.hasStrings)
        XCTAssertTrue(pass("SELECT x FROM t WHERE id IN (1, 'b')")!.hasStrings)
        XCTAssertTrue(pass("DO $$ BEGIN END $$")!.hasStrings)
        XCTAssertFalse(pass("SELECT x FROM t WHERE id IN (1, 2, $3)")!.hasStrings)
    }
}

