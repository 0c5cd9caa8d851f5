// The SQL parser boundary for the classifier (ProxyIO supplies libpg_query behind `SQLParser`) and a small
// JSON reader for its parse trees, without Foundation: objects keep their key order, so the classifier walks
// a statement in the order Postgres printed it and its reasons are deterministic.

/// Turns SQL text into Postgres's parse tree as JSON text (libpg_query's `pg_query_parse` format:
/// `{"version":150001,"stmts":[{"stmt":{"SelectStmt":{...}}}, ...]}`).
public protocol SQLParser: Sendable {
    func parseJSON(_ sql: String) -> Result<String, SQLParseError>
}

/// The parser refused the text (syntax error, or its own limits such as stack depth).
public struct SQLParseError: Error, Equatable, Sendable {
    public var message: String
    /// 1-based character position of the error in the text, 0 when unknown.
    public var cursorPosition: Int

    public init(message: String, cursorPosition: Int = 0) {
        self.message = message
        self.cursorPosition = cursorPosition
    }
}

/// One JSON value of a parse tree.
indirect enum ParseTree {
    case object([(key: String, value: ParseTree)])
    case array([ParseTree])
    case string(String)
    /// The number's JSON text (parse trees hold integers: locations, ival).
    case number(String)
    case bool(Bool)
    case null

    /// The value of `key` in an object; nil for a missing key or a non-object.
    subscript(key: String) -> ParseTree? {
        guard case let .object(members) = self else { return nil }
        for member in members where member.key == key { return member.value }
        return nil
    }

    var array: [ParseTree]? {
        if case let .array(items) = self { return items }
        return nil
    }

    var string: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    var int: Int? {
        if case let .number(text) = self { return Int(text) }
        return nil
    }

    var bool: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    /// A node is an object with one key, its type (`{"SelectStmt": {...}}`): the type and the fields.
    var node: (type: String, fields: ParseTree)? {
        guard case let .object(members) = self, members.count == 1 else { return nil }
        return (members[0].key, members[0].value)
    }

    /// Nesting deeper than this is refused (the classifier then routes to the primary).
    static let maxDepth = 1_000

    /// Decodes JSON text; nil for invalid JSON or nesting deeper than `maxDepth`.
    static func decode(_ json: String) -> ParseTree? {
        var json = json
        return json.withUTF8 { bytes in
            var reader = JSONReader(bytes: bytes)
            guard let value = reader.value(depth: 0) else { return nil }
            reader.skipSpace()
            return reader.index == bytes.count ? value : nil
        }
    }
}

/// Recursive descent over UTF-8 bytes.
private struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 32 || bytes[index] == 9 || bytes[index] == 10 || bytes[index] == 13 {
            index += 1
        }
    }

    mutating func value(depth: Int) -> ParseTree? {
        guard depth < ParseTree.maxDepth else { return nil }
        skipSpace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [(key: String, value: ParseTree)] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipSpace()
                guard let key = string() else { return nil }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                guard let v = value(depth: depth + 1) else { return nil }
                members.append((key, v))
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                return nil
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [ParseTree] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                guard let v = value(depth: depth + 1) else { return nil }
                items.append(v)
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                return nil
            }
        case UInt8(ascii: "\""):
            return string().map { .string($0) }
        case UInt8(ascii: "t"):
            return literal("true", .bool(true))
        case UInt8(ascii: "f"):
            return literal("false", .bool(false))
        case UInt8(ascii: "n"):
            return literal("null", .null)
        default:
            let start = index
            while index < bytes.count, isNumberByte(bytes[index]) { index += 1 }
            guard index > start else { return nil }
            return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
        }
    }

    private func isNumberByte(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
            || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }

    private mutating func literal(_ word: String, _ result: ParseTree) -> ParseTree? {
        for c in word.utf8 {
            guard index < bytes.count, bytes[index] == c else { return nil }
            index += 1
        }
        return result
    }

    /// A string at `index` (which must be a quote); unescaped.
    private mutating func string() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") { index += 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "\"") {
            defer { index += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }
        var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: out, as: UTF8.self)
            }
            guard c == UInt8(ascii: "\\") else { out.append(c); index += 1; continue }
            guard index + 1 < bytes.count else { return nil }
            let e = bytes[index + 1]
            index += 2
            switch e {
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                guard var scalar = hex4() else { return nil }
                if scalar >= 0xD800 && scalar < 0xDC00, index + 1 < bytes.count,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    guard let low = hex4() else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                }
                out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}")!)
            default: out.append(e) // \" \\ \/
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case 48...57: digit = UInt32(c - 48)
            case 65...70: digit = UInt32(c - 55)
            case 97...102: digit = UInt32(c - 87)
            default: return nil
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }
}
