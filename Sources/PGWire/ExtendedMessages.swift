// The extended-protocol messages the proxy rewrites for prepared statements: Parse, the head of Bind,
// Describe and Close, plus the one-line responses it synthesizes. Payload = the bytes after the 5-byte header.

/// A client's Parse ('P'): statement name, query text, parameter type OIDs (0 = unspecified).
public struct ParseMessage: Equatable, Sendable {
    public var name: String
    public var query: String
    public var parameterTypes: [Int32]

    public init(name: String, query: String, parameterTypes: [Int32] = []) {
        self.name = name
        self.query = query
        self.parameterTypes = parameterTypes
    }

    public init(payload: [UInt8]) throws(ProtocolViolation) {
        let type = FrontendMessageID.parse.rawValue
        var r = MessageReader(payload)
        guard let name = r.readCString(), let query = r.readCString(), let n = r.readInt16(), n >= 0,
              r.remaining == Int(n) * 4 else { throw .malformedMessage(type: type) }
        var types: [Int32] = []
        types.reserveCapacity(Int(n))
        for _ in 0..<Int(n) {
            guard let oid = r.readInt32() else { throw .malformedMessage(type: type) }
            types.append(oid)
        }
        self.init(name: name, query: query, parameterTypes: types)
    }

    /// The whole message, 'P' header included.
    public func encoded() -> [UInt8] {
        var w = MessageWriter()
        w.begin(FrontendMessageID.parse.rawValue)
        w.writeCString(name)
        w.writeCString(query)
        w.writeInt16(Int16(truncatingIfNeeded: parameterTypes.count))
        for oid in parameterTypes { w.writeInt32(oid) }
        w.finish()
        return w.bytes
    }
}

/// The two leading cstrings of a Bind ('B') payload: portal and statement. The rest of the Bind
/// (formats, parameter values, result formats) is streamed through unchanged.
public struct BindHead: Equatable, Sendable {
    public var portal: String
    public var statement: String
    /// Bytes of the payload taken by the two cstrings, NULs included.
    public var headLength: Int

    /// Postgres names are at most 63 bytes; anything past this without a NUL is not a name.
    public static let maxNameLength = 1024

    public init(portal: String, statement: String, headLength: Int) {
        self.portal = portal
        self.statement = statement
        self.headLength = headLength
    }

    /// Parses the two leading cstrings of a Bind payload prefix (the caller peeks at most a few hundred bytes).
    /// Returns nil if the prefix is incomplete. Throws on a name longer than `maxNameLength` without NUL, or
    /// when the prefix already holds the whole payload (`payloadLength`, if given) and the names are incomplete.
    public static func parse(prefix: [UInt8], payloadLength: Int? = nil,
                             maxNameLength: Int = BindHead.maxNameLength) throws(ProtocolViolation) -> BindHead? {
        let type = FrontendMessageID.bind.rawValue
        let end = payloadLength.map { min($0, prefix.count) } ?? prefix.count
        let whole = payloadLength.map { prefix.count >= $0 } ?? false
        var start = 0
        var names: (String, String) = ("", "")
        for i in 0..<2 {
            let limit = min(end, start + maxNameLength + 1)
            var nul = start
            while nul < limit && prefix[nul] != 0 { nul += 1 }
            if nul == limit {
                if limit - start > maxNameLength || whole { throw .malformedMessage(type: type) }
                return nil
            }
            let s = String(decoding: prefix[start..<nul], as: UTF8.self)
            if i == 0 { names.0 = s } else { names.1 = s }
            start = nul + 1
        }
        return BindHead(portal: names.0, statement: names.1, headLength: start)
    }

