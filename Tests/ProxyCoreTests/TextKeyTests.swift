// The text key the hot path finds fingerprints by (Fingerprint.textKey): texts with one key have one
// fingerprint (literals and comments are the only bytes left out), literal values do not change the key,
// every other byte does, and whether a string literal is in the text is noticed.
import XCTest
@testable import ProxyCore

final class TextKeyTests: XCTestCase {
    private struct Key: Hashable {
        var id: UInt64
        var check: UInt64
    }

    private func key(_ sql: String) -> Key {
        var text = sql
        let k = text.withUTF8 { Fingerprint.textKey(utf8: UnsafeRawBufferPointer($0)) }
        return Key(id: k.id, check: k.check)
    }

    private func hasStrings(_ sql: String) -> Bool {
        var text = sql
        return text.withUTF8 { Fingerprint.textKey(utf8: UnsafeRawBufferPointer($0)).hasStrings }
    }

    /// Texts that exercise every token kind (IN lists, semicolons, escapes, prefixes, unterminated input).
    static let tricky = [
        "", ";", ";;", "SELECT 1;", "SELECT 1; ;", "SELECT 1;SELECT 2;;", " ; SELECT 1",
        "SELECT * FROM t WHERE id = 42 AND name = 'bob'",
        "select \"MyCol\" from \"T\"\"x\" where a IN (1, 2, 3);",
        "SELECT $1, $2::int", "select x from t where y in (-1, +2, $3, 'a', E'b\\'c', 1.5e-3)",
        "select x from t where y in (1, - 2)", "select x from t where y in (1, a)", "select x in ( )",
        "SELECT 1.5e3, E'x\\ny', $$dollar$$, $tag$other$tag$, B'101', X'1F', N'n', 0x1F, 0o17, 0b101, 1_000, .5",
        "SELECT 'unterminated", "SELECT \"unterminated", "SELECT $tag$ unterminated", "SELECT /* open comment",
        "SELECT 1 -- comment", "SELECT /* a /* nested */ b */ 1", "select a::text, b := 1, c..d, e.f[1:2]",
        "select a<>b, a!=b, a>=-1, a||b, a@>b, a->>'k', a#-'{x}', a ~* 'y', a+-b, a*-1, a/*c*/+b",
        "select E'\\'', E'\\x41\\101\\u0041', U&'d\\0061t\\+000061', 'it''s'",
        "select \"a\"\"\"\"b\", \"\", \"x y\"", "SELECT $", "SELECT $ $1 $a $a$ x $a$", "select @ # ` ?",
        "UPDATE pgbench_accounts SET abalance = abalance + -4242 WHERE aid = 77;",
        "BEGIN; SELECT 1; COMMIT;", "select\tx\nfrom\rt\u{0C}where y=1", "select café, \"naïve\", U&\"d\\0061ta\" from t",
        "select 1E'\\'' , 2 drop", "select 1$$ a'x $$ drop", "select x1E'a', t2 from t3", "select ..5, 1..2",
    ]

    /// Fragments of SQL glued at random; `literals` and `words` are swapped for others of their kind to make
    /// texts that must (literals) or may not (words) share a key.
    private static let literals = [["1", "22", "2.5", "1e5", ".5", "0x1F", "1_0", "0"],
                                   ["'s'", "'it''s'", "E'\\''", "$$x$$", "$q$y$q$", "B'1'", "N'n'", "U&'u'", "'open"],
                                   ["$1", "$22"],
                                   ["--c\n", "/*c*/", "/* /* */ */", "-- x", "/*open"]]
    private static let words = ["select", "SELECT", "drop", "in", "x", "y_1", "e", "E", "b", "x", "n", "u", "U", "_", "t1",
                                "\"Id\"", "\"a\"\"b\"", "\"open", "a$1", "$", "$t$open"]
    private static let glue = ["(", ")", ",", ";", " ", "  ", "\n", "-", "+", "&", "::", ":", ".", "..", "[", "]", "<>",
                               "->>", "@", "=", "*", "/", "'", "\"", "$"]

