// Turns a client's startup parameters (including libpq's `options`, e.g. "-c search_path=x") into the
// session parameters a server must be SET to before the client uses it.

public enum StartupOptions {
    /// Name/value pairs to apply with SET, in order; later values win. Names are lowercased;
    /// names that are not plain identifiers are dropped (they could not have been valid GUCs anyway).
    public static func effectiveParameters(_ parameters: [(String, String)]) -> [(String, String)] {
        var result: [(String, String)] = []
        func add(_ name: String, _ value: String) {
            let n = name.lowercased()
            guard isIdentifier(n) else { return }
            result.removeAll { $0.0 == n }
            result.append((n, value))
        }
        for (name, value) in parameters {
            if name == "options" {
                for (n, v) in parseOptions(value) { add(n, v) }
            } else {
                add(name, value)
            }
        }
        return result
    }

    /// Parses "-c a=b --c=d -c e=f\ g" as Postgres does (backslash escapes a space).
    public static func parseOptions(_ text: String) -> [(String, String)] {
        var words: [String] = []
        var current = ""
        var escaped = false
        for ch in text {
            if escaped { current.append(ch); escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == " " || ch == "\t" {
                if !current.isEmpty { words.append(current); current = "" }
                continue
            }
            current.append(ch)
        }
        if !current.isEmpty { words.append(current) }
        var pairs: [(String, String)] = []
        var i = 0
        while i < words.count {
            var setting: String?
            if words[i] == "-c", i + 1 < words.count {
                setting = words[i + 1]
                i += 1
            } else if words[i].hasPrefix("--") {
                setting = String(words[i].dropFirst(2))
            } else if words[i].hasPrefix("-c") {
                setting = String(words[i].dropFirst(2))
            }
            i += 1
            guard let s = setting, let eq = s.firstIndex(of: "=") else { continue }
            pairs.append((String(String(s[..<eq]).map { $0 == "-" ? "_" : $0 }), String(s[s.index(after: eq)...])))
        }
        return pairs
    }

    static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 46 }
    }

    /// Startup parameters a client may set and still be greeted without a server (transaction mode): values
    /// that cannot fail later when the first server gets them.
    static let greetableParameters: Set<String> = ["application_name", "fallback_application_name", "extra_float_digits"]

    /// The ParameterStatus set for greeting a client without a server: the values a server reported for this
    /// database and user, with the client's own startup values over them. nil when the client set anything
    /// whose value only a server can check (then it is greeted from a server, which rejects bad values at login).
    public static func greeting(cached: [String: String], startup: [(String, String)]) -> [String: String]? {
        var reported = cached
        for (name, value) in effectiveParameters(startup) {
            let lower = name.lowercased()
            if lower == "client_encoding", ["utf8", "utf-8", "unicode"].contains(value.lowercased()) { continue }
            guard greetableParameters.contains(lower) else { return nil }
            if let key = reported.keys.first(where: { $0.lowercased() == lower }) { reported[key] = value }
        }
        return reported
    }

    /// What a server reported to a client, as a greeting for later clients: nil when that client set values
    /// that would leak into others' greetings; its application_name (the only such value allowed) goes back
    /// to the server default, empty.
    public static func cacheableGreeting(_ reported: [String: String], startup: [(String, String)]) -> [String: String]? {
        guard greeting(cached: [:], startup: startup) != nil else { return nil }
        var cached = reported
        for key in cached.keys where key.lowercased() == "application_name" { cached[key] = "" }
        return cached
    }
}
