// A fast tokenizer for PostgreSQL SQL text over UTF-8 bytes (no Foundation): words, quoted identifiers, strings
// ('', E'', U&'', B'', X'', $tag$), numbers, $n parameters and operators; comments and whitespace are skipped.
// Never traps on bad input. Used by the session analyzer now and by query fingerprints later.

public struct SQLToken: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// A keyword or unquoted identifier, ASCII-lowercased.
        case word
        /// The content of "X" (or U&"X"), case kept, "" unescaped.
        case quotedIdentifier
        /// The content of '...', E'...', U&'...', B'...', X'...', N'...' or $tag$...$tag$, unescaped.
        case string
        case number
        /// $1, $2, ...
        case parameter
        /// ( ) [ ] , . : :: := and operators (a multi-character operator is one token).
        case punctuation
        case semicolon
    }

    public var kind: Kind
    public var text: String
    /// Where the token is in the source (UTF-8 offsets), so the original SQL text of a value can be cut out.
    public var range: Range<Int>

    public init(kind: Kind, text: String, range: Range<Int>) {
        self.kind = kind
        self.text = text
        self.range = range
    }

    /// True for the word `w` (give it lowercased).
    public func isWord(_ w: String) -> Bool { kind == .word && text == w }

    /// True for the punctuation or operator `p`.
    public func isPunctuation(_ p: String) -> Bool { kind == .punctuation && text == p }
}

public enum SQLLexer {
    /// Tokens of the whole text; comments (-- and nested /* */) and whitespace skipped. Never traps on bad input
    /// (unterminated strings/comments end at the end of input).
    public static func tokens(_ sql: String) -> [SQLToken] {
        if let result = sql.utf8.withContiguousStorageIfAvailable({ lex($0) }) { return result }
        let bytes = Array(sql.utf8)
        return bytes.withUnsafeBufferPointer { lex($0) }
    }

    /// Tokens of raw UTF-8 bytes (for example a Query payload without its NUL).
    public static func tokens(_ bytes: UnsafeRawBufferPointer) -> [SQLToken] {
        lex(UnsafeBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }

    /// Tokens split into statements at top-level semicolons (empty statements dropped).
    public static func statements(_ sql: String) -> [[SQLToken]] { split(tokens(sql)) }

    /// Splits tokens into statements at semicolons outside parentheses and outside the BEGIN ... END body of
    /// CREATE [OR REPLACE] FUNCTION|PROCEDURE (psql's heuristic); empty statements are dropped.
    public static func split(_ tokens: [SQLToken]) -> [[SQLToken]] {
        var result: [[SQLToken]] = []
        var current: [SQLToken] = []
        var parenDepth = 0
        var beginDepth = 0
        var heads: [String] = []   // first words, to spot CREATE [OR REPLACE] FUNCTION|PROCEDURE
        for token in tokens {
            switch token.kind {
            case .semicolon where parenDepth == 0 && beginDepth == 0:
                if !current.isEmpty { result.append(current) }
                current = []
                heads = []
                beginDepth = 0
                continue
            case .punctuation:
                if token.text == "(" || token.text == "[" { parenDepth += 1 }
                if token.text == ")" || token.text == "]" { parenDepth = max(0, parenDepth - 1) }
            case .word:
                if heads.count < 4 { heads.append(token.text) }
                if parenDepth == 0, isRoutineDefinition(heads) {
                    switch token.text {
                    case "begin": beginDepth += 1
                    case "case": if beginDepth >= 1 { beginDepth += 1 }
                    case "end": if beginDepth > 0 { beginDepth -= 1 }
                    default: break
                    }
                }
            case .quotedIdentifier, .string, .number, .parameter, .semicolon:
                break
            }
            current.append(token)
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// The original text of `range` (UTF-8 offsets) in `sql`.
    public static func source(_ sql: String, _ range: Range<Int>) -> String {
        let utf8 = sql.utf8
        let lower = min(max(range.lowerBound, 0), utf8.count)
        let upper = min(max(range.upperBound, lower), utf8.count)
        let start = utf8.index(utf8.startIndex, offsetBy: lower)
        let end = utf8.index(start, offsetBy: upper - lower)
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }

    private static func isRoutineDefinition(_ heads: [String]) -> Bool {
        guard heads.count >= 2, heads[0] == "create" else { return false }
        if heads[1] == "function" || heads[1] == "procedure" { return true }
        return heads.count >= 4 && heads[1] == "or" && heads[2] == "replace"
            && (heads[3] == "function" || heads[3] == "procedure")
    }

    // MARK: Byte classes

    static func isSpace(_ c: UInt8) -> Bool { c == 32 || (c >= 9 && c <= 13) }
    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
    static func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= 97 && (c | 0x20) <= 122 }
    static func isIdentStart(_ c: UInt8) -> Bool { isLetter(c) || c == 95 || c >= 0x80 }
    static func isIdentChar(_ c: UInt8) -> Bool { isIdentStart(c) || isDigit(c) || c == 36 }
    static func isHexDigit(_ c: UInt8) -> Bool { isDigit(c) || ((c | 0x20) >= 97 && (c | 0x20) <= 102) }

    /// Characters of Postgres operators: + - * / < > = ~ ! @ # % ^ & | ` ?
    static func isOperatorChar(_ c: UInt8) -> Bool {
        switch c {
        case 43, 45, 42, 47, 60, 62, 61, 126, 33, 64, 35, 37, 94, 38, 124, 96, 63: return true
        default: return false
        }
    }

    /// Operator characters that let a multi-character operator end in + or -.
    static func isOperatorSpecial(_ c: UInt8) -> Bool {
        switch c {
        case 126, 33, 64, 35, 37, 94, 38, 124, 96, 63: return true
        default: return false
        }
    }

    static func hexValue(_ c: UInt8) -> UInt32 {
        isDigit(c) ? UInt32(c - 48) : UInt32((c | 0x20) - 87)
    }

    // MARK: Lexer

    private static let quote = UInt8(ascii: "'")
    private static let doubleQuote = UInt8(ascii: "\"")
    private static let dollar = UInt8(ascii: "$")
    private static let backslash = UInt8(ascii: "\\")

    private static func text(_ s: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: s[range]), as: UTF8.self)
    }