    private func soup(_ rng: inout RoutingTestRNG) -> [String] {
        var parts: [String] = []
        for _ in 0..<Int(rng.next() % 14) {
            switch rng.next() % 3 {
            case 0:
                let kind = Self.literals[Int(rng.next() % UInt64(Self.literals.count))]
                parts.append(kind[Int(rng.next() % UInt64(kind.count))])
            case 1: parts.append(Self.words[Int(rng.next() % UInt64(Self.words.count))])
            default: parts.append(Self.glue[Int(rng.next() % UInt64(Self.glue.count))])
            }
            if rng.next() % 3 == 0 { parts.append(" ") }
        }
        return parts
    }

    /// `parts` with one fragment swapped for another of its kind (a literal for a literal of its kind, a word
    /// for a word), or nil when it has none.
    private func variant(_ parts: [String], literal: Bool, _ rng: inout RoutingTestRNG) -> [String]? {
        let places = parts.indices.filter { i in
            literal ? Self.literals.contains { $0.contains(parts[i]) } : Self.words.contains(parts[i])
        }
        guard !places.isEmpty else { return nil }
        let at = places[Int(rng.next() % UInt64(places.count))]
        let pool = literal ? Self.literals.first { $0.contains(parts[at]) }! : Self.words
        var copy = parts
        copy[at] = pool[Int(rng.next() % UInt64(pool.count))]
        return copy
    }

    func testTextsWithOneKeyHaveOneFingerprint() {
        // Many texts, many sharing a key (literal swaps) and many nearly sharing one (word swaps): wherever two
        // keys are equal the fingerprints must be. A key that let a literal or comment swallow what follows
        // it (an E'' string read as '' after a number, $$ after a digit) fails here.
        var rng = RoutingTestRNG(seed: 0x7E47)
        var byKey: [Key: (String, Fingerprint)] = [:]
        var shared = 0
        func add(_ sql: String) {
            let k = key(sql)
            let f = Fingerprint.of(sql)
            if let (other, seen) = byKey[k] {
                XCTAssertEqual(f, seen, "one key for \(sql.debugDescription) and \(other.debugDescription)")
                if other != sql { shared += 1 }
            } else {
                byKey[k] = (sql, f)
            }
        }
        for sql in Self.tricky { add(sql) }
        for _ in 0..<6_000 {
            let parts = soup(&rng)
            add(parts.joined())
            for _ in 0..<3 {
                if let v = variant(parts, literal: true, &rng) { add(v.joined()) }
                if let v = variant(parts, literal: false, &rng) { add(v.joined()) }
            }
        }
        XCTAssertGreaterThan(shared, 3_000, "literal swaps must share keys")
    }

