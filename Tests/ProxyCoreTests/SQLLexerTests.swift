// SQLLexer: comments, every string form, quoted identifiers, numbers, parameters, operators, statement
// splitting at top-level semicolons, ranges that cut the original text, and bad input that must not trap.
import XCTest
import ProxyCore

final class SQLLexerTests: XCTestCase {
    private func kinds(_ sql: String) -> [SQLToken.Kind] { SQLLexer.tokens(sql).map(\.kind) }
    private func texts(_ sql: String) -> [String] { SQLLexer.tokens(sql).map(\.text) }

    func testWordsAreLowercasedAndWhitespaceSkipped() {
        XCTAssertEqual(texts("SELECT  Foo_1$x,\n\tbar FROM\r\nT"), ["select", "foo_1$x", ",", "bar", "from", "t"])
        XCTAssertEqual(kinds("SELECT a"), [.word, .word])
        XCTAssertEqual(texts("SELECT Ünïcode"), ["select", "Ünïcode"])
    }

    func testComments() {
        XCTAssertEqual(texts("SELECT /* a /* nested */ still comment */ 1"), ["select", "1"])
        XCTAssertEqual(texts("SELECT 1 -- LISTEN x; SET a = 1\n, 2"), ["select", "1", ",", "2"])
        XCTAssertEqual(texts("-- only a comment"), [])
        XCTAssertEqual(texts("SELECT 1--2\n"), ["select", "1"])
        XCTAssertEqual(texts("SELECT 2*/*c*/3"), ["select", "2", "*", "3"])
    }

    func testStrings() {
        let t = SQLLexer.tokens("SELECT 'it''s', E'a\\'b\\\\c\\n', e'\\x41\\101\\u00e9', 'back\\slash'")
        XCTAssertEqual(t.filter { $0.kind == .string }.map(\.text), ["it's", "a'b\\c\n", "AAé", "back\\slash"])
        XCTAssertEqual(SQLLexer.tokens("SELECT E'it''s'")[1].text, "it's")
        XCTAssertEqual(SQLLexer.tokens("SELECT U&'d\\0061t\\+000061'")[1], SQLToken(kind: .string, text: "data", range: 7..<26))
        XCTAssertEqual(SQLLexer.tokens("SELECT B'101', X'1F', N'n'").filter { $0.kind == .string }.map(\.text), ["101", "1F", "n"])
        XCTAssertEqual(SQLLexer.tokens("SELECT ''")[1].text, "")
    }

    func testDollarQuotedStrings() {
        let t = SQLLexer.tokens("SELECT $$a; 'b' \"c\" -- d$$, $fn$ x $$ y; $fn$, $a$$a$")
        XCTAssertEqual(t.map(\.kind), [.word, .string, .punctuation, .string, .punctuation, .string])
        XCTAssertEqual(t[5].text, "")
        XCTAssertEqual(t[1].text, "a; 'b' \"c\" -- d")
        XCTAssertEqual(t[3].text, " x $$ y; ")
        XCTAssertEqual(SQLLexer.statements("DO $x$ BEGIN SET a = 1; END $x$; SELECT 1").count, 2)
    }

    func testQuotedIdentifiers() {
        let t = SQLLexer.tokens("SELECT \"My \"\"Col\"\"\", U&\"d\\0061ta\" FROM \"T\"")
        XCTAssertEqual(t.filter { $0.kind == .quotedIdentifier }.map(\.text), ["My \"Col\"", "data", "T"])
    }

    func testNumbers() {
        let t = SQLLexer.tokens("SELECT 1, 1.5e3, .5, 2., 3e-2, 0x1F, 1_000, 1..2")
        XCTAssertEqual(t.filter { $0.kind == .number }.map(\.text), ["1", "1.5e3", ".5", "2.", "3e-2", "0x1F", "1_000", "1", "2"])
        XCTAssertTrue(t.contains { $0.kind == .punctuation && $0.text == ".." })
    }

    func testParameters() {
        XCTAssertEqual(SQLLexer.tokens("SELECT * FROM t WHERE id = $1 AND b = $12").filter { $0.kind == .parameter }.map(\.text), ["$1", "$12"])
        XCTAssertEqual(texts("SELECT $ 1"), ["select", "$", "1"])
    }

