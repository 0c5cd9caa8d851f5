// Small helpers for SQL text the proxy writes itself.

public enum SQLText {
    /// A string literal: 'it''s'.
    public static func quote(_ value: String) -> String {
        var out = "'"
        for ch in value {
            if ch == "'" { out += "''" } else { out.append(ch) }
        }
        return out + "'"
    }
}
