// Frame decoding without I/O: the untyped startup packet, typed message headers, and a decoder of
// whole frames that never consumes a partial one. Every rejection is a ProtocolViolation with a fixed text.

/// Why a byte stream was rejected; `message` is the fixed text sent to the client with SQLSTATE 08P01.
public enum ProtocolViolation: Error, Equatable, Sendable {
    case startupTooLarge(Int)
    case startupTooSmall(Int)
    case unsupportedProtocol(Int32)
    case badStartupParameters
    case missingUser
    case badLength(type: UInt8, length: Int32)
    case messageTooLarge(type: UInt8, length: Int)
    case malformedMessage(type: UInt8)
    case unexpectedMessage(type: UInt8)

    public var message: String {
        switch self {
        case .startupTooLarge(let n): return "invalid startup packet length \(n): larger than \(StartupDecoder.maxStartupLength) bytes"
        case .startupTooSmall(let n): return "invalid startup packet length \(n)"
        case .unsupportedProtocol(let v):
            return "unsupported frontend protocol \(UInt32(bitPattern: v) >> 16).\(UInt32(bitPattern: v) & 0xffff): server supports 3.0"
        case .badStartupParameters: return "invalid startup packet layout: expected terminator as last byte"
        case .missingUser: return "no PostgreSQL user name specified in startup packet"
        case .badLength(let t, let l): return "invalid message length \(l) for message type \(Self.describe(t))"
        case .messageTooLarge(let t, let l): return "message of type \(Self.describe(t)) is \(l) bytes, over max_packet_size"
        case .malformedMessage(let t): return "malformed message of type \(Self.describe(t))"
        case .unexpectedMessage(let t): return "unexpected message type \(Self.describe(t))"
        }
    }

    public static func describe(_ t: UInt8) -> String {
        (t >= 0x20 && t < 0x7f) ? "'\(Character(Unicode.Scalar(t)))'" : "0x\(String(t, radix: 16))"
    }
}

/// The first packet of a connection.
public enum StartupPacket: Equatable, Sendable {
    case startup(parameters: [(String, String)])
    case sslRequest
    case gssEncRequest
    case cancel(processID: Int32, secretKey: Int32)

    public static func == (a: StartupPacket, b: StartupPacket) -> Bool {
        switch (a, b) {
        case (.startup(let x), .startup(let y)): return x.map { $0.0 + "=" + $0.1 } == y.map { $0.0 + "=" + $0.1 }
        case (.sslRequest, .sslRequest), (.gssEncRequest, .gssEncRequest): return true
        case (.cancel(let p1, let s1), .cancel(let p2, let s2)): return p1 == p2 && s1 == s2
        case (.startup, _), (.sslRequest, _), (.gssEncRequest, _), (.cancel, _): return false
        }
    }
}

/// What the startup decoder says about the bytes buffered so far.
public enum StartupDecodeResult: Equatable, Sendable {
    case needMore
    case packet(StartupPacket, consumed: Int)
    case violation(ProtocolViolation)
}

/// Decodes the untyped startup-phase packet: length, code, body.
public enum StartupDecoder {
    /// Postgres itself refuses startup packets over 10,000 bytes.
    public static let maxStartupLength = 10_000

