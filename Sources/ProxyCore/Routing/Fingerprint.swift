// Query fingerprints: SQL text normalised with the token lexer (literals and parameters become $1, $2..., IN
// lists of literals collapse, comments and whitespace fold, keywords lowercase) plus a 64-bit FNV-1a hash.
// The classifier caches by it; stats can group by it.

/// A normalised statement text and its hash. Statements that differ only in literal values, comments,
/// whitespace, keyword case or the length of a literal `IN (...)` list have the same fingerprint.
public struct Fingerprint: Hashable, Sendable, CustomStringConvertible {
    /// Tokens joined by single spaces: words lowercased, quoted identifiers kept (in double quotes), literals
    /// and `$n` parameters numbered `$1`, `$2`... in order, trailing semicolons dropped.
    public let normalized: String
    /// 64-bit FNV-1a of `normalized`'s UTF-8 bytes.
    public let id: UInt64

    public init(normalized: String) {
        self.normalized = normalized
        self.id = Fingerprint.fnv1a(normalized.utf8)
    }

    private init(bytes: [UInt8]) {
        self.normalized = String(decoding: bytes, as: UTF8.self)
        self.id = Fingerprint.fnv1a(bytes)
    }

    public static func of(_ sql: String) -> Fingerprint {
        Fingerprint(bytes: normalize(SQLLexer.tokens(sql)))
    }

    /// The fingerprint of raw UTF-8 text (a Query payload without its NUL), without making a String of it first.
    public static func of(utf8 bytes: UnsafeRawBufferPointer) -> Fingerprint {
        Fingerprint(bytes: normalize(SQLLexer.tokens(bytes)))
    }

    public var description: String { normalized }

    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    public static func == (a: Fingerprint, b: Fingerprint) -> Bool { a.id == b.id && a.normalized == b.normalized }

    // MARK: Normalising

    /// The normalised text as UTF-8 bytes (built as bytes: this runs for every classified statement).
    static func normalize(_ tokens: [SQLToken]) -> [UInt8] {
        var end = tokens.count
        while end > 0 && tokens[end - 1].kind == .semicolon { end -= 1 }
        var out: [UInt8] = []
        out.reserveCapacity(end * 6)
        var placeholder = 0
        func space() {
            if !out.isEmpty { out.append(32) }
        }
        func emitPlaceholder() {
            space()
            placeholder += 1
            out.append(UInt8(ascii: "$"))
            // A small String (no heap allocation) for the number's digits.
            out.append(contentsOf: String(placeholder).utf8)
        }
        var i = 0
        while i < end {
            let token = tokens[i]
            switch token.kind {
            case .word:
                space()
                appendUTF8(token.text, to: &out)
                if token.text == "in", let close = literalListEnd(tokens, open: i + 1, end: end) {
                    space()
                    out.append(UInt8(ascii: "("))
                    emitPlaceholder()
                    space()
                    out.append(UInt8(ascii: ")"))
                    i = close + 1
                    continue
                }
            case .quotedIdentifier:
                space()
                out.append(UInt8(ascii: "\""))
                for c in token.text.utf8 {
                    if c == UInt8(ascii: "\"") { out.append(c) }
                    out.append(c)
                }
                out.append(UInt8(ascii: "\""))
            case .string, .number, .parameter:
                emitPlaceholder()
            case .punctuation, .semicolon:
                space()
                appendUTF8(token.text, to: &out)
            }
            i += 1
        }
        return out
    }

    /// A token's text appended as one copy of its UTF-8 bytes (appending the UTF8View goes byte by byte).
    @inline(__always)
    private static func appendUTF8(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// When `tokens[open]` starts `( literal [, literal]... )` (a literal: string, number or parameter,
    /// numbers optionally signed), the index of its ")"; otherwise nil.
    private static func literalListEnd(_ t: [SQLToken], open: Int, end: Int) -> Int? {
        guard open < end, isPunctuation(t[open], "(") else { return nil }
        var i = open + 1
        while true {
            if i + 1 < end, isPunctuation(t[i], "-") || isPunctuation(t[i], "+"), t[i + 1].kind == .number {
                i += 1
            }
            guard i < end else { return nil }
            switch t[i].kind {
            case .string, .number, .parameter: break
            case .word, .quotedIdentifier, .punctuation, .semicolon: return nil
            }
            i += 1
            guard i < end else { return nil }
            if isPunctuation(t[i], ")") { return i }
            guard isPunctuation(t[i], ",") else { return nil }
            i += 1
        }
    }

    private static func isPunctuation(_ token: SQLToken, _ c: Unicode.Scalar) -> Bool {
        token.kind == .punctuation && token.text.utf8.count == 1 && token.text.utf8.first == UInt8(ascii: c)
    }

    static func fnv1a<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