    /// The new 5-byte header + portal + new statement name, for a Bind whose original length field was
    /// `originalLength` and whose statement name is replaced; the caller then streams the original payload
    /// from `headLength` on. New length = originalLength - old head bytes + new head bytes.
    public func rewrittenHead(statement newName: String, originalLength: Int) -> [UInt8] {
        let portalBytes = portal.utf8.count
        let nameBytes = newName.utf8.count
        let newHead = portalBytes + 1 + nameBytes + 1
        let length = Int32(truncatingIfNeeded: originalLength - headLength + newHead)
        var out: [UInt8] = []
        out.reserveCapacity(5 + newHead)
        out.append(FrontendMessageID.bind.rawValue)
        out.append(UInt8(truncatingIfNeeded: length >> 24))
        out.append(UInt8(truncatingIfNeeded: length >> 16))
        out.append(UInt8(truncatingIfNeeded: length >> 8))
        out.append(UInt8(truncatingIfNeeded: length))
        out.append(contentsOf: portal.utf8)
        out.append(0)
        out.append(contentsOf: newName.utf8)
        out.append(0)
        return out
    }
}

/// Kind byte of Describe and Close: a prepared statement or a portal.
public enum TargetKind {
    public static let statement = UInt8(ascii: "S")
    public static let portal = UInt8(ascii: "P")
}

/// A client's Describe ('D'): kind 'S' (statement) or 'P' (portal) and the name.
public struct DescribeMessage: Equatable, Sendable {
    public var kind: UInt8
    public var name: String

    public init(kind: UInt8, name: String) {
        self.kind = kind
        self.name = name
    }

    public init(payload: [UInt8]) throws(ProtocolViolation) {
        let (kind, name) = try decodeTarget(payload, type: FrontendMessageID.describe.rawValue)
        self.init(kind: kind, name: name)
    }

    public func encoded() -> [UInt8] { encodeTarget(FrontendMessageID.describe.rawValue, kind, name) }
}

/// A client's Close ('C'): kind 'S' (statement) or 'P' (portal) and the name.
public struct CloseMessage: Equatable, Sendable {
    public var kind: UInt8
    public var name: String

    public init(kind: UInt8, name: String) {
        self.kind = kind
        self.name = name
    }

    public init(payload: [UInt8]) throws(ProtocolViolation) {
        let (kind, name) = try decodeTarget(payload, type: FrontendMessageID.close.rawValue)
        self.init(kind: kind, name: name)
    }

    public func encoded() -> [UInt8] { encodeTarget(FrontendMessageID.close.rawValue, kind, name) }
}

private func decodeTarget(_ payload: [UInt8], type: UInt8) throws(ProtocolViolation) -> (UInt8, String) {
    var r = MessageReader(payload)
    guard let kind = r.readByte(), kind == TargetKind.statement || kind == TargetKind.portal,
          let name = r.readCString(), r.remaining == 0 else { throw .malformedMessage(type: type) }
    return (kind, name)
}

private func encodeTarget(_ type: UInt8, _ kind: UInt8, _ name: String) -> [UInt8] {
    var w = MessageWriter()
    w.begin(type)
    w.writeByte(kind)
    w.writeCString(name)
    w.finish()
    return w.bytes
}

extension ProxyMessages {
    /// ParseComplete ('1'), for a Parse the proxy answers itself.
    public static func parseComplete() -> [UInt8] { [BackendMessageID.parseComplete.rawValue, 0, 0, 0, 4] }
    /// BindComplete ('2').
    public static func bindComplete() -> [UInt8] { [BackendMessageID.bindComplete.rawValue, 0, 0, 0, 4] }
    /// CloseComplete ('3'), for a Close the proxy answers itself.
    public static func closeComplete() -> [UInt8] { [BackendMessageID.closeComplete.rawValue, 0, 0, 0, 4] }
    /// Sync ('S', frontend).
    public static func sync() -> [UInt8] { [FrontendMessageID.sync.rawValue, 0, 0, 0, 4] }
    /// Flush ('H', frontend).
    public static func flush() -> [UInt8] { [FrontendMessageID.flush.rawValue, 0, 0, 0, 4] }
}
