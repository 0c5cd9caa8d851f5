// Reads proxy.conf (INI: [section], key = value, # and ; comments) into a Config, collecting every error.
// Which keys exist and how their values parse comes from ConfigKeys.all; this file only knows the INI syntax.

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns proxy.conf text into a `Config`.
public enum ConfigParser {
    /// Parses `text`; relative paths resolve against `baseDirectory`. Throws `ConfigErrors` listing every problem,
    /// each naming `file`, the line and the key.
    public static func parse(_ text: String, file: String = "proxy.conf", baseDirectory: String) throws -> Config {
        var reader = ConfigReader(file: file, context: ConfigValueContext(baseDirectory: baseDirectory))
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        for (index, line) in lines.enumerated() {
            reader.read(line, number: index + 1)
        }
        reader.finish()
        guard reader.errors.isEmpty else { throw ConfigErrors(errors: reader.errors) }
        return reader.config
    }

    /// Reads and parses the file at `path`; relative paths in it resolve against its folder.
    /// A missing or unreadable file is a `ConfigErrors` with one error.
    public static func load(path: String) throws -> Config {
        let absolute = ConfigPath.resolve(path, against: FileManager.default.currentDirectoryPath)
        guard let data = FileManager.default.contents(atPath: absolute) else {
            let reason = FileManager.default.fileExists(atPath: absolute) ? "cannot read file" : "file not found"
            throw ConfigErrors(errors: [ConfigError(file: path, line: nil, message: reason)])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigErrors(errors: [ConfigError(file: path, line: nil, message: "file is not valid UTF-8")])
        }
        var config = try parse(text, file: path, baseDirectory: ConfigPath.directory(of: absolute))
        config.path = absolute
        return config
    }
}

/// One line of INI syntax, before any key is looked up.
enum ConfigLine: Equatable {
    case blank
    case section(String)
    case entry(key: String, value: String)

    /// Splits one line; throws a message when it is neither blank, a comment, a `[section]` nor `key = value`.
    static func parse(_ line: Substring) throws(ConfigValueMismatch) -> ConfigLine {
        let text = ConfigText.trim(line)
        guard let first = text.first, !isComment(first) else { return .blank }
        if first == "[" {
            guard let close = text.firstIndex(of: "]") else {
                throw ConfigValueMismatch(expected: "malformed section header '\(text)': missing ']'")
            }
            let rest = ConfigText.trim(text[text.index(after: close)...])
            if let c = rest.first, !isComment(c) {
                throw ConfigValueMismatch(expected: "unexpected text '\(rest)' after section header")
            }
            return .section(ConfigText.trim(text[text.index(after: text.startIndex)..<close]))
        }
        guard let equals = text.firstIndex(of: "=") else {
            throw ConfigValueMismatch(expected: "expected 'key = value', '[section]' or a comment, got '\(text)'")
        }
        let key = ConfigText.trim(text[..<equals])
        if key.isEmpty { throw ConfigValueMismatch(expected: "missing key name before '='") }
        return .entry(key: key.lowercased(), value: try value(text[text.index(after: equals)...]))
    }

    /// The value after `=`: quoted ('' is a literal quote) or bare, without a trailing comment.
    private static func value(_ raw: Substring) throws(ConfigValueMismatch) -> String {
        let text = Substring(ConfigText.trim(raw))
        guard text.first == "'" else {
            // A bare value ends at # or ; that starts the value or follows a blank.
            var end = text.endIndex
            var previous: Character = " "
            for index in text.indices {
                let c = text[index]
                if isComment(c) && (previous == " " || previous == "\t") {
                    end = index
                    break
                }
                previous = c
            }
            return ConfigText.trim(text[..<end])
        }
        var result = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let c = text[index]
            index = text.index(after: index)
            if c != "'" {
                result.append(c)
            } else if index < text.endIndex && text[index] == "'" {
                result.append("'")
                index = text.index(after: index)
            } else {
                let rest = ConfigText.trim(text[index...])
                if let c = rest.first, !isComment(c) {
                    throw ConfigValueMismatch(expected: "unexpected text '\(rest)' after quoted value")
                }
                return result
            }
        }
        throw ConfigValueMismatch(expected: "unterminated quoted value (missing closing ')")
    }

    private static func isComment(_ c: Character) -> Bool { c == "#" || c == ";" }
}

