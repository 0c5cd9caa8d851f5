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
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 2, let high = LSN.hex32(parts[0]), let low = LSN.hex32(parts[1]) else { return nil }
        value = UInt64(high) << 32 | UInt64(low)
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    /// Bytes from `b` to `a`; 0 when `b` is ahead of `a`.
    public static func - (a: LSN, b: LSN) -> UInt64 {
        a.value >= b.value ? a.value - b.value : 0
    }

    private static func hex32(_ digits: Substring.UTF8View) -> UInt32? {
        guard (1...8).contains(digits.count) else { return nil }
        var result: UInt32 = 0
        for c in digits {
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            result = result << 4 | UInt32(nibble)
        }
        return result
    }
}
