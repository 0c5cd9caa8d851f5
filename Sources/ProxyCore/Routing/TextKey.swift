// The text key (Fingerprint.textKey): the key the hot path finds a statement's fingerprint by, in one pass over
// its bytes, without tokens. It runs once per statement: the text is read a word (eight bytes) at a time and
// only bytes that may start a literal or a comment are looked at one by one.

extension Fingerprint {
    /// The key the hot path finds a text's fingerprint by, computed in one pass over the bytes without tokens:
    /// the text's bytes as they are, except that each literal (number, string, $n parameter, as the lexer
    /// reads them) and each comment is hashed as a marker of its kind and place. Texts with equal keys differ
    /// only inside literals and comments, so they have the same fingerprint (`TextKeyTests` checks this on
    /// token soup); texts of one shape written with other spacing or letter case get keys of their own, each
    /// mapped to the one fingerprint.
    ///
    /// `id` and `check` are two hashes of that stream (`NormalizedHash`): `check` is keyed per process, so that
    /// a cache keyed by both is not fooled by a collision crafted for the id's public constants. `hasStrings`:
    /// the text has a string literal ('...', E'...', $$...$$ and the like); texts of one key without strings
    /// differ only in numbers, parameters and comments.
    public static func textKey(utf8 bytes: UnsafeRawBufferPointer) -> (id: UInt64, check: UInt64, hasStrings: Bool) {
        // checkKey is a lazy global (swift_once on each read): read once per text.
        var h = TextKeyHash(checkKey)
        let n = bytes.count
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), n > 0 else {
            return h.finished(last: 0, count: 0, hasStrings: false)
        }
        // The key's bytes are the text's but for literals and comments, so the text is read in words aligned to
        // the key's (from the start, and from the end of each literal or comment): a word goes into the hash
        // as loaded unless one of its bytes that may start a literal or comment (`KeyBytes.stops`) does.
        var scan = KeyScan(base: base, count: n)
        var i = 0
        words: while true {
            // The next word with a byte in 0x22...0x39 (most words of SQL have none: one range check, straight
            // into the hash, in a loop of its own so that the hash stays in registers); at the end the last
            // 1...7 bytes, zero bytes after them.
            var word: UInt64
            var count = 8
            while true {
                guard i &+ 8 <= n else {
                    count = n &- i
                    guard count > 0 else { return h.finished(last: 0, count: 0, hasStrings: scan.hasStrings) }
                    word = KeyBytes.partialWord(base, at: i, count: count, end: n)
                    guard KeyBytes.mayHaveSpecial(word) else { return h.finished(last: word, count: count, hasStrings: scan.hasStrings) }
                    break
                }
                word = KeyBytes.load(base, at: i)
                if KeyBytes.mayHaveSpecial(word) { break }
                h.mix(word)
                i &+= 8
            }
            var stops = scan.stops(word, at: i)
            while stops != 0 {
                let at = stops.trailingZeroBitCount &>> 3
                switch scan.read(at: i &+ at, in: word, wordAt: i) {
                case .key(let end):
                    // Bytes of the key as they are: on to the next stop after them.
                    stops &= end == i &+ at &+ 1 ? stops &- 1 : KeyBytes.from(end &- i)
                case .literal(let kind, let end):
                    // The word's bytes before it, its marker, then words from its end on.
                    h.marker(kind, after: word & KeyBytes.below(at), count: at)
                    i = end
                    continue words
                }
            }
            if count < 8 { return h.finished(last: word, count: count, hasStrings: scan.hasStrings) }
            h.mix(word)
            i &+= 8
        }
    }

    /// The lexer's reading of the bytes of the text key's words that may start a literal or comment.
    struct KeyScan {
        let base: UnsafePointer<UInt8>
        let n: Int
        /// Stops (`KeyBytes.stops`) before this are inside a token read already (.., a quoted identifier).
        private var skipTo = 0
        /// Where the last token read by the lexer (a literal, quoted identifier, lone $) or a comment ended: a
        /// token starts there even after a word character (1E'x' is a number and an E'' string).
        private var tokenEnd = 0
        /// A string literal was read.
        private(set) var hasStrings = false

        init(base: UnsafePointer<UInt8>, count: Int) {
            self.base = base
            self.n = count
        }

        /// What the byte at a stop turned out to be.
        enum Stop {
            /// The bytes up to `end` are the key's as they are.
            case key(end: Int)
            /// A literal or comment, the key going on at `end`.
            case literal(NormalizedHash.Marker, end: Int)
        }

        /// The stops of the word at `i` not inside a token read already.
        @inline(__always)
        func stops(_ word: UInt64, at i: Int) -> UInt64 {
            let stops = KeyBytes.stops(word)
            return skipTo > i ? stops & KeyBytes.from(skipTo &- i) : stops
        }

        @inline(__always)
        private func startsToken(_ j: Int) -> Bool {
            j == 0 || j == tokenEnd || !SQLLexer.isIdentChar(base[j &- 1])
        }

        /// The token at stop `p` (a byte of `word`, the text's word at `i`). The commonest stops are read here:
        /// a digit in a word, a plain integer, a minus; the others by `readToken`.
        @inline(__always)
        mutating func read(at p: Int, in word: UInt64, wordAt i: Int) -> Stop {
            let c = base[p]
            if SQLLexer.isDigit(c) {
                // A number starts at a digit where a token starts; inside a word a digit is part of the word.
                guard startsToken(p) else { return .key(end: p &+ 1) }
                // Plain integers are read here: digits up to a byte that cannot go on a number.
                if let end = integerEnd(word, from: p &- i, wordAt: i) {
                    tokenEnd = end
                    return .literal(.literal, end: end)
                }
            } else if c == UInt8(ascii: "-"), p &+ 1 == n || base[p &+ 1] != UInt8(ascii: "-") {
                return .key(end: p &+ 1)
            }
            return readToken(at: p)
        }

        /// The end of the digits from byte `at` of `word` (the text's word at `i`) on, when they end a plain
        /// integer (at the end of the text or at a byte that cannot go on a number: no word character, no .);
        /// nil otherwise (the lexer reads it).
        @inline(__always)
        private func integerEnd(_ word: UInt64, from at: Int, wordAt i: Int) -> Int? {
            // The digits' end in this word (the zero bytes after the text's last are no digits), else in words on.
            let after = KeyBytes.nonDigits(word) & KeyBytes.from(at &+ 1)
            let j = after != 0 ? i &+ after.trailingZeroBitCount &>> 3 : digitsEnd(from: i &+ 8)
            if j < n && (SQLLexer.isIdentChar(base[j]) || base[j] == UInt8(ascii: ".")) { return nil }
            return j
        }

        /// The end of the digits from `start` on (a long number).
        private func digitsEnd(from start: Int) -> Int {
            var j = start
            while j < n {
                let count = n &- j
                let word = count >= 8 ? KeyBytes.load(base, at: j) : KeyBytes.partialWord(base, at: j, count: count, end: n)
                let nonDigits = KeyBytes.nonDigits(word)
                if nonDigits != 0 { return j &+ nonDigits.trailingZeroBitCount &>> 3 }
                j &+= 8
            }
            return n
        }

        /// The token at stop `p` as the lexer reads it (out of line: the loop over words keeps the hash in
        /// registers).
        @inline(never)
        private mutating func readToken(at p: Int) -> Stop {
            let s = UnsafeBufferPointer(start: base, count: n)
            let c = base[p]
            let next: UInt8 = p &+ 1 < n ? base[p &+ 1] : 0
            let stop: Stop
            switch c {
            case UInt8(ascii: ".") where next == UInt8(ascii: "."):
                // .. is one token, as the lexer reads it (..5 is .. and 5, not . and .5).
                stop = .key(end: p &+ 2)
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "$"):
                // A number (not a plain integer: `read`) where a token starts or at . before a digit (a . is
                // never inside a word); $ starts $n, $tag$...$tag$ or a lone $ where a token starts.
                guard c == UInt8(ascii: ".") ? SQLLexer.isDigit(next) : startsToken(p),
                      let t = SQLLexer.scan(s, from: p) else { return .key(end: p &+ 1) }
                // A lone $ (punctuation, one byte) is the key's; anything else is a literal.
                if t.kind == .string { hasStrings = true }
                stop = t.kind == .punctuation ? .key(end: t.range.upperBound) : .literal(.literal, end: t.range.upperBound)
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                // A string or quoted identifier, from its prefix when the bytes before are one (E'', B'', X'',
                // N'', U&'', U&"" where a token starts); the prefix bytes stay in the key.
                var start = p
                if c == UInt8(ascii: "'"), p >= 1, SQLLexer.isStringPrefix(base[p &- 1]), startsToken(p &- 1) {
                    start = p &- 1
                } else if p >= 2, base[p &- 1] == UInt8(ascii: "&"), base[p &- 2] | 0x20 == UInt8(ascii: "u"),
                          startsToken(p &- 2) {
                    start = p &- 2
                }
                guard let t = SQLLexer.scan(s, from: start) else { return .key(end: p &+ 1) }
                if t.kind == .string {
                    hasStrings = true
                    // A prefix is part of the literal (E'x' is one placeholder, e.5 a word and one).
                    stop = .literal(start < p ? .prefixedString : .literal, end: t.range.upperBound)
                } else {
                    // A quoted identifier is a name: its bytes are the key's.
                    stop = .key(end: t.range.upperBound)
                }
            case UInt8(ascii: "-") where next == UInt8(ascii: "-"):
                stop = .literal(.comment, end: SQLLexer.lineCommentEnd(s, from: p))
            case UInt8(ascii: "/") where next == UInt8(ascii: "*"):
                stop = .literal(.comment, end: SQLLexer.skipBlockComment(s, from: p))
            default:
                // - or / not starting a comment.
                return .key(end: p &+ 1)
            }
            switch stop {
            case .key(let end):
                if end > p &+ 1 { skipTo = end }
                // The end of .. is not a token's (..5 is .. and the number 5, but a..5 a word).
                if c != UInt8(ascii: ".") { tokenEnd = end }
            case .literal(_, let end):
                tokenEnd = end
            }
            return stop
        }
    }

    /// `NormalizedHash` of the text key's byte stream, given whole words: text words, the partial word before
    /// a marker and the marker, and the last partial word, with the result `NormalizedHash` gets byte by byte.
    struct TextKeyHash {
        private var value = NormalizedHash.basis
        private var checkValue: UInt64
        private let checkMultiplier: UInt64
        /// Words mixed in so far.
        private var words: UInt64 = 0

        @inline(__always)
        init(_ key: (basis: UInt64, multiplier: UInt64)) {
            checkValue = key.basis
            checkMultiplier = key.multiplier
        }

        @inline(__always)
        mutating func mix(_ w: UInt64) {
            value = NormalizedHash.mix(value, w, NormalizedHash.idMultiplier)
            checkValue = NormalizedHash.mix(checkValue, w, checkMultiplier)
            words &+= 1
        }

        /// A literal or comment after `count` (0...7) more bytes of key (the low bytes of `w`, the rest zero): those
        /// bytes as a word of their own, then the marker word (`NormalizedHash.markerWord`).
        @inline(__always)
        mutating func marker(_ kind: NormalizedHash.Marker, after w: UInt64, count: Int) {
            let place = words &<< 3 | UInt64(count)
            if count > 0 { mix(w) }
            mix(NormalizedHash.markerWord(kind, place: place))
        }

        /// Both hashes finished after the last `count` (0...7) bytes (the low bytes of `last`, the rest zero).
        @inline(__always)
        func finished(last: UInt64, count: Int, hasStrings: Bool) -> (id: UInt64, check: UInt64, hasStrings: Bool) {
            let length = words &<< 3 &+ UInt64(count)
            return (NormalizedHash.finish(value, NormalizedHash.idMultiplier, last: last, length: length),
                    NormalizedHash.finish(checkValue, checkMultiplier, last: last, length: length), hasStrings)
        }
    }

    /// Bytes eight at a time (SWAR) for the text key. Words are loaded little-endian: byte k of the text is
    /// bits 8k...8k+7, and masks mark a byte by its high bit.
    enum KeyBytes {
        private static let ones: UInt64 = 0x0101_0101_0101_0101
        private static let highs: UInt64 = 0x8080_8080_8080_8080

        /// Whether a byte of `chunk` is in 0x22...0x39 (" # $ % & ' ( ) * + , - . / and digits): every byte
        /// `stops` marks is.
        @inline(__always)
        static func mayHaveSpecial(_ chunk: UInt64) -> Bool {
            let x = chunk & ~highs
            return (x &+ ones &* 0x5E) & ~(x &+ ones &* 0x46) & highs & ~chunk != 0
        }

        /// The bytes of `chunk` that can start a literal or a comment or be a word character before one: " $ '
        /// - . / and digits (not bytes >= 0x80), each marked by its high bit.
        @inline(__always)
        static func stops(_ chunk: UInt64) -> UInt64 {
            let x = chunk & ~highs
            // High bit of each byte in - . / 0-9: x + (0x80 - 0x2D) reaches 0x80 from 0x2D up, x + (0x7F - 0x39)
            // from 0x3A up; and of each byte equal to " $ ': its XOR with the byte is zero, and zero + 0x7F is
            // the only sum without the high bit. Exact per byte (no carries: every byte is below 0x80).
            let range = (x &+ ones &* 0x53) & ~(x &+ ones &* 0x46)
            let quote = ~((x ^ ones &* 0x22) &+ ones &* 0x7F)
            let dollar = ~((x ^ ones &* 0x24) &+ ones &* 0x7F)
            let apostrophe = ~((x ^ ones &* 0x27) &+ ones &* 0x7F)
            return (range | quote | dollar | apostrophe) & highs & ~chunk
        }

        /// The bytes of `chunk` that are no ASCII digit, each marked by its high bit.
        @inline(__always)
        static func nonDigits(_ chunk: UInt64) -> UInt64 {
            let x = chunk & ~highs
            // 0x30...0x39: x + 0x50 reaches 0x80 from 0x30 up, x + 0x46 from 0x3A up.
            let digits = (x &+ ones &* 0x50) & ~(x &+ ones &* 0x46) & highs & ~chunk
            return ~digits & highs
        }

        @inline(__always)
        static func load(_ base: UnsafePointer<UInt8>, at i: Int) -> UInt64 {
            UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
        }

        /// The low `count` (0...7) bytes.
        @inline(__always)
        static func below(_ count: Int) -> UInt64 {
            (1 &<< (UInt64(count) &* 8)) &- 1
        }

        /// All bytes from byte `count` (1...) on: none from 8 on.
        @inline(__always)
        static func from(_ count: Int) -> UInt64 {
            count >= 8 ? 0 : ~0 &<< (UInt64(count) &* 8)
        }

        /// `count` (1...7) bytes of the text at `at` (`at + count == end`, the end of the text) in memory order,
        /// the rest zero, without reading past `end`.
        @inline(__always)
        static func partialWord(_ base: UnsafePointer<UInt8>, at: Int, count: Int, end: Int) -> UInt64 {
            let raw = UnsafeRawPointer(base)
            if end >= 8 {
                // The text's last eight bytes, shifted down to start at `at`.
                return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: end &- 8, as: UInt64.self)) &>> (UInt64(8 &- count) &* 8)
            }
            // A text shorter than a word: four, two and one byte loads.
            var w: UInt64 = 0
            var offset = at
            if count & 4 != 0 {
                w = UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                offset &+= 4
            }
            if count & 2 != 0 {
                w |= UInt64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) &<< (UInt64(offset &- at) &* 8)
                offset &+= 2
            }
            if count & 1 != 0 { w |= UInt64(base[offset]) &<< (UInt64(offset &- at) &* 8) }
            return w
        }
    }
}
