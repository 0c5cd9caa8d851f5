// Admin console statements (PgBouncer-compatible): THE command table, the parser of one simple Query,
// and who may run what. SHOW HELP's text comes from the same table.

import PGWire

/// One admin statement, parsed.
public enum AdminCommand: Equatable, Sendable {
    case showClients
    case showServers
    case showPools
    case showConfig
    case showVersion
    case showHelp
    case showLists
    /// Switchyard's own: role, health, circuit, lag and load of every backend.
    case showBackends
    /// PgBouncer's SHOW STATS: per database totals and averages.
    case showStats
    /// Top query fingerprints by total time, with percentiles.
    case showQueries
    /// Per backend latency percentiles.
    case showLatency
    /// `PAUSE [db]`: nil pauses everything.
    case pause(String?)
    /// `RESUME [db]`: nil resumes everything.
    case resume(String?)
    case reload
    case shutdown

    /// The CommandComplete tag PgBouncer sends for this command.
    public var commandTag: String {
        switch self {
        case .showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists, .showBackends, .showStats, .showQueries, .showLatency: return "SHOW"
        case .pause: return "PAUSE"
        case .resume: return "RESUME"
        case .reload: return "RELOAD"
        case .shutdown: return "SHUTDOWN"
        }
    }
}

/// Why a statement is refused; `message` is the text of the ErrorResponse (PgBouncer's wording).
public enum AdminCommandError: Error, Equatable, Sendable {
    /// Not an admin statement Switchyard knows; carries the whole message.
    case unknown(String)
    /// A stats_users member tried a command that changes state; carries the whole message.
    case notAllowed(String)

    public var message: String {
        switch self {
        case .unknown(let m), .notAllowed(let m): return m
        }
    }

    /// PgBouncer reports console errors with SQLSTATE 08P01.
    public var sqlState: String { SQLState.protocolViolation }
}

/// What may follow a command word.
enum AdminArgument: Sendable {
    /// Nothing.
    case none
    /// An optional database name (`PAUSE [db]`).
    case optionalDatabase
}

/// One row of the command table: the words, what may follow, and what it parses to.
struct AdminCommandSpec: Sendable {
    /// Lowercase command word ("show", "pause", ...).
    let word: String
    /// Lowercase SHOW subject ("clients"), nil for non-SHOW commands.
    let subject: String?
    let argument: AdminArgument
    let make: @Sendable (String?) -> AdminCommand
    /// The usage line in SHOW HELP, e.g. "PAUSE [<db>]".
    let usage: String
}

/// The statement parser and the permission rule.
public enum AdminParser {
    /// Every command Switchyard's console accepts. Adding a command is one entry here.
    static let commands: [AdminCommandSpec] = [
        AdminCommandSpec(word: "show", subject: "help", argument: .none, make: { _ in .showHelp }, usage: "SHOW HELP"),
        AdminCommandSpec(word: "show", subject: "config", argument: .none, make: { _ in .showConfig }, usage: "SHOW CONFIG"),
        AdminCommandSpec(word: "show", subject: "pools", argument: .none, make: { _ in .showPools }, usage: "SHOW POOLS"),
        AdminCommandSpec(word: "show", subject: "clients", argument: .none, make: { _ in .showClients }, usage: "SHOW CLIENTS"),
        AdminCommandSpec(word: "show", subject: "servers", argument: .none, make: { _ in .showServers }, usage: "SHOW SERVERS"),
        AdminCommandSpec(word: "show", subject: "version", argument: .none, make: { _ in .showVersion }, usage: "SHOW VERSION"),
        AdminCommandSpec(word: "show", subject: "lists", argument: .none, make: { _ in .showLists }, usage: "SHOW LISTS"),
        AdminCommandSpec(word: "show", subject: "backends", argument: .none, make: { _ in .showBackends }, usage: "SHOW BACKENDS"),
        AdminCommandSpec(word: "show", subject: "stats", argument: .none, make: { _ in .showStats }, usage: "SHOW STATS"),
        AdminCommandSpec(word: "show", subject: "queries", argument: .none, make: { _ in .showQueries }, usage: "SHOW QUERIES"),
        AdminCommandSpec(word: "show", subject: "latency", argument: .none, make: { _ in .showLatency }, usage: "SHOW LATENCY"),
        AdminCommandSpec(word: "reload", subject: nil, argument: .none, make: { _ in .reload }, usage: "RELOAD"),
        AdminCommandSpec(word: "pause", subject: nil, argument: .optionalDatabase, make: { .pause($0) }, usage: "PAUSE [<db>]"),
        AdminCommandSpec(word: "resume", subject: nil, argument: .optionalDatabase, make: { .resume($0) }, usage: "RESUME [<db>]"),
        AdminCommandSpec(word: "shutdown", subject: nil, argument: .none, make: { _ in .shutdown }, usage: "SHUTDOWN"),
    ]

    /// PgBouncer console commands Switchyard does not implement: refused as "unsupported", not "invalid".
    static let pgbouncerOnlyCommands: Set<String> = [
        "disable", "enable", "kill", "kill_client", "reconnect", "suspend", "wait_close", "set", "select",
    ]
    static let pgbouncerOnlyShowSubjects: Set<String> = [
        "databases", "users", "peers", "peer_pools", "fds", "sockets", "active_sockets", "stats_totals",
        "stats_averages", "totals", "mem", "dns_hosts", "dns_zones", "state",
    ]

