// A Postgres WAL position (pg_lsn): parsed from and printed as "16/B374D848", compared, and subtracted to
// get replication lag in bytes.

/// A write-ahead-log position. Postgres prints it as two uppercase hex halves, `%X/%X`, without padding.
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(_ value: UInt64) {
        self.value = value
    }

    /// Parses the text form of `pg_lsn`: 1 to 8 hex digits, "/", 1 to 8 hex digits. Nil for anything else
    /// (signs, spaces, empty halves, more than 32 bits per half).
    public init?(_ text: String) {
        // One pass over the bytes (read after every write transaction with read-your-writes): no split.
        var halves: (UInt64, UInt64) = (0, 0)
        var digits = 0
        var slash = false
        for c in text.utf8 {
            if c == UInt8(ascii: "/") {
                guard !slash, digits > 0 else { return nil }
                slash = true
                digits = 0
                continue
            }
            guard let nibble = LSN.nibble(c), digits < 8 else { return nil }
            digits += 1
            if slash { halves.1 = halves.1 << 4 | nibble } else { halves.0 = halves.0 << 4 | nibble }
        }
        guard slash, digits > 0 else { return nil }
        value = halves.0 << 32 | halves.1
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    /// Bytes from `b` to `a`; 0 when `b` is ahead of `a`.
    public static func - (a: LSN, b: LSN) -> UInt64 {
        a.value >= b.value ? a.value - b.value : 0
    }

    private static func nibble(_ c: UInt8) -> UInt64? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
