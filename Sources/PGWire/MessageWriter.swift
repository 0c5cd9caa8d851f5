// Builds protocol messages into a byte array: typed messages get their length patched in at the end.
// Used for the messages the proxy writes itself (errors, auth requests, startup to servers).

/// Appends big-endian protocol fields to a growing byte array.
public struct MessageWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var lengthOffset: Int? = nil

    public init() {}

    /// Starts a typed message; `finish()` fills in its length.
    public mutating func begin(_ type: UInt8) {
        bytes.append(type)
        lengthOffset = bytes.count
        writeInt32(0)
    }

    /// Starts an untyped startup-phase packet (length first).
    public mutating func beginUntyped() {
        lengthOffset = bytes.count
        writeInt32(0)
    }

    /// Patches the length of the message begun last.
    public mutating func finish() {
        guard let start = lengthOffset else { return }
        let length = Int32(bytes.count - start)
        withUnsafeBytes(of: length.bigEndian) { raw in
            for i in 0..<4 { bytes[start + i] = raw[i] }
        }
        lengthOffset = nil
    }

    public mutating func writeInt32(_ value: Int32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeInt16(_ value: Int16) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeByte(_ value: UInt8) { bytes.append(value) }

    public mutating func writeBytes(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    /// A NUL-terminated string.
    public mutating func writeCString(_ value: String) {
        bytes.append(contentsOf: Array(value.utf8))
        bytes.append(0)
    }
}