    private static func lex(_ s: UnsafeBufferPointer<UInt8>) -> [SQLToken] {
        var out: [SQLToken] = []
        let n = s.count
        // About one token per four bytes of SQL: one allocation instead of growing 4, 8, 16...
        out.reserveCapacity(min(n / 4 + 8, 512))
        var i = 0
        while i < n {
            let c = s[i]
            let next: UInt8 = i + 1 < n ? s[i + 1] : 0
            if isSpace(c) { i += 1; continue }
            if c == UInt8(ascii: "-") && next == UInt8(ascii: "-") {
                i += 2
                while i < n && s[i] != 10 && s[i] != 13 { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/") && next == UInt8(ascii: "*") {
                i = skipBlockComment(s, from: i)
                continue
            }
            let start = i
            switch c {
            case quote:
                let (content, end) = quoted(s, from: i + 1, quote: quote, escapes: .none)
                out.append(SQLToken(kind: .string, text: content, range: start..<end))
                i = end
            case doubleQuote:
                let (content, end) = quoted(s, from: i + 1, quote: doubleQuote, escapes: .none)
                out.append(SQLToken(kind: .quotedIdentifier, text: content, range: start..<end))
                i = end
            case dollar:
                i = lexDollar(s, from: i, into: &out)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                i = lexNumber(s, from: i, into: &out)
            case UInt8(ascii: ".") where isDigit(next):
                i = lexNumber(s, from: i, into: &out)
            case UInt8(ascii: ";"):
                out.append(SQLToken(kind: .semicolon, text: ";", range: i..<i + 1))
                i += 1
            case UInt8(ascii: ":"):
                let len = (next == UInt8(ascii: ":") || next == UInt8(ascii: "=")) ? 2 : 1
                out.append(SQLToken(kind: .punctuation, text: text(s, i..<i + len), range: i..<i + len))
                i += len
            case UInt8(ascii: "."):
                let len = next == UInt8(ascii: ".") ? 2 : 1
                out.append(SQLToken(kind: .punctuation, text: text(s, i..<i + len), range: i..<i + len))
                i += len
            default:
                if isIdentStart(c) {
                    i = lexWord(s, from: i, into: &out)
                } else if isOperatorChar(c) {
                    i = lexOperator(s, from: i, into: &out)
                } else {
                    // ( ) [ ] , and anything unknown: one byte.
                    out.append(SQLToken(kind: .punctuation, text: text(s, i..<i + 1), range: i..<i + 1))
                    i += 1
                }
            }
        }
        return out
    }

    /// Index after a (nested) block comment starting at `i`, or the end of input.
    static func skipBlockComment(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
        var j = i + 2
        var depth = 1
        while j < s.count {
            if s[j] == UInt8(ascii: "/"), j + 1 < s.count, s[j + 1] == UInt8(ascii: "*") {
                depth += 1
                j += 2
            } else if s[j] == UInt8(ascii: "*"), j + 1 < s.count, s[j + 1] == UInt8(ascii: "/") {
                depth -= 1
                j += 2
                if depth == 0 { return j }
            } else {
                j += 1
            }
        }
        return s.count
    }

    private enum Escapes { case none, backslash, unicode }

    /// Reads quoted content from `i` (after the opening quote) to the closing quote; a doubled quote is one.
    /// Returns the unescaped content and the index after the closing quote (or the end of input).
    private static func quoted(_ s: UnsafeBufferPointer<UInt8>, from i: Int, quote q: UInt8,
                               escapes: Escapes) -> (String, Int) {
        let n = s.count
        // Fast path: no doubled quote and no backslash.
        var j = i
        var plain = true
        while j < n {
            if s[j] == q {
                if j + 1 < n && s[j + 1] == q { plain = false; break }
                return (text(s, i..<j), j + 1)
            }
            if s[j] == backslash && escapes != .none { plain = false; break }
            j += 1
        }
        if plain { return (text(s, i..<n), n) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(j - i + 16)
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: s[i..<j]))
        while j < n {
            let c = s[j]
            if c == q {
                if j + 1 < n && s[j + 1] == q {
                    bytes.append(q)
                    j += 2
                    continue
                }
                return (String(decoding: bytes, as: UTF8.self), j + 1)
            }
            if c == backslash && escapes != .none && j + 1 < n {
                j = escapes == .backslash ? backslashEscape(s, at: j, into: &bytes) : unicodeEscape(s, at: j, into: &bytes)
                continue
            }
            bytes.append(c)
            j += 1
        }
        return (String(decoding: bytes, as: UTF8.self), n)
    }

