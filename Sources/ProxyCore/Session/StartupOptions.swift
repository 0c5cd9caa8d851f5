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
}
