// Query fingerprints: SQL text normalised with the token lexer (literals and parameters become $1, $2..., IN
// lists of literals collapse, comments and whitespace fold, keywords lowercase) plus a 64-bit hash of it
// (eight bytes per multiply: `NormalizedHash`).
// The classifier caches by it; stats can group by it.

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

    // MARK: The id in one pass

    /// The id `Fingerprint.of(utf8:)` gives the same text, computed in one pass over the bytes: the lexer's
    /// scanner finds the tokens and the normalised bytes go straight into the hash, with no token array and no
    /// text. Nil when the text has a non-ASCII word or identifier or a U&"" identifier (their normalised bytes
    /// need decoding): then only the full fingerprint has the id. The hot path looks fingerprints up by it.
    public static func id(utf8 bytes: UnsafeRawBufferPointer) -> UInt64? {
        onePass(utf8: bytes)?.id
    }

    /// The one-pass id; `check`, a second hash of the same normalised bytes keyed per process, so that a cache
    /// keyed by both is not fooled by a collision crafted for the id's public constants; and whether the
    /// text has a string literal ('...', E'...', $$...$$ and the like): texts of one shape without strings
    /// differ only in numbers, parameters, spacing, comments and letter case.
    public static func onePass(utf8 bytes: UnsafeRawBufferPointer) -> (id: UInt64, check: UInt64, hasStrings: Bool)? {
        let s = UnsafeBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        var h = NormalizedHash()
        var i = 0
        var pendingSemicolons = 0
        var hasStrings = false
        let n = s.count
        while true {
            // Spaces and plain words, the bulk of a statement, are read here as `SQLLexer.scan` reads them
            // (a word is hashed while it is scanned); anything else goes through the lexer.
            while i < n && SQLLexer.isSpace(s[i]) { i &+= 1 }
            if i < n, pendingSemicolons == 0, SQLLexer.isPlainWordStart(s, at: i) {
                h.separate()
                let start = i
                // Eight bytes at a time while they are ASCII word characters; the rest byte by byte.
                while i &+ 8 <= n {
                    let chunk = UInt64(littleEndian: UnsafeRawPointer(s.baseAddress! + i).loadUnaligned(as: UInt64.self))
                    let k = WordBytes.leadingWordBytes(chunk)
                    if k > 0 { h.bytes(WordBytes.lowercased(chunk, count: k), count: k) }
                    i &+= k
                    if k < 8 { break }
                }
                while i < n && SQLLexer.isIdentChar(s[i]) {
                    let b = s[i]
                    if b >= 0x80 { return nil }
                    h.byte(b >= 65 && b <= 90 ? b | 0x20 : b)
                    i &+= 1
                }
                collapseInList(s, afterWord: start..<i, at: &i, into: &h, hasStrings: &hasStrings)
                continue
            }
            // Plain integers and ( ) , = are read here too, as the lexer would read them; anything more
            // (a decimal point, an exponent, a longer operator, a comment) goes through the lexer.
            if i < n, pendingSemicolons == 0 {
                let c = s[i]
                if SQLLexer.isDigit(c) {
                    var j = i &+ 1
                    while j < n && SQLLexer.isDigit(s[j]) { j &+= 1 }
                    if j == n || SQLLexer.isSpace(s[j]) || s[j] == UInt8(ascii: ",") || s[j] == UInt8(ascii: ")") || s[j] == UInt8(ascii: ";") {
                        h.placeholder()
                        i = j
                        continue
                    }
                } else if c == UInt8(ascii: "(") || c == UInt8(ascii: ")") || c == UInt8(ascii: ",")
                            || (c == UInt8(ascii: "=") && (i &+ 1 == n || !SQLLexer.isOperatorChar(s[i &+ 1]))) {
                    h.separate()
                    h.byte(c)
                    i &+= 1
                    continue
                }
            }
            guard let t = SQLLexer.scan(s, from: i) else { break }
            i = t.range.upperBound
            if t.kind == .semicolon {
                // Dropped when trailing: written only once another token follows.
                pendingSemicolons += 1
                continue
            }
            while pendingSemicolons > 0 {
                h.token(UInt8(ascii: ";"))
                pendingSemicolons -= 1
            }
            switch t.kind {
            case .word:
                h.separate()
                for m in t.range {
                    let b = s[m]
                    if b >= 0x80 { return nil }
                    h.byte(b >= 65 && b <= 90 ? b | 0x20 : b)
                }
                collapseInList(s, afterWord: t.range, at: &i, into: &h, hasStrings: &hasStrings)
            case .quotedIdentifier:
                // The raw content of "..." is the unescaped content with its quotes doubled again.
                guard t.escapes == .none else { return nil }
                h.separate()
                h.byte(UInt8(ascii: "\""))
                for m in t.content {
                    if s[m] >= 0x80 { return nil }
                    h.byte(s[m])
                }
                h.byte(UInt8(ascii: "\""))
            case .string, .number, .parameter:
                if t.kind == .string { hasStrings = true }
                h.placeholder()
            case .punctuation:
                h.separate()
                for m in t.range { h.byte(s[m]) }
            case .semicolon:
                break
            }
        }
        return (h.id, h.check, hasStrings)
    }

    /// After `word` (ending at `i`): when it is IN followed by `(literal, ...)`, the list is hashed as one
    /// placeholder, as `normalize` writes it, and `i` moves past it.
    @inline(__always)
    private static func collapseInList(_ s: UnsafeBufferPointer<UInt8>, afterWord word: Range<Int>, at i: inout Int,
                                       into h: inout NormalizedHash, hasStrings: inout Bool) {
        guard word.count == 2, s[word.lowerBound] | 0x20 == UInt8(ascii: "i"), s[word.lowerBound + 1] | 0x20 == UInt8(ascii: "n"),
              let (close, strings) = literalListEnd(s, from: i) else { return }
        h.token(UInt8(ascii: "("))
        h.placeholder()
        h.token(UInt8(ascii: ")"))
        i = close
        hasStrings = hasStrings || strings
    }

    /// After the word IN at `i`: the index after `( literal [, literal]... )` (as `literalListEnd` on tokens) and
    /// whether a literal was a string, or nil.
    private static func literalListEnd(_ s: UnsafeBufferPointer<UInt8>, from start: Int) -> (Int, Bool)? {
        func single(_ t: SQLLexer.RawToken, _ c: Unicode.Scalar) -> Bool {
            t.kind == .punctuation && t.range.count == 1 && s[t.range.lowerBound] == UInt8(ascii: c)
        }
        guard let open = SQLLexer.scan(s, from: start), single(open, "(") else { return nil }
        var i = open.range.upperBound
        var strings = false
        while true {
            guard var t = SQLLexer.scan(s, from: i) else { return nil }
            i = t.range.upperBound
            if single(t, "-") || single(t, "+"), let number = SQLLexer.scan(s, from: i), number.kind == .number {
                t = number
                i = t.range.upperBound
            }
            switch t.kind {
            case .string: strings = true
            case .number, .parameter: break
            case .word, .quotedIdentifier, .punctuation, .semicolon: return nil
            }
            guard let after = SQLLexer.scan(s, from: i) else { return nil }
            i = after.range.upperBound
            if single(after, ")") { return (i, strings) }
            guard single(after, ",") else { return nil }
        }
    }

    /// Word characters eight bytes at a time (SWAR), for the one-pass id's plain words.
    enum WordBytes {
        private static let ones: UInt64 = 0x0101_0101_0101_0101
        private static let highs: UInt64 = 0x8080_8080_8080_8080

        /// The high bit of each byte of `v` (all bytes below 0x80) that is in `lo...hi`.
        @inline(__always)
        private static func inRange(_ v: UInt64, _ lo: UInt8, _ hi: UInt8) -> UInt64 {
            ((v &+ ones &* UInt64(0x80 &- lo)) & ~(v &+ ones &* UInt64(0x7F &- hi))) & highs
        }

        /// How many of the first bytes (in memory order) of `chunk` are ASCII letters, digits, `_` or `$`.
        @inline(__always)
        static func leadingWordBytes(_ chunk: UInt64) -> Int {
            let x = chunk & ~highs
            let letters = inRange(x | ones &* 0x20, 0x61, 0x7A)
            let word = (letters | inRange(x, 0x30, 0x39) | inRange(x, 0x5F, 0x5F) | inRange(x, 0x24, 0x24)) & ~(chunk & highs)
            return (~word & highs).trailingZeroBitCount >> 3
        }

        /// The first `count` bytes of `chunk` with A-Z lowercased, the others zero.
        @inline(__always)
        static func lowercased(_ chunk: UInt64, count: Int) -> UInt64 {
            let upper = inRange(chunk & ~highs, 0x41, 0x5A) & ~(chunk & highs)
            let lower = chunk | (upper &>> 2)
            return count == 8 ? lower : lower & ((1 &<< (UInt64(count) &* 8)) &- 1)
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

    /// The id of normalised bytes as `normalize` writes them (`onePass` feeds the same bytes while scanning),
    /// and the keyed check hash. Bytes are gathered eight at a time into a word; each word is mixed into
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
        var started = false
        var placeholders = 0

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

        /// The space between tokens.
        @inline(__always)
        mutating func separate() {
            if started { byte(32) }
            started = true
        }

        mutating func token(_ b: UInt8) {
            separate()
            byte(b)
        }

        mutating func placeholder() {
            separate()
            placeholders += 1
            byte(UInt8(ascii: "$"))
            // Digits most significant first, without a buffer: the largest power of ten not above the number.
            var scale = 1
            while scale <= placeholders / 10 { scale &*= 10 }
            var n = placeholders
            repeat {
                byte(UInt8(ascii: "0") &+ UInt8(n / scale))
                n %= scale
                scale /= 10
            } while scale > 0
        }
    }
}