    /// Decodes one E'' escape at `j` (a backslash); returns the index after it.
    private static func backslashEscape(_ s: UnsafeBufferPointer<UInt8>, at j: Int, into bytes: inout [UInt8]) -> Int {
        let n = s.count
        let e = s[j + 1]
        switch e {
        case UInt8(ascii: "b"): bytes.append(8); return j + 2
        case UInt8(ascii: "f"): bytes.append(12); return j + 2
        case UInt8(ascii: "n"): bytes.append(10); return j + 2
        case UInt8(ascii: "r"): bytes.append(13); return j + 2
        case UInt8(ascii: "t"): bytes.append(9); return j + 2
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var k = j + 1
            var value: UInt32 = 0
            while k < n && k < j + 4 && s[k] >= 48 && s[k] <= 55 { value = value * 8 + UInt32(s[k] - 48); k += 1 }
            bytes.append(UInt8(truncatingIfNeeded: value))
            return k
        case UInt8(ascii: "x") where j + 2 < n && isHexDigit(s[j + 2]):
            var k = j + 2
            var value: UInt32 = 0
            while k < n && k < j + 4 && isHexDigit(s[k]) { value = value * 16 + hexValue(s[k]); k += 1 }
            bytes.append(UInt8(truncatingIfNeeded: value))
            return k
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let digits = e == UInt8(ascii: "u") ? 4 : 8
            if let (scalar, end) = hexScalar(s, from: j + 2, digits: digits) {
                appendScalar(scalar, to: &bytes)
                return end
            }
            bytes.append(e)
            return j + 2
        default:
            bytes.append(e)
            return j + 2
        }
    }

    /// Decodes one U&'' escape at `j` (a backslash): \\, \XXXX or \+XXXXXX; returns the index after it.
    private static func unicodeEscape(_ s: UnsafeBufferPointer<UInt8>, at j: Int, into bytes: inout [UInt8]) -> Int {
        if s[j + 1] == backslash { bytes.append(backslash); return j + 2 }
        if s[j + 1] == UInt8(ascii: "+"), let (scalar, end) = hexScalar(s, from: j + 2, digits: 6) {
            appendScalar(scalar, to: &bytes)
            return end
        }
        if let (scalar, end) = hexScalar(s, from: j + 1, digits: 4) {
            appendScalar(scalar, to: &bytes)
            return end
        }
        bytes.append(backslash)
        return j + 1
    }

    private static func hexScalar(_ s: UnsafeBufferPointer<UInt8>, from k: Int, digits: Int) -> (UInt32, Int)? {
        guard k + digits <= s.count else { return nil }
        var value: UInt32 = 0
        for m in k..<k + digits {
            guard isHexDigit(s[m]) else { return nil }
            value = value &* 16 &+ hexValue(s[m])
        }
        return (value, k + digits)
    }

    private static func appendScalar(_ value: UInt32, to bytes: inout [UInt8]) {
        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
        bytes.append(contentsOf: UTF8.encode(scalar)!)
    }