    /// The detail of SHOW HELP's notice, in PgBouncer's layout (one tab-indented line per group).
    public static var helpDetail: String {
        let subjects = commands.compactMap { $0.subject?.uppercased() }
        var lines = ["SHOW " + subjects.joined(separator: "|")]
        lines += commands.filter { $0.subject == nil }.map(\.usage)
        return lines.map { "\n\t" + $0 }.joined()
    }

    /// One admin statement: case-insensitive, optional trailing semicolon, extra whitespace; "SHOW clients;" etc.
    /// Grammar as PgBouncer's: `WORD [WORD] [;]`, a word being `[0-9A-Za-z_]+` or a "double-quoted" name.
    /// Anything else -> `.unknown` with PgBouncer's "invalid command" text. Empty query handled by caller.
    public static func parse(_ sql: String) throws(AdminCommandError) -> AdminCommand {
        let shown = trimmed(sql)
        guard let words = splitWords(sql), let first = words.first else { throw .unknown(invalid(shown)) }
        let word = first.lowercased()
        let argument = words.count > 1 ? words[1] : nil

        if word == "show" {
            guard let subject = argument?.lowercased() else { throw .unknown(invalid(shown)) }
            if let spec = commands.first(where: { $0.word == "show" && $0.subject == subject }) { return spec.make(nil) }
            if pgbouncerOnlyShowSubjects.contains(subject) { throw .unknown(unsupported(shown)) }
            throw .unknown(invalid(shown))
        }
        if let spec = commands.first(where: { $0.word == word && $0.subject == nil }) {
            switch spec.argument {
            case .none:
                guard argument == nil else { throw .unknown(invalid(shown)) }
                return spec.make(nil)
            case .optionalDatabase:
                return spec.make(argument)
            }
        }
        if pgbouncerOnlyCommands.contains(word) { throw .unknown(unsupported(shown)) }
        throw .unknown(invalid(shown))
    }

    /// stats_users may only run SHOW commands.
    public static func isReadOnly(_ c: AdminCommand) -> Bool {
        switch c {
        case .showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists, .showBackends, .showStats, .showQueries, .showLatency: return true
        case .pause, .resume, .reload, .shutdown: return false
        }
    }

    /// Refuses a state-changing command for a user who is only in stats_users (PgBouncer: "admin access needed").
    public static func authorize(_ c: AdminCommand, isAdminUser: Bool) throws(AdminCommandError) {
        if !isAdminUser && !isReadOnly(c) { throw .notAllowed("admin access needed") }
    }

    /// Parses and authorizes in one step.
    public static func parse(_ sql: String, isAdminUser: Bool) throws(AdminCommandError) -> AdminCommand {
        let command = try parse(sql)
        try authorize(command, isAdminUser: isAdminUser)
        return command
    }

    // MARK: Lexing

    private static func invalid(_ sql: String) -> String { "invalid command '\(sql)', use SHOW HELP;" }
    private static func unsupported(_ sql: String) -> String { "unsupported command '\(sql)', use SHOW HELP;" }

    /// PgBouncer's `[ \t\n\r]`; "\r\n" is one Character in Swift.
    private static func isSpace(_ c: Character) -> Bool {
        c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n"
    }

    private static func isWordCharacter(_ c: Character) -> Bool {
        c == "_" || (c.isASCII && (c.isLetter || c.isNumber))
    }

    private static func trimmed(_ sql: String) -> String {
        var s = Substring(sql)
        while let c = s.first, isSpace(c) { s.removeFirst() }
        while let c = s.last, isSpace(c) { s.removeLast() }
        return String(s)
    }

    /// One or two words and at most one trailing `;`; nil when the statement does not have that shape.
    private static func splitWords(_ sql: String) -> [String]? {
        var rest = Substring(sql)
        var words: [String] = []
        func skipSpace() { while let c = rest.first, isSpace(c) { rest.removeFirst() } }
        skipSpace()
        while !rest.isEmpty, rest.first != ";" {
            guard words.count < 2, let word = readWord(&rest) else { return nil }
            words.append(word)
            // Words must be separated by whitespace (or end at ';' / end of text).
            if let next = rest.first, !isSpace(next), next != ";" { return nil }
            skipSpace()
        }
        if rest.first == ";" {
            rest.removeFirst()
            skipSpace()
        }
        return rest.isEmpty && !words.isEmpty ? words : nil
    }

    /// A bare word, or a double-quoted name with `""` standing for one `"`.
    private static func readWord(_ rest: inout Substring) -> String? {
        if rest.first == "\"" {
            rest.removeFirst()
            var word = ""
            while let c = rest.first {
                rest.removeFirst()
                if c == "\"" {
                    if rest.first == "\"" {
                        rest.removeFirst()
                        word.append("\"")
                    } else {
                        return word.isEmpty ? nil : word
                    }
                } else {
                    word.append(c)
                }
            }
            return nil
        }
        var word = ""
        while let c = rest.first, isWordCharacter(c) {
            word.append(c)
            rest.removeFirst()
        }
        return word.isEmpty ? nil : word
    }
}
