// The query log: one line per slow (or sampled) statement in logfmt or JSON, and the sampler that decides which
// statements get a line under log_queries / slow_query_threshold / log_sample_rate.

/// One statement's query-log line. `query` is the normalised text (literals already replaced by the caller).
public struct QueryLogLine: Equatable, Sendable {
    public var durationMicros: UInt64
    public var fingerprint: UInt64
    public var query: String
    public var backend: String
    public var role: BackendRole
    public var user: String
    public var database: String
    /// The client's address ("10.0.0.7:51234", or the socket path).
    public var client: String
    public var applicationName: String
    public var rows: UInt64
    public var outcome: StatementSample.Outcome

    public init(durationMicros: UInt64, fingerprint: UInt64, query: String, backend: String, role: BackendRole,
                user: String, database: String, client: String, applicationName: String, rows: UInt64,
                outcome: StatementSample.Outcome) {
        self.durationMicros = durationMicros
        self.fingerprint = fingerprint
        self.query = query
        self.backend = backend
        self.role = role
        self.user = user
        self.database = database
        self.client = client
        self.applicationName = applicationName
        self.rows = rows
        self.outcome = outcome
    }

    /// A field's value: numbers are written bare in both formats, text is quoted as the format needs.
    private enum Value {
        case number(String)
        case text(String)
    }

    /// The fields in output order; sqlstate only for errors.
    private var fields: [(key: String, value: Value)] {
        var fields: [(key: String, value: Value)] = [
            ("duration_ms", .number(StatsFormat.millis(durationMicros))),
            ("fingerprint", .text(StatsFormat.hex(fingerprint))), ("query", .text(query)), ("backend", .text(backend)),
            ("role", .text(role.rawValue)), ("user", .text(user)), ("database", .text(database)),
            ("client", .text(client)), ("application_name", .text(applicationName)),
            ("rows", .number(String(rows))), ("outcome", .text(outcome.name)),
        ]
        switch outcome {
        case .error(let sqlstate): fields.append(("sqlstate", .text(sqlstate)))
        case .ok, .timeout: break
        }
        return fields
    }

    /// The line, without a newline.
    public func formatted(_ format: LogFormat) -> String {
        var out = ""
        switch format {
        case .logfmt:
            for (i, (key, value)) in fields.enumerated() {
                out += (i == 0 ? "" : " ") + key + "="
                switch value {
                case .number(let n): out += n
                case .text(let t): out += Self.needsQuotes(t) ? Self.quoted(t) : t
                }
            }
        case .json:
            for (i, (key, value)) in fields.enumerated() {
                out += (i == 0 ? "{" : ",") + Self.quoted(key) + ":"
                switch value {
                case .number(let n): out += n
                case .text(let t): out += Self.quoted(t)
                }
            }
            out += "}"
        }
        return out
    }

    /// logfmt quotes empty values and values with spaces, quotes, `=` or characters that do not print.
    private static func needsQuotes(_ text: String) -> Bool {
        text.isEmpty || text.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || !isPrintable($0) }
    }

    /// `text` in double quotes with `"` and `\` escaped, and characters that do not print as `\n`, `\r`, `\t` or
    /// `\uXXXX` (UTF-16 units, a surrogate pair above U+FFFF): a JSON string, and a logfmt quoted value.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                guard isPrintable(scalar) else {
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                    continue
                }
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Not a control, format or line/paragraph separator character.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate: return false
        default: return true
        }
    }
}

/// Decides which statements write a query-log line: `slow` logs statements at least `slowThreshold` long, `all`
/// logs those and a `sampleRate` share of the rest, `off` logs none.
public struct QuerySampler: Equatable, Sendable {
    public var mode: LogQueries
    /// 0 ... 1 (log_sample_rate).
    public var sampleRate: Double
    /// Microseconds from slow_query_threshold; 0: no statement counts as slow.
    public var slowThresholdMicros: UInt64

    /// `slowThreshold` in seconds (slow_query_threshold).
    public init(mode: LogQueries, sampleRate: Double, slowThreshold: Double) {
        self.mode = mode
        self.sampleRate = Swift.min(1, Swift.max(0, sampleRate))
        self.slowThresholdMicros = UInt64(Swift.max(0, slowThreshold * 1e6).rounded())
    }

    /// Whether a statement that took `micros` gets a line. Draws one `random.next()` (its top 53 bits as a
    /// fraction in 0..<1) only in mode `all` with a rate strictly between 0 and 1, for a statement that is not slow.
    public func shouldLog(micros: UInt64, random: inout some RandomNumberGenerator) -> Bool {
        let slow = slowThresholdMicros > 0 && micros >= slowThresholdMicros
        switch mode {
        case .off: return false
        case .slow: return slow
        case .all:
            if slow || sampleRate >= 1 { return true }
            return sampleRate > 0 && Double(random.next() >> 11) * 0x1p-53 < sampleRate
        }
    }
}
