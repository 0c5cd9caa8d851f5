// Value types for config keys: how a raw string becomes an integer, duration, size, enum, list or path,
// how the value is shown again (docs, SHOW CONFIG), and what a bad value is told it should have been.

/// What a key's parser may need besides the raw text.
struct ConfigValueContext: Sendable {
    /// Folder that relative paths resolve against.
    var baseDirectory: String
}

/// A raw value that does not fit its key; `expected` completes "expected ..., got 'raw'".
struct ConfigValueMismatch: Error {
    var expected: String
}

/// One value type: parse, render, and the `kind` shown in docs.
struct ConfigValue<T>: Sendable {
    /// "integer", "duration", "size", "string", "path", "enum: a|b", "list".
    let kind: String
    let parse: @Sendable (String, ConfigValueContext) throws(ConfigValueMismatch) -> T
    let render: @Sendable (T) -> String
}

extension ConfigValue where T == Int {
    /// A whole number in `min...max` (no upper bound when `max` is nil).
    static func integer(min: Int, max: Int? = nil) -> ConfigValue<Int> {
        let expected = max.map { "an integer from \(min) to \($0)" } ?? "an integer >= \(min)"
        return ConfigValue(kind: "integer", parse: { raw, _ throws(ConfigValueMismatch) in
            guard let n = Int(raw), n >= min, n <= (max ?? Int.max) else {
                throw ConfigValueMismatch(expected: expected)
            }
            return n
        }, render: { String($0) })
    }

    /// Bytes, with unit `B`, `kB`, `MB` or `GB` (1024-based, as in PostgreSQL); a bare number is bytes.
    static func size(min: Int) -> ConfigValue<Int> {
        let expected = "a size of at least \(ConfigUnits.renderSize(min)) (units B, kB, MB, GB)"
        return ConfigValue(kind: "size", parse: { raw, _ throws(ConfigValueMismatch) in
            guard let n = ConfigUnits.parseSize(raw), n >= min else {
                throw ConfigValueMismatch(expected: expected)
            }
            return n
        }, render: { ConfigUnits.renderSize($0) })
    }
}

extension ConfigValue where T == Double {
    /// Seconds, with unit `us`, `ms`, `s`, `min`, `h` or `d`; a bare number is seconds.
    static var duration: ConfigValue<Double> {
        ConfigValue(kind: "duration", parse: { raw, _ throws(ConfigValueMismatch) in
            guard let seconds = ConfigUnits.parseDuration(raw) else {
                throw ConfigValueMismatch(expected: "a duration like 500ms, 30s or 5min (units us, ms, s, min, h, d)")
            }
            return seconds
        }, render: { ConfigUnits.renderDuration($0) })
    }
}

extension ConfigValue where T == Double {
    /// A fraction from 0 to 1 (`0.25`).
    static var fraction: ConfigValue<Double> {
        ConfigValue(kind: "number", parse: { raw, _ throws(ConfigValueMismatch) in
            guard let x = Double(raw), x >= 0, x <= 1 else { throw ConfigValueMismatch(expected: "a number from 0 to 1") }
            return x
        }, render: { String($0) })
    }
}

extension ConfigValue where T == String {
    /// Any text; with `allowEmpty: false` an empty value is refused.
    static func string(allowEmpty: Bool) -> ConfigValue<String> {
        ConfigValue(kind: "string", parse: { raw, _ throws(ConfigValueMismatch) in
            if !allowEmpty && raw.isEmpty { throw ConfigValueMismatch(expected: "a non-empty string") }
            return raw
        }, render: { $0 })
    }
}

extension ConfigValue where T == String? {
    /// A file path, made absolute against the config file's folder; empty means unset.
    static var path: ConfigValue<String?> {
        ConfigValue(kind: "path", parse: { raw, context throws(ConfigValueMismatch) in
            raw.isEmpty ? nil : ConfigPath.resolve(raw, against: context.baseDirectory)
        }, render: { $0 ?? "" })
    }
}

extension ConfigValue where T == [String] {
    /// Comma-separated names; blanks around commas and empty entries are dropped.
    static var list: ConfigValue<[String]> {
        ConfigValue(kind: "list", parse: { raw, _ throws(ConfigValueMismatch) in
            raw.split(separator: ",").map { ConfigText.trim(Substring($0)) }.filter { !$0.isEmpty }
        }, render: { $0.joined(separator: ",") })
    }
}

extension ConfigValue where T: RawRepresentable & CaseIterable & Sendable, T.RawValue == String {
    /// One of the enum's raw values (case-insensitive).
    static func choice(_ type: T.Type) -> ConfigValue<T> {
        let names = T.allCases.map(\.rawValue)
        return ConfigValue(kind: "enum: " + names.joined(separator: "|"), parse: { raw, _ throws(ConfigValueMismatch) in
            guard let value = T(rawValue: raw.lowercased()) else {
                throw ConfigValueMismatch(expected: "one of " + names.joined(separator: ", "))
            }
            return value
        }, render: { $0.rawValue })
    }
}