    /// Looks at the buffered bytes; consumes nothing unless a whole packet is there.
    public static func decode(_ bytes: [UInt8]) -> StartupDecodeResult {
        guard bytes.count >= 4 else { return .needMore }
        let length = Int(Int32(bigEndianBytes: bytes, at: 0))
        if length < 8 { return .violation(.startupTooSmall(length)) }
        if length > maxStartupLength { return .violation(.startupTooLarge(length)) }
        guard bytes.count >= length else {
            // The code is known after 8 bytes: reject a bad version early.
            if bytes.count >= 8, let v = rejectCode(Int32(bigEndianBytes: bytes, at: 4)) { return .violation(v) }
            return .needMore
        }
        let code = Int32(bigEndianBytes: bytes, at: 4)
        switch code {
        case StartupCode.sslRequest:
            return length == 8 ? .packet(.sslRequest, consumed: 8) : .violation(.startupTooSmall(length))
        case StartupCode.gssEncRequest:
            return length == 8 ? .packet(.gssEncRequest, consumed: 8) : .violation(.startupTooSmall(length))
        case StartupCode.cancelRequest:
            guard length == 16 else { return .violation(.startupTooSmall(length)) }
            return .packet(.cancel(processID: Int32(bigEndianBytes: bytes, at: 8),
                                   secretKey: Int32(bigEndianBytes: bytes, at: 12)), consumed: 16)
        case StartupCode.protocolV3:
            var reader = MessageReader(Array(bytes[8..<length]))
            var params: [(String, String)] = []
            while true {
                guard let key = reader.readCString() else { return .violation(.badStartupParameters) }
                if key.isEmpty { break }
                guard let value = reader.readCString() else { return .violation(.badStartupParameters) }
                params.append((key, value))
            }
            guard reader.remaining == 0 else { return .violation(.badStartupParameters) }
            guard params.contains(where: { $0.0 == "user" && !$0.1.isEmpty }) else { return .violation(.missingUser) }
            return .packet(.startup(parameters: params), consumed: length)
        default:
            return .violation(rejectCode(code) ?? .unsupportedProtocol(code))
        }
    }

    private static func rejectCode(_ code: Int32) -> ProtocolViolation? {
        switch code {
        case StartupCode.sslRequest, StartupCode.gssEncRequest, StartupCode.cancelRequest, StartupCode.protocolV3: return nil
        default: return .unsupportedProtocol(code)
        }
    }
}

/// The 5-byte header of a typed message.
public struct FrameHeader: Equatable, Sendable {
    public let type: UInt8
    /// The length field: counts itself and the payload, not the type byte.
    public let length: Int

    /// The whole message on the wire: type byte plus `length`.
    public var totalLength: Int { length + 1 }

    /// Validates a header; `maxLength` is max_packet_size.
    public static func parse(type: UInt8, lengthField: Int32, maxLength: Int) -> Result<FrameHeader, ProtocolViolation> {
        if lengthField < 4 { return .failure(.badLength(type: type, length: lengthField)) }
        if Int(lengthField) > maxLength { return .failure(.messageTooLarge(type: type, length: Int(lengthField))) }
        return .success(FrameHeader(type: type, length: Int(lengthField)))
    }

    public static func parse(_ five: [UInt8], maxLength: Int) -> Result<FrameHeader, ProtocolViolation> {
        parse(type: five[0], lengthField: Int32(bigEndianBytes: five, at: 1), maxLength: maxLength)
    }
}

/// One whole typed message.
public struct Frame: Equatable, Sendable {
    public let type: UInt8
    public let payload: [UInt8]

    public init(type: UInt8, payload: [UInt8]) {
        self.type = type
        self.payload = payload
    }

    /// The bytes on the wire.
    public var bytes: [UInt8] {
        var w = MessageWriter()
        w.begin(type)
        w.writeBytes(payload)
        w.finish()
        return w.bytes
    }
}

/// Splits a byte stream into whole frames; a partial frame stays buffered until the rest arrives.
/// Used where the proxy must read messages whole (login phases); the data path forwards instead.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    public let maxLength: Int

    public init(maxLength: Int = 1 << 30) { self.maxLength = maxLength }

    public var bufferedCount: Int { buffer.count - start }

    public mutating func append(_ bytes: [UInt8]) {
        if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, nil if more bytes are needed.
    public mutating func next() throws(ProtocolViolation) -> Frame? {
        guard buffer.count - start >= 5 else { return nil }
        let header: FrameHeader
        switch FrameHeader.parse(type: buffer[start], lengthField: Int32(bigEndianBytes: buffer, at: start + 1), maxLength: maxLength) {
        case .success(let h): header = h
        case .failure(let v): throw v
        }
        guard buffer.count - start >= header.totalLength else { return nil }
        let frame = Frame(type: header.type, payload: Array(buffer[(start + 5)..<(start + header.totalLength)]))
        start += header.totalLength
        if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return frame
    }

    /// Bytes buffered beyond the frames returned so far (handed on when a login phase ends).
    public mutating func takeRemainder() -> [UInt8] {
        defer { buffer.removeAll(); start = 0 }
        return Array(buffer[start...])
    }
}
