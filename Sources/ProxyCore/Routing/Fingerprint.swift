// Query fingerprints: SQL text normalised with the token lexer (literals and parameters become $1, $2..., IN
// lists of literals collapse, comments and whitespace fold, keywords lowercase) plus a 64-bit hash of it
// (eight bytes per multiply: `NormalizedHash`).
// The classifier caches by it; stats group by it; the hot path finds it by a cheaper text key (`textKey`,
// TextKey.swift).

/// A normalised statement text and its hash. Statements that differ only in literal values, comments,
/// whitespace, keyword case or the length of a literal `IN (...)` list have the same fingerprint.
public struct Fingerprint: Hashable, Sendable, CustomStringConvertible {
    /// Tokens joined by single spaces: words lowercased, quoted identifiers kept (in double quotes), literals
    /// and `$n` parameters numbered `$1`, `$2`... in order, trailing semicolons dropped.
    public let normalized: String
    /// `NormalizedHash` of `normalized`'s UTF-8 bytes.
    public let id: UInt64

    public init(normalized: String) {
        self.normalized = normalized
        self.id = NormalizedHash.id(of: normalized.utf8)
    }

    private init(bytes: [UInt8]) {
        self.normalized = String(decoding: bytes, as: UTF8.self)
        self.id = NormalizedHash.id(of: bytes)
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
    /// The id is a hash already: dictionaries keyed by fingerprints (the classifier's verdicts) use one keyed
    /// multiply instead of SipHash.
    public func _rawHashValue(seed: Int) -> Int { Self.tableHash(id, seed: seed) }

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

    /// The per-process key of the check hash (random basis, random odd multiplier).
    static let checkKey: (basis: UInt64, multiplier: UInt64) = {
        var rng = SystemRandomNumberGenerator()
        return (rng.next(), rng.next() | 1)
    }()

    /// A dictionary hash of a fingerprint id (`Hashable._rawHashValue(seed:)`): the id is a well-mixed hash
    /// already, so one keyed multiply replaces SipHash over it (a few hundred instructions per lookup); keyed
    /// per process like `check`, so ids crafted to collide in a table's low bits do not.
    @inline(__always)
    static func tableHash(_ id: UInt64, seed: Int) -> Int {
        let mixed = (id ^ checkKey.basis) &* checkKey.multiplier
        return Int(truncatingIfNeeded: (mixed ^ (mixed &>> 29)) ^ UInt64(UInt(bitPattern: seed)))
    }

    /// The id of normalised bytes as `normalize` writes them (and the text key: `textKey`), and the keyed
    /// check hash. Bytes are gathered eight at a time into a word; each word is mixed into
    /// both hashes with one multiply each, and the length and the last partial word are folded in at the end.
    struct NormalizedHash {
        /// The id chain's starting value.
        static let basis: UInt64 = 0x243F_6A88_85A3_08D3
        private var value = basis
        /// The check hash: the same chain with a basis and an odd multiplier drawn at random per process
        /// (`checkKey`), so a collision crafted for the id's public constants does not carry over.
        private var checkValue = Fingerprint.checkKey.basis
        private let checkMultiplier = Fingerprint.checkKey.multiplier
        private var word: UInt64 = 0
        /// Bits of `word` filled: 0, 8, ... 56.
        private var shift: UInt64 = 0
        private var words = 0

        static func id<Bytes: Sequence>(of bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
            var h = NormalizedHash()
            for b in bytes { h.byte(b) }
            return h.id
        }

        @inline(__always)
        mutating func byte(_ b: UInt8) {
            word |= UInt64(b) &<< shift
            shift &+= 8
            if shift == 64 { mixWord() }
        }

        /// The id chain's multiplier (odd); the check chain's is `checkKey.multiplier`.
        static let idMultiplier: UInt64 = 0x9FB2_1C65_1E98_DF25

        @inline(__always)
        private mutating func mixWord() {
            value = Self.mix(value, word, Self.idMultiplier)
            checkValue = Self.mix(checkValue, word, checkMultiplier)
            word = 0
            shift = 0
            words &+= 1
        }

        @inline(__always)
        static func mix(_ h: UInt64, _ w: UInt64, _ k: UInt64) -> UInt64 {
            let x = (h ^ w) &* k
            return x ^ (x &>> 29)
        }

        /// The length in bytes and the last partial word folded in, then a final avalanche (MurmurHash3 fmix64).
        private func finished(_ h: UInt64, _ k: UInt64) -> UInt64 {
            Self.finish(h, k, last: word, length: UInt64(words) &* 8 &+ shift &>> 3)
        }

        /// `finished` of a chain value, the last partial word (zero when none) and the length in bytes.
        @inline(__always)
        static func finish(_ h: UInt64, _ k: UInt64, last: UInt64, length: UInt64) -> UInt64 {
            var x = Self.mix(h, last, k) ^ length
            x ^= x &>> 33
            x = x &* 0xFF51_AFD7_ED55_8CCD
            x ^= x &>> 33
            x = x &* 0xC4CE_B9FE_1A85_EC53
            return x ^ (x &>> 33)
        }

        var id: UInt64 { finished(value, Self.idMultiplier) }
        var check: UInt64 { finished(checkValue, checkMultiplier) }

        enum Marker: UInt64 {
            case literal = 1
            case comment = 2
            /// A string whose prefix (E, B, X, N, U&) was hashed as text bytes before it was known to be one.
            case prefixedString = 3
        }

        /// The word of a marker of `kind` after `place` bytes of key (its low 24 bits): a literal or comment in the
        /// text key is the partial word before it mixed in on its own, then this word, which no text bytes make
        /// (four 0xFF bytes, invalid UTF-8) (`Fingerprint.TextKeyHash.marker`).
        @inline(__always)
        static func markerWord(_ kind: Marker, place: UInt64) -> UInt64 {
            0xFFFF_FFFF_0000_0000 | kind.rawValue &<< 24 | place & 0xFF_FFFF
        }
    }
}