    func testLiteralValuesAndCommentTextsKeepTheKey() {
        let pairs = [
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "SELECT abalance FROM pgbench_accounts WHERE aid = 987654;"),
            ("UPDATE pgbench_accounts SET abalance = abalance + -4242 WHERE aid = 77;",
             "UPDATE pgbench_accounts SET abalance = abalance + -1 WHERE aid = 123456;"),
            ("SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'it''s longer'"),
            ("SELECT 1.5e3, E'x\\ny', $$dollar$$", "SELECT 2, E'plain', $tag$other$tag$"),
            ("SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = 7"),
            ("INSERT INTO t VALUES (1, 'a', B'101', X'1F')", "INSERT INTO t VALUES (2, 'b', B'0', X'FF')"),
            ("/* app=web id=1 */ SELECT 1", "/* app=web id=22 */ SELECT 3"),
            ("SELECT 1 -- first\n", "SELECT 2 -- second\n"),
            ("select café from t where x = 1", "select café from t where x = 2"),
            ("select 1E'a'", "select 2E'b\\''"),
        ]
        for (a, b) in pairs {
            XCTAssertEqual(key(a), key(b), "\(a) vs \(b)")
            XCTAssertEqual(Fingerprint.of(a), Fingerprint.of(b), "\(a) vs \(b)")
        }
    }

    func testEveryOtherByteChangesTheKey() {
        let differ = [
            ("SELECT a FROM t", "SELECT b FROM t"), ("SELECT a FROM t1", "SELECT a FROM t2"),
            ("SELECT \"t1\"", "SELECT \"t2\""), ("SELECT a FROM t", "select a from t"), ("SELECT a FROM t", "SELECT  a FROM t"),
            ("SELECT 1", "SELECT 1;"), ("SELECT 1", "SELECT 1 -- c"), ("SELECT 1 /*c*/", "SELECT /*c*/ 1"),
            ("SELECT x$1", "SELECT x$2"), ("SELECT 0x1F", "SELECT 1x1F"), ("SELECT 'a' b", "SELECT E'a' b"),
            ("select 1E'a' x", "select 1 E'a' x"), ("SELECT a.1", "SELECT a..1"), ("SELECT 1.5", "SELECT 1 .5"),
            // Lexed differently, so keyed apart: .. then a number, . then a literal; e then .5, an E'' string.
            ("SELECT ..22", "SELECT .$22"), ("SELECT a..5", "SELECT a.'s'"), ("SELECT e.5", "SELECT e's'"),
        ]
        for (a, b) in differ { XCTAssertNotEqual(key(a), key(b), "\(a) vs \(b)") }
        // Words read eight bytes at a time: one byte changed anywhere in a word of any length at any offset, or
        // a length one byte longer, gives another key (both hashes).
        var rng = RoutingTestRNG(seed: 0x0FF5E7)
        let wordChars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_é")
        for _ in 0..<2_000 {
            let lead = String(repeating: " ", count: Int(rng.next() % 9))
            let word = String((0..<Int(1 + rng.next() % 30)).map { _ in wordChars[Int(rng.next() % UInt64(wordChars.count))] })
            let base = Array((lead + "SELECT " + word + " FROM t WHERE id = \(rng.next() % 1000)").utf8)
            let original = key(String(decoding: base, as: UTF8.self))
            let at = lead.utf8.count + 7 + Int(rng.next() % UInt64(word.utf8.count))
            var changed = base
            changed[at] = changed[at] == UInt8(ascii: "q") ? UInt8(ascii: "w") : UInt8(ascii: "q")
            let other = key(String(decoding: changed, as: UTF8.self))
            XCTAssertNotEqual(original.id, other.id, String(decoding: changed, as: UTF8.self))
            XCTAssertNotEqual(original.check, other.check, String(decoding: changed, as: UTF8.self))
            var longer = base
            longer.insert(UInt8(ascii: "z"), at: at)
            XCTAssertNotEqual(original, key(String(decoding: longer, as: UTF8.self)))
        }
    }

    func testStringLiteralsAreNoticed() {
        XCTAssertFalse(hasStrings("SELECT x FROM t WHERE id = 1 -- 'no'"))
        XCTAssertFalse(hasStrings("SELECT \"it's\" FROM t WHERE id IN (1, 2, $3)"))
        XCTAssertTrue(hasStrings("SELECT x FROM t WHERE id = 'a'"))
        XCTAssertTrue(hasStrings("SELECT x FROM t WHERE id IN (1, 'b')"))
        XCTAssertTrue(hasStrings("DO $$ BEGIN END $$"))
        XCTAssertTrue(hasStrings("SELECT 1E'x'"))
        XCTAssertFalse(hasStrings("SELECT x$y$ FROM t"))
    }

    func testLiteralsOfEveryKindAreOnePlaceholder() {
        // As in the fingerprint, where each is $n: a number, a string and a parameter in one place share a key.
        XCTAssertEqual(key("SELECT 1"), key("SELECT '1'"))
        XCTAssertEqual(key("SELECT 1"), key("SELECT $1"))
        XCTAssertEqual(Fingerprint.of("SELECT 1"), Fingerprint.of("SELECT '1'"))
    }

    /// Runs `body` on a copy of `bytes` that ends where a page mapped without access starts (texts up to a page).
    private static func atPageEnd<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard bytes.count <= page else { return bytes.withUnsafeBytes(body) }
        guard let map = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), map != MAP_FAILED else {
            XCTFail("mmap failed")
            return bytes.withUnsafeBytes(body)
        }
        defer { munmap(map, 2 * page) }
        XCTAssertEqual(mprotect(map + page, page, PROT_NONE), 0)
        let start = map + page - bytes.count
        bytes.withUnsafeBytes { if let b = $0.baseAddress { start.copyMemory(from: b, byteCount: bytes.count) } }
        return body(UnsafeRawBufferPointer(start: start, count: bytes.count))
    }

    func testSameKeyAsTheReferenceImplementation() {
        // The word-at-a-time textKey against the byte-at-a-time one it replaced (`referenceTextKey`, below):
        // id, check and hasStrings equal for tricky texts, every length 0...40 (the eight-byte words' ends at
        // every place) and token soup.
        func assertSame(_ bytes: [UInt8], _ line: UInt = #line) {
            // The text ends where a page nobody may read starts: a load past its end crashes the test.
            let new = Self.atPageEnd(bytes) { Fingerprint.textKey(utf8: $0) }
            let old = bytes.withUnsafeBytes { referenceTextKey(utf8: $0) }
            XCTAssertTrue(new == old, "\(String(decoding: bytes, as: UTF8.self).debugDescription): \(new) vs \(old)", line: line)
        }
        assertSame([])
        XCTAssertTrue(Fingerprint.textKey(utf8: UnsafeRawBufferPointer(start: nil, count: 0)) == referenceTextKey(utf8: UnsafeRawBufferPointer(start: nil, count: 0)))
        let texts = Self.tricky + [
            "SELECT 1e5, .5, 1.2.3, 5.., 5..6, $1, $$x$$, $tag$a$tag$, $tag$ $tag , E'a\\'b', e'x', U&'d\\0061', U&\"d\\0061\", u&'x'",
            "SELECT B'01', X'ff', N'x', b'1', x'F', n'y', 'it''s', \"quoted \"\"id\"\"\", 1E'x', 1e'x', 12E'x', a1$b, a$1, x1.5, _1",
            "SELECT 1 -- comment\nFROM t -- to the end", "SELECT /* nested /* inner */ still */ 1", "SELECT /* open /* nested */",
            "SELECT 'unterminated", "SELECT E'unterminated\\", "SELECT \"open", "SELECT U&\"open", "SELECT $a$ open", "SELECT $$",
            "SELECT é, naïve, \u{1F600}, 'ü', \"ß\" FROM t WHERE x = 1", "SELECT 0x1F, 0o17, 0b101, 0x, 0xg, 1_000_000, 1__0, 1_",
            "SELECT 1.5e+10, 1.5e-3, 1.e5, 1e, 1e+, .e5, ..., 1...2, a.b.c, 1.a, 12345678901234567890123, 1234567.89012345",
            "x=-1", "-1", "1", ".5", "$1", "'", "\"", "--", "/*", "-", "/", "$", ".", "..", "1.", "1e", "E'", "U&", "U&'", "a1", "é1",
            "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 567890;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 567890;",
            "UPDATE pgbench_tellers SET tbalance = tbalance + 123 WHERE tid = 7;",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 567890, -4321, CURRENT_TIMESTAMP);",
            "BEGIN;", "END;",
        ]
        for text in texts { assertSame(Array(text.utf8)) }
        // Every length 0...40 of texts that put literals, quotes, comments and words at every offset of a word.
        let long = Array(("x1 = 1e5 AND \"Q\"\"x\" || E'a\\'b' -- c\n/* d */ $1 $$e$$ 0x1F..2 .5 é$2 'f''g' a.b 12345678901 - 3;"
            + " U&'h' U&\"i\" b'1' n'j' X'ff' 7").utf8)
        for start in 0..<(long.count - 8) {
            for length in 0...40 where start + length <= long.count { assertSame(Array(long[start..<start + length])) }
        }
        for text in texts where text.utf8.count > 1 {
            let bytes = Array(text.utf8)
            for length in 0..<min(bytes.count, 41) { assertSame(Array(bytes[0..<length])) }
        }
        // Token soup, as in testTextsWithOneKeyHaveOneFingerprint, and some with a random byte (bad UTF-8 too).
        var rng = RoutingTestRNG(seed: 0xD1FF)
        for round in 0..<4_000 {
            var bytes = Array(soup(&rng).joined().utf8)
            if round % 4 == 0, !bytes.isEmpty { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            assertSame(bytes)
        }
    }

    func testEightBytesAtATimeStopAtEveryByteThatCanStartALiteralOrComment() {
        // The SWAR stops (each byte's high bit) and the count of bytes before the first against a byte-by-byte
        // reference, for every byte value at every place.
        func isStop(_ b: UInt8) -> Bool { b < 0x80 && (b == 0x22 || b == 0x24 || b == 0x27 || (b >= 0x2D && b <= 0x39)) }
        func reference(_ bytes: [UInt8]) -> Int { bytes.firstIndex(where: isStop) ?? 8 }
        var rng = RoutingTestRNG(seed: 0x5A5A)
        for round in 0..<20_000 {
            var bytes = (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if round < 256 * 8 { bytes = Array(repeating: UInt8(ascii: "a"), count: 8); bytes[round % 8] = UInt8(round / 8) }
            let chunk = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            let stops = Fingerprint.KeyBytes.stops(chunk)
            XCTAssertEqual(stops.trailingZeroBitCount >> 3, reference(bytes), "\(bytes)")
            let expected = bytes.indices.reduce(UInt64(0)) { isStop(bytes[$1]) ? $0 | UInt64(0x80) << (8 * UInt64($1)) : $0 }
            XCTAssertEqual(stops, expected, "\(bytes)")
            XCTAssertEqual(Fingerprint.KeyBytes.mayHaveSpecial(chunk), bytes.contains { $0 >= 0x22 && $0 <= 0x39 }, "\(bytes)")
        }
    }
}

