// Transaction control statements plain enough for the proxy to act on without parsing: a BEGIN it may
// answer itself and send later with the client's next statement (`defer_begin`), and a COMMIT the
// read-your-writes WAL position query may follow in the same write.

public enum PlainTransactionStatement {
    /// The CommandComplete tag Postgres sends for the Query payload `payload` (its text and terminating NUL)
    /// when it is `BEGIN`, `BEGIN WORK`, `BEGIN TRANSACTION` or `START TRANSACTION` (any case), with only
    /// spaces and at most one `;` around: "BEGIN" or "START TRANSACTION". Nil for anything else: options
    /// (an isolation level can be refused), comments, a second statement, a missing or extra NUL. On an idle
    /// server such a statement cannot fail.
    public static func beginTag(payload: UnsafeRawBufferPointer) -> String? {
        switch words(payload) {
        case (.begin?, nil)?, (.begin?, .work?)?, (.begin?, .transaction?)?: return "BEGIN"
        case (.start?, .transaction?)?: return "START TRANSACTION"
        default: return nil
        }
    }

    /// Whether the Query payload is `COMMIT` or `END` (optionally WORK or TRANSACTION), as plain as `beginTag`
    /// wants a BEGIN: inside a transaction it ends it, and the read-your-writes WAL position query may follow
    /// it in the same write.
    public static func isCommit(payload: UnsafeRawBufferPointer) -> Bool {
        switch words(payload) {
        case (.commit?, nil)?, (.commit?, .work?)?, (.commit?, .transaction?)?,
             (.end?, nil)?, (.end?, .work?)?, (.end?, .transaction?)?: return true
        default: return false
        }
    }

    /// The one or two keywords of a payload made of them, spaces and at most one `;`; nil otherwise.
    private static func words(_ payload: UnsafeRawBufferPointer) -> (Word?, Word?)? {
        let n = payload.count
        guard n >= 2, payload[n - 1] == 0 else { return nil }
        var i = 0
        var first: Word?
        var second: Word?
        var semicolon = false
        while i < n - 1 {
            let b = payload[i]
            if isBlank(b) {
                i += 1
            } else if b == UInt8(ascii: ";") {
                guard !semicolon, first != nil else { return nil }
                semicolon = true
                i += 1
            } else if let (word, end) = Self.word(payload, at: i, before: n - 1) {
                guard !semicolon, second == nil else { return nil }
                if first == nil { first = word } else { second = word }
                i = end
            } else {
                return nil
            }
        }
        return first == nil ? nil : (first, second)
    }

    /// Space, tab, newline or carriage return: what may stand between the keywords.
    private static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    private enum Word { case begin, start, work, transaction, commit, end }

    /// The keyword starting at `start` and the index after it; nil when the letters there are not one of them.
    /// The first letter picks the one keyword it can be, and the first letter that differs ends the look (a
    /// SELECT is given up at its second byte).
    private static func word(_ bytes: UnsafeRawBufferPointer, at start: Int, before end: Int) -> (Word, Int)? {
        let candidate: (StaticString, Word)
        switch bytes[start] | 0x20 {
        case UInt8(ascii: "b"): candidate = ("begin", .begin)
        case UInt8(ascii: "s"): candidate = ("start", .start)
        case UInt8(ascii: "w"): candidate = ("work", .work)
        case UInt8(ascii: "t"): candidate = ("transaction", .transaction)
        case UInt8(ascii: "c"): candidate = ("commit", .commit)
        case UInt8(ascii: "e"): candidate = ("end", .end)
        default: return nil
        }
        let (text, word) = candidate
        let count = text.utf8CodeUnitCount
        guard end - start >= count else { return nil }
        // Only an ASCII letter ORed with 0x20 gives a lowercase letter.
        let letters = text.utf8Start
        for k in 1..<count where bytes[start + k] | 0x20 != letters[k] { return nil }
        // A keyword ends at a space, a semicolon or the end (not a letter, digit, underscore or other byte).
        let i = start + count
        if i < end, !(isBlank(bytes[i]) || bytes[i] == UInt8(ascii: ";")) { return nil }
        return (word, i)
    }
}