    /// $1 parameter, $tag$...$tag$ string, or a lone $.
    private static func lexDollar(_ s: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [SQLToken]) -> Int {
        let n = s.count
        var j = i + 1
        if j < n && isDigit(s[j]) {
            while j < n && isDigit(s[j]) { j += 1 }
            out.append(SQLToken(kind: .parameter, text: text(s, i..<j), range: i..<j))
            return j
        }
        if j < n && isIdentStart(s[j]) {
            while j < n && (isIdentStart(s[j]) || isDigit(s[j])) { j += 1 }
        }
        guard j < n && s[j] == dollar else {
            out.append(SQLToken(kind: .punctuation, text: "$", range: i..<i + 1))
            return i + 1
        }
        let tagLength = j + 1 - i
        let contentStart = j + 1
        var k = contentStart
        while k + tagLength <= n {
            if s[k] == dollar && memEqual(s, k, i, tagLength) {
                out.append(SQLToken(kind: .string, text: text(s, contentStart..<k), range: i..<k + tagLength))
                return k + tagLength
            }
            k += 1
        }
        out.append(SQLToken(kind: .string, text: text(s, contentStart..<n), range: i..<n))
        return n
    }

    private static func memEqual(_ s: UnsafeBufferPointer<UInt8>, _ a: Int, _ b: Int, _ length: Int) -> Bool {
        for m in 0..<length where s[a + m] != s[b + m] { return false }
        return true
    }

    private static func lexNumber(_ s: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [SQLToken]) -> Int {
        let n = s.count
        var j = i
        func digits() { while j < n && (isDigit(s[j]) || s[j] == 95) { j += 1 } }
        if s[i] == UInt8(ascii: "0"), i + 2 < n, "xXoObB".utf8.contains(s[i + 1]), isHexDigit(s[i + 2]) {
            j = i + 2
            while j < n && (isHexDigit(s[j]) || s[j] == 95) { j += 1 }
        } else {
            digits()
            if j < n && s[j] == UInt8(ascii: "."), !(j + 1 < n && s[j + 1] == UInt8(ascii: ".")) {
                j += 1
                digits()
            }
            if j < n && (s[j] | 0x20) == UInt8(ascii: "e") {
                var k = j + 1
                if k < n && (s[k] == UInt8(ascii: "+") || s[k] == UInt8(ascii: "-")) { k += 1 }
                if k < n && isDigit(s[k]) {
                    j = k
                    digits()
                }
            }
        }
        out.append(SQLToken(kind: .number, text: text(s, i..<j), range: i..<j))
        return j
    }

    /// A word, or a prefixed string: E'..', B'..', X'..', N'..', U&'..', U&"..".
    private static func lexWord(_ s: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [SQLToken]) -> Int {
        let n = s.count
        let lower = s[i] | 0x20
        if i + 1 < n && s[i + 1] == quote && "ebxn".utf8.contains(lower) && isLetter(s[i]) {
            let (content, end) = quoted(s, from: i + 2, quote: quote, escapes: lower == UInt8(ascii: "e") ? .backslash : .none)
            out.append(SQLToken(kind: .string, text: content, range: i..<end))
            return end
        }
        if lower == UInt8(ascii: "u"), isLetter(s[i]), i + 2 < n, s[i + 1] == UInt8(ascii: "&"),
           s[i + 2] == quote || s[i + 2] == doubleQuote {
            let q = s[i + 2]
            let (content, end) = quoted(s, from: i + 3, quote: q, escapes: .unicode)
            out.append(SQLToken(kind: q == quote ? .string : .quotedIdentifier, text: content, range: i..<end))
            return end
        }
        var j = i
        var hasUpper = false
        while j < n && isIdentChar(s[j]) {
            if s[j] >= 65 && s[j] <= 90 { hasUpper = true }
            j += 1
        }
        let word: String
        if hasUpper {
            // Lowercased straight into the String's storage (no array in between; short words stay inline).
            word = String(unsafeUninitializedCapacity: j - i) { buffer in
                for m in 0..<(j - i) {
                    let b = s[i + m]
                    buffer[m] = b >= 65 && b <= 90 ? b | 0x20 : b
                }
                return j - i
            }
        } else {
            word = text(s, i..<j)
        }
        out.append(SQLToken(kind: .word, text: word, range: i..<j))
        return j
    }

    /// Postgres operator rules: stop before -- or /*; a multi-character operator ends in + or - only if it
    /// contains one of ~ ! @ # % ^ & | ` ?.
    private static func lexOperator(_ s: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [SQLToken]) -> Int {
        let n = s.count
        var j = i
        var special = false
        while j < n && isOperatorChar(s[j]) {
            if j > i, j + 1 < n,
               (s[j] == UInt8(ascii: "-") && s[j + 1] == UInt8(ascii: "-"))
                || (s[j] == UInt8(ascii: "/") && s[j + 1] == UInt8(ascii: "*")) {
                break
            }
            if isOperatorSpecial(s[j]) { special = true }
            j += 1
        }
        if !special {
            while j - i > 1 && (s[j - 1] == UInt8(ascii: "+") || s[j - 1] == UInt8(ascii: "-")) { j -= 1 }
        }
        out.append(SQLToken(kind: .punctuation, text: text(s, i..<j), range: i..<j))
        return j
    }
}