/// Line-by-line parse state: the config so far, the open section, keys seen, and every error.
struct ConfigReader {
    /// The section keys currently go to.
    enum Target: Equatable {
        /// Before the first header.
        case none
        /// Inside an unknown or duplicate section; its keys are ignored (the header was already reported).
        case ignored
        case proxy
        case primary
        case replica(index: Int)
        case user(name: String)
        case database(name: String)
    }

    let file: String
    let context: ConfigValueContext
    var config = Config()
    var errors: [ConfigError] = []
    private var target = Target.none
    /// Name as written between the brackets ("proxy", "replica.r1") of the open section.
    private var sectionName = ""
    /// Header line of each section seen, by name.
    private var sectionLines: [String: Int] = [:]
    /// For each section name, the line each key was set on.
    private var keyLines: [String: [String: Int]] = [:]

    init(file: String, context: ConfigValueContext) {
        self.file = file
        self.context = context
        config.primary.host = ""
    }

    /// Handles one line.
    mutating func read(_ line: Substring, number: Int) {
        do {
            switch try ConfigLine.parse(line) {
            case .blank:
                break
            case .section(let name):
                openSection(name, line: number)
            case .entry(let key, let value):
                set(key, value, line: number)
            }
        } catch {
            report(number, error.expected)
        }
    }

    /// End-of-file checks: [primary] exists, required backend keys are present.
    mutating func finish() {
        if sectionLines["primary"] == nil {
            errors.append(ConfigError(file: file, line: nil, message: "missing required section [primary]"))
        }
        let required = ConfigKeys.keys(in: .backend).filter(\.isRequired)
        let backendSections = ["primary"] + config.replicas.map { "replica." + $0.name }
        for section in backendSections {
            guard let header = sectionLines[section] else { continue }
            for key in required where keyLines[section]?[key.name] == nil {
                report(header, "[\(section)] \(key.name): required key is missing")
            }
        }
        checkTLS()
    }

