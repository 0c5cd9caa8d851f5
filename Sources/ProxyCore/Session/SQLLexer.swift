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
    /// Letters, digits, _ and $ (bit c - 64 of `identHigh`, bit c of `identLow`), and every byte >= 0x80.
    @inline(__always)
    static func isIdentChar(_ c: UInt8) -> Bool {
        if c >= 0x80 { return true }
        let identLow: UInt64 = 0x03FF_0010_0000_0000    // 0-9, $
        let identHigh: UInt64 = 0x07FF_FFFE_87FF_FFFE   // A-Z, _, a-z
        return c < 64 ? (identLow >> UInt64(c)) & 1 != 0 : (identHigh >> UInt64(c - 64)) & 1 != 0
    }
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

    /// One token as the scanner finds it: its kind and place, no text yet. Text is made only by `token(_:in:)`
    /// (the fingerprint of a statement hashes the bytes without ever making it).
    struct RawToken {
        var kind: SQLToken.Kind
        var range: Range<Int>
        /// Strings and quoted identifiers: where the quoted content starts and ends (the closing quote or
        /// tag, or the end of input), and the escapes that apply. A dollar-quoted string has `.none`.
        var content: Range<Int> = 0..<0
        var escapes: Escapes = .none
        /// The quote character of a quoted token (' or "), or $ for a dollar-quoted string; 0 otherwise.
        var quote: UInt8 = 0
    }

    private static func lex(_ s: UnsafeBufferPointer<UInt8>) -> [SQLToken] {
        var out: [SQLToken] = []
        // About one token per four bytes of SQL: one allocation instead of growing 4, 8, 16...
        out.reserveCapacity(min(s.count / 4 + 8, 512))
        var i = 0
        while let raw = scan(s, from: i) {
            out.append(token(raw, in: s))
            i = raw.range.upperBound
        }
        return out
    }

    /// The token with its text: words ASCII-lowercased, quoted content unescaped.
    static func token(_ raw: RawToken, in s: UnsafeBufferPointer<UInt8>) -> SQLToken {
        let text: String
        switch raw.kind {
        case .word:
            text = lowercased(s, raw.range)
        case .string, .quotedIdentifier:
            text = raw.quote == dollar ? Self.text(s, raw.content) : quoted(s, from: raw.content.lowerBound, quote: raw.quote, escapes: raw.escapes).0
        case .semicolon:
            text = ";"
        case .number, .parameter, .punctuation:
            text = Self.text(s, raw.range)
        }
        return SQLToken(kind: raw.kind, text: text, range: raw.range)
    }

    /// The next token at or after `i` (spaces and comments skipped), or nil at the end of input.
    @inline(__always)
    static func scan(_ s: UnsafeBufferPointer<UInt8>, from start: Int) -> RawToken? {
        let n = s.count
        var i = start
        while i < n {
            let c = s[i]
            let next: UInt8 = i + 1 < n ? s[i + 1] : 0
            if isSpace(c) { i += 1; continue }
            if c == UInt8(ascii: "-") && next == UInt8(ascii: "-") {
                i = lineCommentEnd(s, from: i)
                continue
            }
            if c == UInt8(ascii: "/") && next == UInt8(ascii: "*") {
                i = skipBlockComment(s, from: i)
                continue
            }
            switch c {
            case quote, doubleQuote:
                return quotedToken(s, from: i, contentStart: i + 1, quote: c, escapes: .none)
            case dollar:
                return scanDollar(s, from: i)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                return RawToken(kind: .number, range: i..<numberEnd(s, from: i))
            case UInt8(ascii: ".") where isDigit(next):
                return RawToken(kind: .number, range: i..<numberEnd(s, from: i))
            case UInt8(ascii: ";"):
                return RawToken(kind: .semicolon, range: i..<i + 1)
            case UInt8(ascii: ":"):
                let len = (next == UInt8(ascii: ":") || next == UInt8(ascii: "=")) ? 2 : 1
                return RawToken(kind: .punctuation, range: i..<i + len)
            case UInt8(ascii: "."):
                let len = next == UInt8(ascii: ".") ? 2 : 1
                return RawToken(kind: .punctuation, range: i..<i + len)
            default:
                if isIdentStart(c) { return scanWord(s, from: i) }
                if isOperatorChar(c) { return RawToken(kind: .punctuation, range: i..<operatorEnd(s, from: i)) }
                // ( ) [ ] , and anything unknown: one byte.
                return RawToken(kind: .punctuation, range: i..<i + 1)
            }
        }
        return nil
    }

    /// Index of the line end (CR or LF) closing the -- comment starting at `i`, or the end of input.
    static func lineCommentEnd(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
        var j = i + 2
        while j < s.count && s[j] != 10 && s[j] != 13 { j += 1 }
        return j
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

    enum Escapes { case none, backslash, unicode }

    /// A '...' or "..." token (also E'', U&'' and the like: `start` is the prefix, `contentStart` after the
    /// opening quote), ending after the closing quote or at the end of input, as `quoted` reads it.
    private static func quotedToken(_ s: UnsafeBufferPointer<UInt8>, from start: Int, contentStart: Int, quote q: UInt8,
                                    escapes: Escapes) -> RawToken {
        let n = s.count
        var j = contentStart
        while j < n {
            let c = s[j]
            if c == q {
                if j + 1 < n && s[j + 1] == q { j += 2; continue }
                return RawToken(kind: q == quote ? .string : .quotedIdentifier, range: start..<j + 1,
                                content: contentStart..<j, escapes: escapes, quote: q)
            }
            if c == backslash && escapes != .none && j + 1 < n {
                // An escape never ends the content: E'' skips the escaped byte (\' is a quote in the text);
                // U&'' takes \\ as one, and any other backslash alone (its hex digits are no quotes).
                j += escapes == .backslash || s[j + 1] == backslash ? 2 : 1
                continue
            }
            j += 1
        }
        return RawToken(kind: q == quote ? .string : .quotedIdentifier, range: start..<n, content: contentStart..<n,
                        escapes: escapes, quote: q)
    }

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
    private static func scanDollar(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> RawToken {
        let n = s.count
        var j = i + 1
        if j < n && isDigit(s[j]) {
            while j < n && isDigit(s[j]) { j += 1 }
            return RawToken(kind: .parameter, range: i..<j)
        }
        if j < n && isIdentStart(s[j]) {
            while j < n && (isIdentStart(s[j]) || isDigit(s[j])) { j += 1 }
        }
        guard j < n && s[j] == dollar else { return RawToken(kind: .punctuation, range: i..<i + 1) }
        let tagLength = j + 1 - i
        let contentStart = j + 1
        var k = contentStart
        while k + tagLength <= n {
            if s[k] == dollar && memEqual(s, k, i, tagLength) {
                return RawToken(kind: .string, range: i..<k + tagLength, content: contentStart..<k, quote: dollar)
            }
            k += 1
        }
        return RawToken(kind: .string, range: i..<n, content: contentStart..<n, quote: dollar)
    }

    private static func memEqual(_ s: UnsafeBufferPointer<UInt8>, _ a: Int, _ b: Int, _ length: Int) -> Bool {
        for m in 0..<length where s[a + m] != s[b + m] { return false }
        return true
    }

    /// E, B, X, N in either case: letters that make a string of the quote after them.
    @inline(__always)
    static func isStringPrefix(_ c: UInt8) -> Bool {
        switch c | 0x20 {
        case UInt8(ascii: "e"), UInt8(ascii: "b"), UInt8(ascii: "x"), UInt8(ascii: "n"): return true
        default: return false
        }
    }

    /// x, o or b in either case (0x1F, 0o17, 0b101).
    private static func isRadixLetter(_ c: UInt8) -> Bool {
        switch c | 0x20 {
        case UInt8(ascii: "x"), UInt8(ascii: "o"), UInt8(ascii: "b"): return true
        default: return false
        }
    }

    /// Index after the number starting at `i` (0x/0o/0b, decimals, exponents, _ separators).
    private static func numberEnd(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
        let n = s.count
        var j = i
        func digits() { while j < n && (isDigit(s[j]) || s[j] == 95) { j += 1 } }
        if s[i] == UInt8(ascii: "0"), i + 2 < n, isRadixLetter(s[i + 1]), isHexDigit(s[i + 2]) {
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
        return j
    }

    /// A word, or a prefixed string: E'..', B'..', X'..', N'..', U&'..', U&"..".
    private static func scanWord(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> RawToken {
        let n = s.count
        let lower = s[i] | 0x20
        if i + 1 < n && s[i + 1] == quote && isStringPrefix(s[i]) {
            return quotedToken(s, from: i, contentStart: i + 2, quote: quote, escapes: lower == UInt8(ascii: "e") ? .backslash : .none)
        }
        if lower == UInt8(ascii: "u"), isLetter(s[i]), i + 2 < n, s[i + 1] == UInt8(ascii: "&"),
           s[i + 2] == quote || s[i + 2] == doubleQuote {
            return quotedToken(s, from: i, contentStart: i + 3, quote: s[i + 2], escapes: .unicode)
        }
        var j = i
        while j < n && isIdentChar(s[j]) { j += 1 }
        return RawToken(kind: .word, range: i..<j)
    }

    /// The bytes of `range`, ASCII-lowercased, as a String.
    private static func lowercased(_ s: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        var hasUpper = false
        for m in range where s[m] >= 65 && s[m] <= 90 {
            hasUpper = true
            break
        }
        guard hasUpper else { return text(s, range) }
        // Lowercased straight into the String's storage (no array in between; short words stay inline).
        return String(unsafeUninitializedCapacity: range.count) { buffer in
            for m in 0..<range.count {
                let b = s[range.lowerBound + m]
                buffer[m] = b >= 65 && b <= 90 ? b | 0x20 : b
            }
            return range.count
        }
    }

    /// Postgres operator rules: stop before -- or /*; a multi-character operator ends in + or - only if it
    /// contains one of ~ ! @ # % ^ & | ` ?.
    private static func operatorEnd(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
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
        return j
    }
}
