// A client's session state in transaction pooling: the SET parameters that must follow it to every server,
// and what pins it to its current server (LISTEN, advisory locks, temp objects, WITH HOLD cursors, SQL PREPARE).

public struct SessionState: Equatable, Sendable {
    /// Parameter name (ASCII-lowercased: GUC names are case-insensitive) -> value as SQL text.
    public var parameters: [String: String] = [:]
    public var listening: Set<String> = []
    public var advisoryLocks = 0
    public var hasTempObjects = false
    public var holdCursors: Set<String> = []
    public var sqlPrepared: Set<String> = []
    public var unknownState = false

    public init() {}

    /// True while the client must keep its server (LISTEN, session advisory locks, temp objects, WITH HOLD
    /// cursors, SQL PREPARE, unknown state).
    public var isPinned: Bool { pinReason != nil }

    /// Why it is pinned, for admin output; nil when not pinned. The first that applies, in this order.
    public var pinReason: String? {
        if !listening.isEmpty { return "listen" }
        if advisoryLocks > 0 { return "advisory_lock" }
        if hasTempObjects { return "temp_table" }
        if !holdCursors.isEmpty { return "hold_cursor" }
        if !sqlPrepared.isEmpty { return "sql_prepare" }
        if unknownState { return "set_config" }
        return nil
    }

    /// Parameters RESET ALL leaves alone in Postgres (GUC_NO_RESET_ALL); DISCARD ALL resets them.
    public static let keptByResetAll: Set<String> = ["role", "session_authorization"]

    public mutating func apply(_ effect: SessionEffect) {
        switch effect {
        case let .set(name, value): parameters[Self.key(name)] = value
        case let .reset(name): parameters[Self.key(name)] = nil
        case .resetAll: parameters = parameters.filter { Self.keptByResetAll.contains($0.key) }
        case .discardAll: self = SessionState()
        case .discardTemp: hasTempObjects = false
        case let .deallocate(name):
            if let name { sqlPrepared.remove(name) } else { sqlPrepared.removeAll() }
        case let .sqlPrepare(name): sqlPrepared.insert(name)
        case let .listen(channel): listening.insert(channel)
        case let .unlisten(channel):
            if let channel { listening.remove(channel) } else { listening.removeAll() }
        case .advisoryLock: advisoryLocks += 1
        case .advisoryUnlock: advisoryLocks = max(0, advisoryLocks - 1)
        case .advisoryUnlockAll: advisoryLocks = 0
        case .createTemp: hasTempObjects = true
        case let .declareWithHold(name): holdCursors.insert(name)
        case let .closeCursor(name):
            if let name { holdCursors.remove(name) } else { holdCursors.removeAll() }
        case .unknownSessionChange: unknownState = true
        }
    }

    /// SQL that brings a server whose SET parameters are `server` to `client`'s: "SET a TO x;RESET b;" — SET for
    /// every client value that differs or is missing on the server, RESET for every server name the client
    /// lacks. Empty when equal. Sorted by name, except session_authorization then role come last (a role
    /// change can take away the privilege another SET needs, and SET SESSION AUTHORIZATION must precede SET ROLE).
    public static func syncSQL(from server: [String: String], to client: [String: String]) -> String {
        let names = Set(server.keys).union(client.keys).sorted { a, b in
            let ra = rank(a), rb = rank(b)
            return ra != rb ? ra < rb : a < b
        }
        var sql = ""
        for name in names {
            if let value = client[name] {
                if server[name] != value { sql += "SET \(quoteName(name)) TO \(value);" }
            } else {
                sql += "RESET \(quoteName(name));"
            }
        }
        return sql
    }

    /// A parameter name for generated SQL: each dot-separated part quoted only if it is not a plain
    /// lowercase identifier (so `myapp.user_id` stays as is).
    public static func quoteName(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false).map { part -> String in
            let plain = !part.isEmpty && part.utf8.enumerated().allSatisfy { i, c in
                (c >= 97 && c <= 122) || c == 95 || (i > 0 && ((c >= 48 && c <= 57) || c == 36))
            }
            return plain ? String(part) : "\"" + doublingQuotes(part) + "\""
        }.joined(separator: ".")
    }

    private static func doublingQuotes(_ part: Substring) -> String {
        var out = ""
        for ch in part { if ch == "\"" { out += "\"\"" } else { out.append(ch) } }
        return out
    }

    private static func rank(_ name: String) -> Int {
        switch name {
        case "session_authorization": return 1
        case "role": return 2
        default: return 0
        }
    }

    private static func key(_ name: String) -> String {
        String(decoding: name.utf8.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