// The byte-at-a-time textKey that the word-at-a-time one replaced, kept as it was for
// testSameKeyAsTheReferenceImplementation (its hash state and SWAR helpers copied too).
private enum RefKeyBytes {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080
    static func mayHaveSpecial(_ chunk: UInt64) -> Bool {
        let x = chunk & ~highs
        return (x &+ ones &* 0x5E) & ~(x &+ ones &* 0x46) & highs & ~chunk != 0
    }
    static func leadingPlain(_ chunk: UInt64) -> Int {
        let x = chunk & ~highs
        let range = (x &+ ones &* 0x53) & ~(x &+ ones &* 0x46)
        let quote = ~((x ^ ones &* 0x22) &+ ones &* 0x7F)
        let dollar = ~((x ^ ones &* 0x24) &+ ones &* 0x7F)
        let apostrophe = ~((x ^ ones &* 0x27) &+ ones &* 0x7F)
        let special = (range | quote | dollar | apostrophe) & highs & ~chunk
        return special.trailingZeroBitCount &>> 3
    }
}

private struct RefHash {
    private var value: UInt64 = 0x243F_6A88_85A3_08D3
    private var checkValue = Fingerprint.checkKey.basis
    private let checkMultiplier = Fingerprint.checkKey.multiplier
    private var word: UInt64 = 0
    private var shift: UInt64 = 0
    private var words = 0
    mutating func byte(_ b: UInt8) {
        word |= UInt64(b) &<< shift
        shift &+= 8
        if shift == 64 { mixWord() }
    }
    mutating func bytes(_ w: UInt64, count: Int) {
        let before = shift
        word |= w &<< before
        let total = before &+ UInt64(count) &* 8
        if total < 64 {
            shift = total
            return
        }
        mixWord()
        let rest = total &- 64
        if rest > 0 { word = w &>> (64 &- before) }
        shift = rest
    }
    private static let idMultiplier: UInt64 = 0x9FB2_1C65_1E98_DF25
    private mutating func mixWord() {
        value = Self.mix(value, word, Self.idMultiplier)
        checkValue = Self.mix(checkValue, word, checkMultiplier)
        word = 0
        shift = 0
        words &+= 1
    }
    private static func mix(_ h: UInt64, _ w: UInt64, _ k: UInt64) -> UInt64 {
        let x = (h ^ w) &* k
        return x ^ (x &>> 29)
    }
    private func finished(_ h: UInt64, _ k: UInt64) -> UInt64 {
        var x = Self.mix(h, word, k) ^ (UInt64(words) &* 8 &+ shift &>> 3)
        x ^= x &>> 33
        x = x &* 0xFF51_AFD7_ED55_8CCD
        x ^= x &>> 33
        x = x &* 0xC4CE_B9FE_1A85_EC53
        return x ^ (x &>> 33)
    }
    var id: UInt64 { finished(value, Self.idMultiplier) }
    var check: UInt64 { finished(checkValue, checkMultiplier) }
    enum Marker: UInt64 { case literal = 1, comment = 2, prefixedString = 3 }
    mutating func marker(_ kind: Marker) {
        let place = UInt64(words) &<< 3 | shift &>> 3
        if shift > 0 { mixWord() }
        word = 0xFFFF_FFFF_0000_0000 | kind.rawValue &<< 24 | place & 0xFF_FFFF
        mixWord()
    }
}