    func testOperators() {
        XCTAssertEqual(texts("a<>b!=c<=d>=e||f->>'k'::int@>g"),
                       ["a", "<>", "b", "!=", "c", "<=", "d", ">=", "e", "||", "f", "->>", "k", "::", "int", "@>", "g"])
        // A multi-character operator does not end in + or - unless it contains ~ ! @ # % ^ & | ` ?
        XCTAssertEqual(texts("a=-1"), ["a", "=", "-", "1"])
        XCTAssertEqual(texts("a@-1"), ["a", "@-", "1"])
        XCTAssertEqual(texts("x := 1, y => 2"), ["x", ":=", "1", ",", "y", "=>", "2"])
        XCTAssertEqual(texts("a[1:2]"), ["a", "[", "1", ":", "2", "]"])
        XCTAssertEqual(kinds(";"), [.semicolon])
    }

    func testStatementsSplitAtTopLevelSemicolonsOnly() {
        let s = SQLLexer.statements("SET a = 1; ;SELECT 'x;y', \"a;b\" /* ; */; -- ;\n LISTEN c;")
        XCTAssertEqual(s.map { $0.map(\.text) }, [["set", "a", "=", "1"], ["select", "x;y", ",", "a;b"], ["listen", "c"]])
        XCTAssertEqual(SQLLexer.statements("CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b); SELECT 1").count, 2)
        let body = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SET x = 1; END; COMMIT"
        XCTAssertEqual(SQLLexer.statements(body).map { $0.first!.text }, ["create", "commit"])
        XCTAssertEqual(SQLLexer.statements("BEGIN; SELECT 1; END").map { $0.first!.text }, ["begin", "select", "end"])
        XCTAssertEqual(SQLLexer.statements("  ;; "), [])
    }

    func testRangesCutTheOriginalText() {
        let sql = "SET search_path TO 'ü''x', \"My Schema\" /* c */; SELECT $1"
        for token in SQLLexer.tokens(sql) {
            let cut = SQLLexer.source(sql, token.range)
            switch token.kind {
            case .word: XCTAssertEqual(cut.lowercased(), token.text)
            case .string: XCTAssertEqual(cut, "'ü''x'")
            case .quotedIdentifier: XCTAssertEqual(cut, "\"My Schema\"")
            case .number, .parameter, .punctuation, .semicolon: XCTAssertEqual(cut, token.text)
            }
        }
        let bytes = Array(sql.utf8)
        let fromBytes = bytes.withUnsafeBytes { SQLLexer.tokens($0) }
        XCTAssertEqual(fromBytes, SQLLexer.tokens(sql))
    }

    func testUnterminatedInputDoesNotTrap() {
        XCTAssertEqual(SQLLexer.tokens("SELECT 'abc").last, SQLToken(kind: .string, text: "abc", range: 7..<11))
        XCTAssertEqual(SQLLexer.tokens("SELECT E'ab\\").last?.kind, .string)
        XCTAssertEqual(SQLLexer.tokens("SELECT \"abc").last?.kind, .quotedIdentifier)
        XCTAssertEqual(SQLLexer.tokens("SELECT $tag$abc $tag").last, SQLToken(kind: .string, text: "abc $tag", range: 7..<20))
        XCTAssertEqual(texts("SELECT 1 /* never /* closed */"), ["select", "1"])
        for sql in ["'", "\"", "$", "$$", "$a", "E'", "U&'\\", "U&\"\\+", "e'\\u12", "e'\\x", "0x", "1e", "1e+", ".", "/*", "-", "::",
                    "E'\\", "'\\", "\u{0}\u{1}\u{7F}", "\\", "$1$", "@@@--"] {
            _ = SQLLexer.tokens(sql)
            _ = SQLLexer.statements(sql)
            _ = SessionAnalyzer.effects(of: sql)
        }
        let invalid: [UInt8] = [0x53, 0x45, 0x54, 0x20, 0xFF, 0xC3, 0x27, 0xE2, 0x82]
        XCTAssertEqual(invalid.withUnsafeBytes { SQLLexer.tokens($0) }.first?.text, "set")
    }
}