    /// TLS keys that only make sense together: a mode that needs certificates has them, cert and key come in pairs.
    private mutating func checkTLS() {
        let proxy = config.proxy
        func line(_ section: String, _ key: String) -> Int? { keyLines[section]?[key] }
        if proxy.clientTLSSSLMode != .disable && (proxy.clientTLSCertFile == nil || proxy.clientTLSKeyFile == nil) {
            errors.append(ConfigError(file: file, line: line("proxy", "client_tls_sslmode"),
                                      message: "[proxy] client_tls_sslmode = \(proxy.clientTLSSSLMode.rawValue) needs client_tls_cert_file and client_tls_key_file"))
        }
        if (proxy.clientTLSCertFile == nil) != (proxy.clientTLSKeyFile == nil) {
            errors.append(ConfigError(file: file, line: line("proxy", "client_tls_cert_file") ?? line("proxy", "client_tls_key_file"),
                                      message: "[proxy] client_tls_cert_file and client_tls_key_file go together"))
        }
        if proxy.clientTLSSSLMode.requiresCertificate && proxy.clientTLSCAFile == nil {
            errors.append(ConfigError(file: file, line: line("proxy", "client_tls_sslmode"),
                                      message: "[proxy] client_tls_sslmode = \(proxy.clientTLSSSLMode.rawValue) needs client_tls_ca_file (to verify client certificates)"))
        }
        if proxy.authType == .cert && (proxy.clientTLSSSLMode == .disable || proxy.clientTLSCAFile == nil) {
            errors.append(ConfigError(file: file, line: line("proxy", "auth_type"),
                                      message: "[proxy] auth_type = cert needs client_tls_sslmode other than disable and client_tls_ca_file"))
        }
        let sections = [("primary", config.primary)] + config.replicas.map { ("replica." + $0.name, $0) }
        for (name, backend) in sections {
            let tls = config.serverTLS(for: backend)
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                errors.append(ConfigError(file: file, line: line(name, "server_tls_cert_file") ?? line(name, "server_tls_key_file")
                                              ?? line("proxy", "server_tls_cert_file") ?? line("proxy", "server_tls_key_file"),
                                          message: "[\(name)] server_tls_cert_file and server_tls_key_file go together"))
            }
        }
    }

    private mutating func openSection(_ name: String, line: Int) {
        sectionName = name
        if let first = sectionLines[name] {
            report(line, "duplicate section [\(name)] (first on line \(first))")
            target = .ignored
            return
        }
        if name == "proxy" {
            target = .proxy
        } else if name == "primary" {
            target = .primary
        } else if let replica = suffix(of: name, after: "replica.") {
            guard !replica.isEmpty, replica.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                report(line, "invalid replica name in [\(name)]: use letters, digits, '_' or '-'")
                target = .ignored
                return
            }
            config.replicas.append(BackendConfig(name: replica, role: .replica, host: ""))
            target = .replica(index: config.replicas.count - 1)
        } else if let user = suffix(of: name, after: "user.") {
            guard !user.isEmpty else {
                report(line, "missing user name in [\(name)]")
                target = .ignored
                return
            }
            config.users[user] = UserConfig(name: user)
            target = .user(name: user)
        } else if let db = suffix(of: name, after: "database.") {
            guard !db.isEmpty else {
                report(line, "missing database name in [\(name)]")
                target = .ignored
                return
            }
            config.databases[db] = DatabaseConfig(name: db)
            target = .database(name: db)
        } else {
            report(line, "unknown section [\(name)]; expected [proxy], [primary], [replica.NAME], [user.NAME] or [database.NAME]")
            target = .ignored
            return
        }
        sectionLines[name] = line
    }

    private mutating func set(_ key: String, _ value: String, line: Int) {
        let section: ConfigSection
        switch target {
        case .none:
            report(line, "\(key): key outside of any section (put it under [proxy], [primary], ...)")
            return
        case .ignored:
            return
        case .proxy:
            section = .proxy
        case .primary, .replica:
            section = .backend
        case .user:
            section = .user
        case .database:
            section = .database
        }
        let prefix = "[\(sectionName)] \(key)"
        guard let entry = ConfigKeys.key(section, key) else {
            report(line, "\(prefix): unknown key" + hint(forUnknown: key, in: section))
            return
        }
        if let first = keyLines[sectionName]?[key] {
            report(line, "\(prefix): duplicate key (first set on line \(first))")
            return
        }
        keyLines[sectionName, default: [:]][key] = line
        do {
            try apply(entry, value)
        } catch {
            report(line, "\(prefix): expected \(error.expected), got '\(value)'")
        }
    }

    /// Runs the key's setter on the struct the open section stands for.
    private mutating func apply(_ key: ConfigKey, _ value: String) throws(ConfigValueMismatch) {
        switch (key.binding, target) {
        case (.proxy(let apply, _), .proxy):
            try apply(&config.proxy, value, context)
        case (.backend(let apply), .primary):
            try apply(&config.primary, value, context)
        case (.backend(let apply), .replica(let index)):
            try apply(&config.replicas[index], value, context)
        case (.user(let apply), .user(let name)):
            try apply(&config.users[name, default: UserConfig(name: name)], value, context)
        case (.database(let apply), .database(let name)):
            try apply(&config.databases[name, default: DatabaseConfig(name: name)], value, context)
        case (.proxy, _), (.backend, _), (.user, _), (.database, _):
            preconditionFailure("key \(key.name) looked up in the wrong section")
        }
    }

    /// " (did you mean 'x'?)" for a near miss, or where the key belongs when it is in another section.
    private func hint(forUnknown key: String, in section: ConfigSection) -> String {
        let close = ConfigKeys.keys(in: section)
            .map { (name: $0.name, distance: editDistance(key, $0.name)) }
            .filter { $0.distance <= 2 }
            .min { $0.distance < $1.distance }
        if let close { return " (did you mean '\(close.name)'?)" }
        if let other = ConfigKeys.all.first(where: { $0.name == key && $0.section != section }) {
            return " (it belongs in \(other.section.heading))"
        }
        return ""
    }

    private mutating func report(_ line: Int, _ message: String) {
        errors.append(ConfigError(file: file, line: line, message: message))
    }

    private func suffix(of name: String, after prefix: String) -> String? {
        name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : nil
    }
}

/// Levenshtein distance, for "did you mean" hints.
fileprivate func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}