private func referenceTextKey(utf8 bytes: UnsafeRawBufferPointer) -> (id: UInt64, check: UInt64, hasStrings: Bool) {
    var h = RefHash()
    guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return (h.id, h.check, false) }
    let s = UnsafeBufferPointer(start: base, count: bytes.count)
    let n = s.count
    var i = 0
    var tokenEnd = 0
    var hasStrings = false
    func startsToken(_ j: Int) -> Bool {
        j == 0 || j == tokenEnd || !SQLLexer.isIdentChar(s[j &- 1])
    }
    while i < n {
        while i &+ 8 <= n {
            let chunk = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
            let k = RefKeyBytes.mayHaveSpecial(UInt64(littleEndian: chunk)) ? RefKeyBytes.leadingPlain(UInt64(littleEndian: chunk)) : 8
            if k == 8 {
                h.bytes(UInt64(littleEndian: chunk), count: 8)
                i &+= 8
                continue
            }
            if k > 0 {
                h.bytes(UInt64(littleEndian: chunk) & ((1 &<< (UInt64(k) &* 8)) &- 1), count: k)
                i &+= k
            }
            break
        }
        guard i < n else { break }
        let c = s[i]
        let next: UInt8 = i &+ 1 < n ? s[i &+ 1] : 0
        switch c {
        case UInt8(ascii: ".") where next == UInt8(ascii: "."):
            h.byte(c)
            h.byte(c)
            i &+= 2
            continue
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "$"):
            guard c == UInt8(ascii: ".") ? SQLLexer.isDigit(next) : startsToken(i) else { break }
            if SQLLexer.isDigit(c) {
                var j = i &+ 1
                while j < n && SQLLexer.isDigit(s[j]) { j &+= 1 }
                if j == n || !(SQLLexer.isIdentChar(s[j]) || s[j] == UInt8(ascii: ".")) {
                    h.marker(.literal)
                    i = j
                    tokenEnd = j
                    continue
                }
            }
            guard let t = SQLLexer.scan(s, from: i) else { break }
            if t.kind == .punctuation {
                h.byte(c)
            } else {
                if t.kind == .string { hasStrings = true }
                h.marker(.literal)
            }
            i = t.range.upperBound
            tokenEnd = i
            continue
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            var start = i
            if c == UInt8(ascii: "'"), i >= 1, SQLLexer.isStringPrefix(s[i &- 1]), startsToken(i &- 1) {
                start = i &- 1
            } else if i >= 2, s[i &- 1] == UInt8(ascii: "&"), s[i &- 2] | 0x20 == UInt8(ascii: "u"), startsToken(i &- 2) {
                start = i &- 2
            }
            guard let t = SQLLexer.scan(s, from: start) else { break }
            if t.kind == .string {
                hasStrings = true
                h.marker(start < i ? .prefixedString : .literal)
            } else {
                for m in i..<t.range.upperBound { h.byte(s[m]) }
            }
            i = t.range.upperBound
            tokenEnd = i
            continue
        case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
            i = SQLLexer.lineCommentEnd(s, from: i)
            h.marker(.comment)
            tokenEnd = i
            continue
        case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
            i = SQLLexer.skipBlockComment(s, from: i)
            h.marker(.comment)
            tokenEnd = i
            continue
        default:
            break
        }
        h.byte(c)
        i &+= 1
    }
    return (h.id, h.check, hasStrings)
}
