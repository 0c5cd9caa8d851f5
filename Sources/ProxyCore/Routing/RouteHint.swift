// Routing hints in SQL comments: /* switchyard:primary */, /* switchyard:replica */ or -- switchyard:replica,
// found by a byte scan that skips string literals, quoted identifiers and dollar-quoted bodies.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A route the client asks for in a comment. Case-insensitive; spaces are allowed after the colon. When a text
/// holds both, primary wins. The classifier never lets a replica hint send a write to a replica.
public enum RouteHint: String, Sendable {
    case primary
    case replica

    /// The hint in a comment anywhere in `sql`, or nil. Never traps on unterminated input.
    public static func find(in sql: String) -> RouteHint? {
        if let result = sql.utf8.withContiguousStorageIfAvailable({ scan($0) }) { return result }
        let bytes = Array(sql.utf8)
        return bytes.withUnsafeBufferPointer { scan($0) }
    }

    /// The hint in UTF-8 text (a Query payload without its NUL), or nil.
    public static func find(utf8 bytes: UnsafeRawBufferPointer) -> RouteHint? {
        scan(bytes.bindMemory(to: UInt8.self))
    }

    private static let marker = Array("switchyard:".utf8)

    private static func scan(_ s: UnsafeBufferPointer<UInt8>) -> RouteHint? {
        // Fast path: no "switchyard:" anywhere (found from its colon: memchr runs many bytes per step).
        guard hasMarker(s) else { return nil }
        var found: RouteHint?
        let n = s.count
        var i = 0
        while i < n {
            let c = s[i]
            let next: UInt8 = i + 1 < n ? s[i + 1] : 0
            if c == UInt8(ascii: "-") && next == UInt8(ascii: "-") {
                let j = SQLLexer.lineCommentEnd(s, from: i)
                found = merge(found, hint(s, i + 2..<j))
                i = j
            } else if c == UInt8(ascii: "/") && next == UInt8(ascii: "*") {
                let j = SQLLexer.skipBlockComment(s, from: i)
                found = merge(found, hint(s, i + 2..<j))
                i = j
            } else if c == UInt8(ascii: "'") {
                let backslashes = i > 0 && (s[i - 1] | 0x20) == UInt8(ascii: "e") && !(i > 1 && SQLLexer.isIdentChar(s[i - 2]))
                i = quotedEnd(s, from: i + 1, quote: c, backslashes: backslashes)
            } else if c == UInt8(ascii: "\"") {
                i = quotedEnd(s, from: i + 1, quote: c, backslashes: false)
            } else if c == UInt8(ascii: "$") && !(i > 0 && SQLLexer.isIdentChar(s[i - 1])) {
                i = dollarEnd(s, from: i)
            } else if SQLLexer.isIdentStart(c) {
                // Skip the whole word so a $ inside it (x$y) is not a dollar quote.
                i += 1
                while i < n && SQLLexer.isIdentChar(s[i]) { i += 1 }
            } else {
                i += 1
            }
            if found == .primary { return .primary }
        }
        return found
    }

    private static func merge(_ a: RouteHint?, _ b: RouteHint?) -> RouteHint? {
        if a == .primary || b == .primary { return .primary }
        return a ?? b
    }

    /// The hint inside one comment's text.
    private static func hint(_ s: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> RouteHint? {
        var result: RouteHint?
        var i = range.lowerBound
        while i + marker.count <= range.upperBound {
            if matches(s, at: i, marker, limit: range.upperBound) {
                var j = i + marker.count
                while j < range.upperBound && (s[j] == 32 || s[j] == 9) { j += 1 }
                if matches(s, at: j, Array("primary".utf8), limit: range.upperBound) { return .primary }
                if matches(s, at: j, Array("replica".utf8), limit: range.upperBound) { result = .replica }
                i = j
            } else {
                i += 1
            }
        }
        return result
    }

    /// Case-insensitive match of lowercase ASCII `word` at `i`, ending at or before `limit`.
    private static func matches(_ s: UnsafeBufferPointer<UInt8>, at i: Int, _ word: [UInt8], limit: Int) -> Bool {
        guard i + word.count <= limit else { return false }
        for k in 0..<word.count {
            let c = s[i + k]
            let lowered = c >= 65 && c <= 90 ? c | 0x20 : c
            if lowered != word[k] { return false }
        }
        return true
    }

    /// Whether "switchyard:" (any case) occurs in `s`.
    private static func hasMarker(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = s.baseAddress else { return false }
        var from = 0
        while from < s.count, let p = memchr(base + from, Int32(UInt8(ascii: ":")), s.count - from) {
            let colon = base.distance(to: p.assumingMemoryBound(to: UInt8.self))
            if colon >= marker.count - 1, matches(s, at: colon - (marker.count - 1), marker, limit: s.count) { return true }
            from = colon + 1
        }
        return false
    }

    /// Index after the closing quote (a doubled quote is content), or the end of input.
    private static func quotedEnd(_ s: UnsafeBufferPointer<UInt8>, from i: Int, quote: UInt8, backslashes: Bool) -> Int {
        var j = i
        while j < s.count {
            if backslashes && s[j] == UInt8(ascii: "\\") { j += 2; continue }
            if s[j] == quote {
                if j + 1 < s.count && s[j + 1] == quote { j += 2; continue }
                return j + 1
            }
            j += 1
        }
        return s.count
    }

    /// Index after a $tag$...$tag$ body starting at `i`, or after a lone $ / $n parameter.
    private static func dollarEnd(_ s: UnsafeBufferPointer<UInt8>, from i: Int) -> Int {
        let n = s.count
        var j = i + 1
        if j < n && SQLLexer.isIdentStart(s[j]) {
            while j < n && (SQLLexer.isIdentStart(s[j]) || SQLLexer.isDigit(s[j])) { j += 1 }
        }
        guard j < n && s[j] == UInt8(ascii: "$") else { return i + 1 }
        let tagLength = j + 1 - i
        var k = j + 1
        while k + tagLength <= n {
            if s[k] == UInt8(ascii: "$") {
                var same = true
                for m in 0..<tagLength where s[k + m] != s[i + m] { same = false; break }
                if same { return k + tagLength }
            }
            k += 1
        }
        return n
    }
}
