// Reads big-endian protocol fields out of one complete message payload; every read is bounds-checked.

/// A cursor over a message payload. Reads return nil past the end instead of trapping.
public struct MessageReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func readByte() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readInt32() -> Int32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return Int32(bigEndianBytes: bytes, at: offset)
    }

    public mutating func readInt16() -> Int16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]))
    }

    public mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func readRest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    /// A NUL-terminated string (invalid UTF-8 is repaired, never trapped on).
    public mutating func readCString() -> String? {
        guard let end = bytes[offset...].firstIndex(of: 0) else { return nil }
        defer { offset = end + 1 }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}

extension Int32 {
    /// Reads four big-endian bytes at `index`; the caller has checked the bounds.
    @inline(__always)
    public init(bigEndianBytes b: [UInt8], at index: Int) {
        let u = UInt32(b[index]) << 24 | UInt32(b[index + 1]) << 16 | UInt32(b[index + 2]) << 8 | UInt32(b[index + 3])
        self = Int32(bitPattern: u)
    }
}