extension ConfigValue where T == TLSProtocols {
    /// TLS versions separated by commas, colons or blanks: `tlsv1.0`, `tlsv1.1`, `tlsv1.2`, `tlsv1.3`, or
    /// `secure` (1.2 and 1.3), `all`/`legacy` (1.0 to 1.3). They must form a contiguous range.
    static var tlsProtocols: ConfigValue<TLSProtocols> {
        let expected = "TLS versions (tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure, all) forming a contiguous range"
        return ConfigValue(kind: "list", parse: { raw, _ throws(ConfigValueMismatch) in
            var chosen = Set<TLSVersion>()
            let words = raw.lowercased().split(whereSeparator: { $0 == "," || $0 == ":" || $0 == " " || $0 == "\t" })
            for word in words {
                switch word {
                case "secure": chosen.formUnion([.tls1_2, .tls1_3])
                case "all", "legacy": chosen.formUnion(TLSVersion.allCases)
                case "tlsv1": chosen.insert(.tls1_0)
                default:
                    guard let v = TLSVersion(rawValue: String(word)) else { throw ConfigValueMismatch(expected: expected) }
                    chosen.insert(v)
                }
            }
            guard let lowest = chosen.min(), let highest = chosen.max() else { throw ConfigValueMismatch(expected: expected) }
            let range = TLSProtocols(lowest: lowest, highest: highest)
            guard range.versions.count == chosen.count else { throw ConfigValueMismatch(expected: expected) }
            return range
        }, render: { $0.versions.map(\.rawValue).joined(separator: ",") })
    }
}

/// Duration and size units: parsing and the shortest exact rendering.
public enum ConfigUnits {
    /// Duration units, largest first, in microseconds.
    static let durationUnits: [(name: String, micros: Int)] = [
        ("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000), ("ms", 1_000), ("us", 1),
    ]

    /// Size units, largest first, in bytes.
    static let sizeUnits: [(name: String, bytes: Int)] = [
        ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10), ("B", 1),
    ]

    /// Seconds from e.g. "500ms", "30s", "5min", "1.5h" or "7"; nil when malformed or negative.
    public static func parseDuration(_ raw: String) -> Double? {
        let (number, unit) = splitNumber(raw)
        guard !number.isEmpty, let value = Double(number), value.isFinite, value >= 0 else { return nil }
        if unit.isEmpty { return value }
        guard let match = durationUnits.first(where: { $0.name == unit.lowercased() }) else { return nil }
        return value * Double(match.micros) / 1_000_000
    }

    /// "15s", "500ms", "2min"; the largest unit that shows the value as a whole number (rounded to microseconds).
    public static func renderDuration(_ seconds: Double) -> String {
        let micros = Int((seconds * 1_000_000).rounded())
        if micros == 0 { return "0s" }
        for unit in durationUnits where micros % unit.micros == 0 {
            return "\(micros / unit.micros)\(unit.name)"
        }
        return "\(micros)us"
    }

    /// Bytes from e.g. "512kB", "1GB" or "4096"; nil when malformed or too large.
    static func parseSize(_ raw: String) -> Int? {
        let (number, unit) = splitNumber(raw)
        guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), let value = Int(number) else { return nil }
        if unit.isEmpty { return value }
        guard let match = sizeUnits.first(where: { $0.name.lowercased() == unit.lowercased() }) else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: match.bytes)
        return overflow ? nil : bytes
    }

    /// "1GB", "16kB", "100B"; the largest unit that shows the value as a whole number.
    static func renderSize(_ bytes: Int) -> String {
        for unit in sizeUnits where bytes != 0 && bytes % unit.bytes == 0 {
            return "\(bytes / unit.bytes)\(unit.name)"
        }
        return "\(bytes)B"
    }

    /// Splits "500 ms" into ("500", "ms"): the leading digits and dots, then the rest without blanks.
    private static func splitNumber(_ raw: String) -> (number: Substring, unit: String) {
        let end = raw.firstIndex(where: { !($0.isASCIIDigit || $0 == ".") }) ?? raw.endIndex
        return (raw[..<end], ConfigText.trim(raw[end...]))
    }
}

/// Joining and normalising paths without Foundation.
enum ConfigPath {
    /// `path` if absolute, else `base/path`; "." and ".." segments are folded away.
    static func resolve(_ path: String, against base: String) -> String {
        let joined = path.hasPrefix("/") || base.isEmpty ? path : base + "/" + path
        let absolute = joined.hasPrefix("/")
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".":
                continue
            case "..":
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !absolute {
                    parts.append(part)
                }
            default:
                parts.append(part)
            }
        }
        let body = parts.joined(separator: "/")
        if absolute { return "/" + body }
        return body.isEmpty ? "." : body
    }

    /// The folder part of `path` ("." when there is none).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}

/// Small text helpers shared by the parser and the value types.
enum ConfigText {
    /// `text` without leading and trailing spaces and tabs.
    static func trim(_ text: Substring) -> String {
        var s = text
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}

fileprivate extension Character {
    /// 0-9 only (not other Unicode digits).
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension ConfigValue {
    /// One of an enum's raw values, where unset (nil) means "decided elsewhere" (e.g. a backend's role by its section).
    static func optionalChoice<E>(_ type: E.Type, unset: String = "(section's role)") -> ConfigValue<E?>
    where E: RawRepresentable & CaseIterable & Sendable, E.RawValue == String, T == E? {
        let names = E.allCases.map(\.rawValue)
        return ConfigValue<E?>(kind: "enum: " + names.joined(separator: "|"), parse: { raw, _ throws(ConfigValueMismatch) in
            guard let value = E(rawValue: raw.lowercased()) else {
                throw ConfigValueMismatch(expected: "one of " + names.joined(separator: ", "))
            }
            return value
        }, render: { $0?.rawValue ?? unset })
    }
}
