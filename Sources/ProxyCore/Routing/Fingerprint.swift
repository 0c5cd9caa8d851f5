// Query fingerprints: SQL text normalised with the token lexer (literals and parameters become $1, $2..., IN
// lists of literals collapse, comments and whitespace fold, keywords lowercase) plus a 64-bit hash of it
// (eight bytes per multiply: `NormalizedHash`).
// The classifier caches by it; stats group by it; the hot path finds it by a cheaper text key (`textKey`).

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

    // MARK: The text key in one pass

    /// The key the hot path finds a text's fingerprint by, computed in one pass over the bytes without tokens:
    /// the text's bytes as they are, except that each literal (number, string, $n parameter, as the lexer
    /// reads them) and each comment is hashed as a marker of its kind and place. Texts with equal keys differ
    /// only inside literals and comments, so they have the same fingerprint (`TextKeyTests` checks this on
    /// token soup); texts of one shape written with other spacing or letter case get keys of their own, each
    /// mapped to the one fingerprint. Eight bytes at a time while none can start a literal or a comment.
    ///
    /// `id` and `check` are two hashes of that stream: `check` is keyed per process, so that a cache keyed by
    /// both is not fooled by a collision crafted for the id's public constants. `hasStrings`: the text has a
    /// string literal ('...', E'...', $$...$$ and the like); texts of one key without strings differ only in
    /// numbers, parameters and comments.
    public static func textKey(utf8 bytes: UnsafeRawBufferPointer) -> (id: UInt64, check: UInt64, hasStrings: Bool) {
        var h = NormalizedHash()
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return (h.id, h.check, false) }
        let s = UnsafeBufferPointer(start: base, count: bytes.count)
        let n = s.count
        var i = 0
        // Where the last token read by the lexer (a literal, quoted identifier, lone $) or a comment ended: a
        // token starts there even after a word character (1E'x' is a number and an E'' string).
        var tokenEnd = 0
        var hasStrings = false
        @inline(__always) func startsToken(_ j: Int) -> Bool {
            j == 0 || j == tokenEnd || !SQLLexer.isIdentChar(s[j &- 1])
        }
        while i < n {
            while i &+ 8 <= n {
                let chunk = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                // Most chunks of SQL have no byte in 0x22...0x39 at all: one range check, then the exact count.
                let k = KeyBytes.mayHaveSpecial(UInt64(littleEndian: chunk)) ? KeyBytes.leadingPlain(UInt64(littleEndian: chunk)) : 8
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
                // .. is one token, as the lexer reads it (..5 is .. and 5, not . and .5).
                h.byte(c)
                h.byte(c)
                i &+= 2
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "$"):
                // A number starts at a digit where a token starts (inside a word a digit is part of the word),
                // or at . before a digit (a . is never inside a word); $ starts $n, $tag$...$tag$ or a lone $
                // where a token starts.
                guard c == UInt8(ascii: ".") ? SQLLexer.isDigit(next) : startsToken(i) else { break }
                if SQLLexer.isDigit(c) {
                    // Plain integers are read here: digits up to a byte that cannot go on a number.
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
                // A string or quoted identifier, from its prefix when the bytes before are one (E'', B'', X'',
                // N'', U&'', U&"" where a token starts); the prefix bytes are in the key already.
                var start = i
                if c == UInt8(ascii: "'"), i >= 1, SQLLexer.isStringPrefix(s[i &- 1]), startsToken(i &- 1) {
                    start = i &- 1
                } else if i >= 2, s[i &- 1] == UInt8(ascii: "&"), s[i &- 2] | 0x20 == UInt8(ascii: "u"), startsToken(i &- 2) {
                    start = i &- 2
                }
                guard let t = SQLLexer.scan(s, from: start) else { break }
                if t.kind == .string {
                    hasStrings = true
                    // A prefix is part of the literal (E'x' is one placeholder, e.5 a word and one).
                    h.marker(start < i ? .prefixedString : .literal)
                } else {
                    // A quoted identifier is a name: its bytes are the key's.
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
            // Any other byte (the last few of the text, - or / not starting a comment, a digit or $ inside a
            // word, a . not before a digit) is the key's as it is.
            h.byte(c)
            i &+= 1
        }
        return (h.id, h.check, hasStrings)
    }

    /// Bytes eight at a time (SWAR) for the text key.
    enum KeyBytes {
        private static let ones: UInt64 = 0x0101_0101_0101_0101
        private static let highs: UInt64 = 0x8080_8080_8080_8080

        /// Whether a byte of `chunk` is in 0x22...0x39 (" # $ % & ' ( ) * + , - . / and digits): every byte
        /// `leadingPlain` stops at is.
        @inline(__always)
        static func mayHaveSpecial(_ chunk: UInt64) -> Bool {
            let x = chunk & ~highs
            return (x &+ ones &* 0x5E) & ~(x &+ ones &* 0x46) & highs & ~chunk != 0
        }

        /// How many of the first bytes (in memory order) of `chunk` can neither start a literal or a comment
        /// nor be a word character before one: all but " $ ' - . / and digits (bytes >= 0x80 included).
        @inline(__always)
        static func leadingPlain(_ chunk: UInt64) -> Int {
            let x = chunk & ~highs
            // High bit of each byte in - . / 0-9: x + (0x80 - 0x2D) reaches 0x80 from 0x2D up, x + (0x7F - 0x39)
            // from 0x3A up; and of each byte equal to " $ ': its XOR with the byte is zero, and zero + 0x7F is
            // the only sum without the high bit. Exact per byte (no carries: every byte is below 0x80).
            let range = (x &+ ones &* 0x53) & ~(x &+ ones &* 0x46)
            let quote = ~((x ^ ones &* 0x22) &+ ones &* 0x7F)
            let dollar = ~((x ^ ones &* 0x24) &+ ones &* 0x7F)
            let apostrophe = ~((x ^ ones &* 0x27) &+ ones &* 0x7F)
            let special = (range | quote | dollar | apostrophe) & highs & ~chunk
            return special.trailingZeroBitCount &>> 3
        }
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
        private var value: UInt64 = 0x243F_6A88_85A3_08D3
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

        /// The low `count` (1...8) bytes of `w` (the rest zero), in memory order (little-endian).
        @inline(__always)
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

        /// The id chain's multiplier (odd); the check chain's is `checkKey.multiplier`.
        private static let idMultiplier: UInt64 = 0x9FB2_1C65_1E98_DF25

        @inline(__always)
        private mutating func mixWord() {
            value = Self.mix(value, word, Self.idMultiplier)
            checkValue = Self.mix(checkValue, word, checkMultiplier)
            word = 0
            shift = 0
            words &+= 1
        }

        @inline(__always)
        private static func mix(_ h: UInt64, _ w: UInt64, _ k: UInt64) -> UInt64 {
            let x = (h ^ w) &* k
            return x ^ (x &>> 29)
        }

        /// The length in bytes and the last partial word folded in, then a final avalanche (MurmurHash3 fmix64).
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

        enum Marker: UInt64 {
            case literal = 1
            case comment = 2
            /// A string whose prefix (E, B, X, N, U&) was hashed as text bytes before it was known to be one.
            case prefixedString = 3
        }

        /// A literal or comment in the text key: the partial word so far is mixed in on its own, then a word
        /// no text bytes make (four 0xFF bytes, invalid UTF-8) holding the kind and the place.
        @inline(__always)
        mutating func marker(_ kind: Marker) {
            let place = UInt64(words) &<< 3 | shift &>> 3
            if shift > 0 { mixWord() }
            word = 0xFFFF_FFFF_0000_0000 | kind.rawValue &<< 24 | place & 0xFF_FFFF
            mixWord()
        }
    }
}
