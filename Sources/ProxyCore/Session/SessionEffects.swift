// Finds what a client's SQL does to its server session (SET, LISTEN, advisory locks, temp objects, cursors,
// SQL PREPARE, DISCARD...) with the token lexer, so the session can follow the client across servers in
// transaction pooling or pin it. Also spots transaction control (BEGIN / COMMIT / ROLLBACK).

public enum SessionEffect: Equatable, Sendable {
    /// SET [SESSION] name {TO|=} value; value is the original SQL text of the value list, ready for `SET name TO <value>`.
    case set(name: String, value: String)
    /// RESET name; SET name TO DEFAULT.
    case reset(name: String)
    /// RESET ALL.
    case resetAll
    /// DISCARD ALL.
    case discardAll
    /// DISCARD TEMP | TEMPORARY.
    case discardTemp
    /// DEALLOCATE [PREPARE] name | ALL (nil).
    case deallocate(String?)
    /// PREPARE name [ (types) ] AS ...
    case sqlPrepare(String)
    /// LISTEN channel.
    case listen(String)
    /// UNLISTEN channel | * (nil).
    case unlisten(String?)
    /// One call of pg_[try_]advisory_lock[_shared] (session level, not the *_xact_* variants).
    case advisoryLock
    /// One call of pg_advisory_unlock[_shared].
    case advisoryUnlock
    /// pg_advisory_unlock_all().
    case advisoryUnlockAll
    /// CREATE TEMP TABLE|VIEW|SEQUENCE..., anything created in pg_temp, SELECT ... INTO TEMP.
    case createTemp
    /// DECLARE name ... CURSOR WITH HOLD FOR ...
    case declareWithHold(String)
    /// CLOSE name | CLOSE ALL (nil).
    case closeCursor(String?)
    /// A change the proxy cannot follow (set_config(..., false), SET inside a DO block...): the caller pins.
    case unknownSessionChange
}

public enum TransactionControl: Equatable, Sendable {
    /// BEGIN / START TRANSACTION [READ ONLY].
    case begin(readOnly: Bool)
    /// COMMIT, END, COMMIT AND CHAIN, PREPARE TRANSACTION (the session's transaction ends).
    case commit
    /// ROLLBACK, ABORT (not ROLLBACK TO SAVEPOINT).
    case rollback
    /// SET TRANSACTION ... READ ONLY.
    case setTransactionReadOnly
}

public enum SessionAnalyzer {
    /// Effects of every statement in the text, in order. SET LOCAL, SET inside a function body ($$...$$ strings)
    /// and anything in comments or string literals produce nothing.
    ///
    /// DO blocks are looked into conservatively, since their body runs now but its control flow is unknown:
    /// effects that pin (advisory locks, LISTEN, temp objects, WITH HOLD cursors, PREPARE) are reported,
    /// SET / RESET / set_config(..., false) and EXECUTE of a string that may have effects become
    /// `unknownSessionChange`, and effects that release (unlock, UNLISTEN, CLOSE, DEALLOCATE, DISCARD) are dropped.
    ///
    /// Known limits: functions called by the statement may do anything (not seen); an advisory lock call is
    /// counted whether or not it ran or succeeded (pg_try_*, WHERE clauses), and an unlock is counted even
    /// for a lock that was not held.
    public static func effects(of sql: String) -> [SessionEffect] {
        var out: [SessionEffect] = []
        for statement in SQLLexer.statements(sql) {
            analyze(statement, sql: sql, depth: 0, into: &out)
        }
        return out
    }

    /// Hot-path pre-check on raw bytes, no allocation: false when the text certainly has no session effect.
    /// Case-insensitive scan for set, reset, discard, deallocate, prepare, listen, unlisten, declare, close
    /// (at the start of a word) and advisory, temp (anywhere, to catch pg_advisory_lock and pg_temp), plus U&
    /// quoted names (which may spell anything). False positives are fine (UPDATE ... SET is one).
    public static func mayHaveEffects(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        // A single UPDATE statement's own SET clause is no session effect (the common false positive).
        let singleUpdate = startsWithWord(bytes, "update") && !bytes.contains(UInt8(ascii: ";"))
        var i = 0
        while i < n {
            let c = bytes[i] | 0x20
            switch c {
            case 0x73: // s
                if wordStart(bytes, i), matches(bytes, i, "set"), !singleUpdate || (i + 3 < n && bytes[i + 3] == UInt8(ascii: "_")) { return true }
            case 0x72: // r
                if wordStart(bytes, i), matches(bytes, i, "reset") { return true }
            case 0x64: // d
                if wordStart(bytes, i),
                   matches(bytes, i, "discard") || matches(bytes, i, "deallocate") || matches(bytes, i, "declare") {
                    return true
                }
            case 0x70: // p
                if wordStart(bytes, i), matches(bytes, i, "prepare") { return true }
            case 0x6C: // l
                if wordStart(bytes, i), matches(bytes, i, "listen") { return true }
            case 0x75: // u
                if wordStart(bytes, i), matches(bytes, i, "unlisten") { return true }
                if i + 2 < n, bytes[i + 1] == UInt8(ascii: "&"), bytes[i + 2] == 0x22 || bytes[i + 2] == 0x27 { return true }
            case 0x63: // c
                if wordStart(bytes, i), matches(bytes, i, "close") { return true }
            case 0x61: // a
                if matches(bytes, i, "advisory") { return true }
            case 0x74: // t
                if matches(bytes, i, "temp") { return true }
            default:
                break
            }
            i += 1
        }
        return false
    }

    /// Whether the text could be a lone SET or RESET (its first word, after spaces and comments): the cheap test
    /// before looking for the proxy's own settings (`SET switchyard.statement_timeout ...`).
    public static func startsWithSetOrReset(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // A statement that starts with a letter (most do) is decided from there, without skipping anything.
        if let first = bytes.first, SQLLexer.isLetter(first) {
            switch first | 0x20 {
            case UInt8(ascii: "s"): return isWord(bytes, at: 0, "set")
            case UInt8(ascii: "r"): return isWord(bytes, at: 0, "reset")
            default: return false
            }
        }
        return startsWithWord(bytes, "set") || startsWithWord(bytes, "reset")
    }

    /// Whether the text's first word (after spaces and comments) is `word` (lowercase).
    private static func startsWithWord(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x28 {
                i += 1
            } else if b == UInt8(ascii: "-"), i + 1 < n, bytes[i + 1] == UInt8(ascii: "-") {
                while i < n, bytes[i] != 0x0A { i += 1 }
            } else if b == UInt8(ascii: "/"), i + 1 < n, bytes[i + 1] == UInt8(ascii: "*") {
                i = bytes.withMemoryRebound(to: UInt8.self) { SQLLexer.skipBlockComment($0, from: i) }
            } else {
                break
            }
        }
        return isWord(bytes, at: i, word)
    }

    /// Whether `word` (lowercase) stands at `i`, not followed by a letter or underscore.
    private static func isWord(_ bytes: UnsafeRawBufferPointer, at i: Int, _ word: StaticString) -> Bool {
        guard matches(bytes, i, word) else { return false }
        let end = i + word.utf8CodeUnitCount
        return end >= bytes.count || !(bytes[end] | 0x20 >= 0x61 && bytes[end] | 0x20 <= 0x7A) && bytes[end] != UInt8(ascii: "_")
    }

    public static func mayHaveEffects(_ sql: String) -> Bool {
        var sql = sql
        return sql.withUTF8 { mayHaveEffects(UnsafeRawBufferPointer($0)) }
    }

    /// Transaction control at the start of a statement: BEGIN / START TRANSACTION, COMMIT / END,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT, not COMMIT/ROLLBACK PREPARED), SET TRANSACTION READ ONLY.
    public static func transactionControl(of statement: [SQLToken]) -> TransactionControl? {
        guard let first = statement.first, first.kind == .word else { return nil }
        let second = statement.count > 1 ? statement[1] : nil
        switch first.text {
        case "begin":
            return .begin(readOnly: hasReadOnly(statement))
        case "start":
            guard second?.isWord("transaction") == true else { return nil }
            return .begin(readOnly: hasReadOnly(statement))
        case "commit", "end":
            if second?.isWord("prepared") == true { return nil }
            return .commit
        case "rollback", "abort":
            if second?.isWord("prepared") == true { return nil }
            if statement.contains(where: { $0.isWord("to") }) { return nil }
            return .rollback
        case "prepare":
            return second?.isWord("transaction") == true ? .commit : nil
        case "set":
            guard second?.isWord("transaction") == true, hasReadOnly(statement) else { return nil }
            return .setTransactionReadOnly
        default:
            return nil
        }
    }

    // MARK: Byte scan

    private static func wordStart(_ b: UnsafeRawBufferPointer, _ i: Int) -> Bool {
        guard i > 0 else { return true }
        let p = b[i - 1]
        return !(SQLLexer.isLetter(p) || SQLLexer.isDigit(p) || p == 95 || p >= 0x80)
    }

    /// `word` (lowercase letters) at `i`, ASCII case-insensitively.
    private static func matches(_ b: UnsafeRawBufferPointer, _ i: Int, _ word: StaticString) -> Bool {
        let length = word.utf8CodeUnitCount
        guard i + length <= b.count else { return false }
        let w = word.utf8Start
        for k in 0..<length where b[i + k] | 0x20 != w[k] { return false }
        return true
    }

    // MARK: Statements

    private static let transactionLocal: Set<String> = ["transaction_isolation", "transaction_read_only", "transaction_deferrable"]

    private static func analyze(_ t: [SQLToken], sql: String, depth: Int, into out: inout [SessionEffect]) {
        guard let first = t.first, first.kind == .word else {
            out += callEffects(t)
            return
        }
        var scanCalls = true
        switch first.text {
        case "set": out += setEffects(t, sql: sql)
        case "reset": out += resetEffects(t)
        case "do":
            scanCalls = false
            out += doEffects(t, depth: depth)
        case "prepare":
            scanCalls = false // the query runs at EXECUTE, not now
            out += statementStartEffects(t)
        case "create":
            scanCalls = createRunsQuery(t)
            out += statementStartEffects(t)
        default:
            out += statementStartEffects(t)
        }
        if scanCalls { out += callEffects(t) }
    }

    /// Effects decided by the statement's leading words (not SET/RESET/DO, not function calls).
    private static func statementStartEffects(_ t: [SQLToken]) -> [SessionEffect] {
        guard let first = t.first, first.kind == .word else { return [] }
        let second = t.count > 1 ? t[1] : nil
        switch first.text {
        case "set": return setEffects(t, sql: nil)
        case "reset": return resetEffects(t)
        case "discard":
            if second?.isWord("all") == true { return [.discardAll] }
            if second?.isWord("temp") == true || second?.isWord("temporary") == true { return [.discardTemp] }
            return []
        case "deallocate":
            var i = 1
            if second?.isWord("prepare") == true && t.count > 2 { i = 2 }
            guard i < t.count else { return [] }
            if t[i].isWord("all") { return [.deallocate(nil)] }
            return name(t[i]).map { [.deallocate($0)] } ?? []
        case "prepare":
            guard let second, !second.isWord("transaction"), let n = name(second) else { return [] }
            return [.sqlPrepare(n)]
        case "listen":
            return second.flatMap(name).map { [.listen($0)] } ?? []
        case "unlisten":
            if second?.isPunctuation("*") == true { return [.unlisten(nil)] }
            return second.flatMap(name).map { [.unlisten($0)] } ?? []
        case "declare":
            guard let second, let n = name(second) else { return [] }
            var i = 2
            while i < t.count && !t[i].isWord("cursor") { i += 1 }
            while i + 1 < t.count && !t[i].isWord("for") {
                if t[i].isWord("with") && t[i + 1].isWord("hold") { return [.declareWithHold(n)] }
                i += 1
            }
            return []
        case "close":
            if second?.isWord("all") == true { return [.closeCursor(nil)] }
            return second.flatMap(name).map { [.closeCursor($0)] } ?? []
        case "create":
            var i = 1
            if i + 1 < t.count && t[i].isWord("or") && t[i + 1].isWord("replace") { i += 2 }
            if i < t.count && (t[i].isWord("global") || t[i].isWord("local")) { i += 1 }
            if i < t.count && (t[i].isWord("temp") || t[i].isWord("temporary")) { return [.createTemp] }
            // An object created in pg_temp (or a view over one) is temporary too.
            for k in 0..<max(0, t.count - 1) where t[k].isWord("pg_temp") && t[k + 1].isPunctuation(".") {
                return [.createTemp]
            }
            return []
        case "select", "with":
            for k in 0..<max(0, t.count - 1) where t[k].isWord("into") {
                var j = k + 1
                if j < t.count && (t[j].isWord("global") || t[j].isWord("local")) { j += 1 }
                if j < t.count && (t[j].isWord("temp") || t[j].isWord("temporary")) { return [.createTemp] }
            }
            return []
        default:
            return []
        }
    }

    /// CREATE TABLE ... AS and CREATE MATERIALIZED VIEW run their query now; other CREATEs (functions, views,
    /// rules, triggers, defaults) only store expressions, so their calls are not effects.
    private static func createRunsQuery(_ t: [SQLToken]) -> Bool {
        let kinds: Set<String> = ["table", "view", "materialized", "function", "procedure", "rule", "trigger",
                                  "aggregate", "policy", "index", "sequence", "type", "domain", "schema", "extension"]
        guard let kind = t.dropFirst().prefix(6).first(where: { $0.kind == .word && kinds.contains($0.text) }) else {
            return false
        }
        return (kind.text == "table" || kind.text == "materialized") && t.contains(where: { $0.isWord("as") })
    }

    // MARK: SET / RESET

    /// `sql` is the source for value text; nil when only the kind of effect matters (DO bodies).
    private static func setEffects(_ t: [SQLToken], sql: String?) -> [SessionEffect] {
        var i = 1
        guard i < t.count else { return [] }
        if t[i].isWord("local") { return [] }
        if t[i].isWord("session") {
            if i + 1 < t.count && t[i + 1].isWord("authorization") {
                return special("session_authorization", t, from: i + 2, sql: sql)
            }
            if i + 1 < t.count && t[i + 1].isWord("characteristics") {
                return characteristics(t, from: i + 2)
            }
            i += 1
        }
        // Generic: name[.name...] {TO | =} value [, ...]
        if let (n, j) = dottedName(t, from: i), j < t.count, t[j].isWord("to") || t[j].isPunctuation("=") {
            guard j + 1 < t.count else { return [] }
            let values = t[(j + 1)...]
            if values.count == 1 && values.first!.isWord("default") { return [.reset(name: n)] }
            if transactionLocal.contains(n.lowercased()) { return [] }
            return [.set(name: n, value: valueText(values, sql: sql))]
        }
        guard i < t.count, t[i].kind == .word else { return [] }
        switch t[i].text {
        case "time":
            guard i + 1 < t.count, t[i + 1].isWord("zone") else { return [] }
            let values = t[(i + 2)...]
            guard let v = values.first else { return [] }
            if values.count == 1 && (v.isWord("local") || v.isWord("default")) { return [.reset(name: "timezone")] }
            // SET TIME ZONE INTERVAL '..' HOUR TO MINUTE cannot be re-issued as SET timezone TO ...
            if v.isWord("interval") { return [.unknownSessionChange] }
            return [.set(name: "timezone", value: valueText(values, sql: sql))]
        case "schema": return special("search_path", t, from: i + 1, sql: sql)
        case "names":
            if i + 1 == t.count { return [.reset(name: "client_encoding")] }
            return special("client_encoding", t, from: i + 1, sql: sql)
        case "role": return special("role", t, from: i + 1, sql: sql)
        case "xml":
            guard i + 1 < t.count, t[i + 1].isWord("option") else { return [] }
            return special("xmloption", t, from: i + 2, sql: sql)
        default:
            // SET TRANSACTION / SET CONSTRAINTS are transaction-local; name FROM CURRENT changes nothing.
            return []
        }
    }

    /// SET <form> value: DEFAULT resets, anything else sets `name` to the value text.
    private static func special(_ name: String, _ t: [SQLToken], from i: Int, sql: String?) -> [SessionEffect] {
        guard i < t.count else { return [] }
        let values = t[i...]
        if values.count == 1 && values.first!.isWord("default") { return [.reset(name: name)] }
        return [.set(name: name, value: valueText(values, sql: sql))]
    }

    /// SET SESSION CHARACTERISTICS AS TRANSACTION modes -> the default_transaction_* parameters.
    private static func characteristics(_ t: [SQLToken], from start: Int) -> [SessionEffect] {
        var i = start
        guard i + 1 < t.count, t[i].isWord("as"), t[i + 1].isWord("transaction") else { return [] }
        i += 2
        var out: [SessionEffect] = []
        func word(_ k: Int) -> String? { k < t.count && t[k].kind == .word ? t[k].text : nil }
        while i < t.count {
            switch word(i) {
            case "isolation":
                guard word(i + 1) == "level", let level = word(i + 2) else { return [.unknownSessionChange] }
                if level == "serializable" {
                    out.append(.set(name: "default_transaction_isolation", value: "'serializable'"))
                    i += 3
                } else if let second = word(i + 3), level == "repeatable" || level == "read" {
                    out.append(.set(name: "default_transaction_isolation", value: "'\(level) \(second)'"))
                    i += 4
                } else {
                    return [.unknownSessionChange]
                }
            case "read":
                guard let mode = word(i + 1), mode == "only" || mode == "write" else { return [.unknownSessionChange] }
                out.append(.set(name: "default_transaction_read_only", value: mode == "only" ? "on" : "off"))
                i += 2
            case "deferrable":
                out.append(.set(name: "default_transaction_deferrable", value: "on"))
                i += 1
            case "not":
                guard word(i + 1) == "deferrable" else { return [.unknownSessionChange] }
                out.append(.set(name: "default_transaction_deferrable", value: "off"))
                i += 2
            default:
                if t[i].isPunctuation(",") { i += 1; continue }
                return [.unknownSessionChange]
            }
        }
        return out
    }

    private static func resetEffects(_ t: [SQLToken]) -> [SessionEffect] {
        guard t.count > 1 else { return [] }
        let w = t[1].kind == .word ? t[1].text : ""
        let w2 = t.count > 2 && t[2].kind == .word ? t[2].text : ""
        if w == "all" && t.count == 2 { return [.resetAll] }
        if w == "time" && w2 == "zone" { return [.reset(name: "timezone")] }
        if w == "session" && w2 == "authorization" { return [.reset(name: "session_authorization")] }
        if w == "transaction" { return [] }
        if w == "xml" && w2 == "option" { return [.reset(name: "xmloption")] }
        guard let (n, j) = dottedName(t, from: 1), j == t.count, !transactionLocal.contains(n.lowercased()) else { return [] }
        return [.reset(name: n)]
    }

    /// name[.name...] from `i`: the joined name and the index after it.
    private static func dottedName(_ t: [SQLToken], from start: Int) -> (String, Int)? {
        guard start < t.count, var n = name(t[start]) else { return nil }
        var i = start + 1
        while i + 1 < t.count, t[i].isPunctuation("."), let part = name(t[i + 1]) {
            n += "." + part
            i += 2
        }
        return (n, i)
    }

    private static func name(_ token: SQLToken) -> String? {
        token.kind == .word || token.kind == .quotedIdentifier ? token.text : nil
    }

    private static func valueText(_ values: ArraySlice<SQLToken>, sql: String?) -> String {
        guard let sql, let first = values.first, let last = values.last else {
            return values.map(\.text).joined(separator: " ")
        }
        return SQLLexer.source(sql, first.range.lowerBound..<last.range.upperBound)
    }

    // MARK: Function calls

    /// Advisory lock functions and set_config called anywhere in the statement, one effect per call.
    private static func callEffects(_ t: [SQLToken]) -> [SessionEffect] {
        var out: [SessionEffect] = []
        var k = 0
        while k + 1 < t.count {
            defer { k += 1 }
            guard t[k + 1].isPunctuation("("), t[k].kind == .word || t[k].kind == .quotedIdentifier else { continue }
            switch t[k].text {
            case "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared":
                out.append(.advisoryLock)
            case "pg_advisory_unlock", "pg_advisory_unlock_shared":
                out.append(.advisoryUnlock)
            case "pg_advisory_unlock_all":
                out.append(.advisoryUnlockAll)
            case "set_config":
                let args = arguments(t, open: k + 1)
                if args.count != 3 || !isTrueLiteral(args[2]) { out.append(.unknownSessionChange) }
            default:
                break
            }
        }
        return out
    }

    /// Top-level comma-separated arguments of the call whose "(" is at `open`.
    private static func arguments(_ t: [SQLToken], open: Int) -> [ArraySlice<SQLToken>] {
        var args: [ArraySlice<SQLToken>] = []
        var depth = 0
        var start = open + 1
        var i = open + 1
        while i < t.count {
            let tok = t[i]
            if tok.isPunctuation("(") || tok.isPunctuation("[") {
                depth += 1
            } else if tok.isPunctuation(")") || tok.isPunctuation("]") {
                if depth == 0 {
                    if i > start || !args.isEmpty { args.append(t[start..<i]) }
                    return args
                }
                depth -= 1
            } else if tok.isPunctuation(","), depth == 0 {
                args.append(t[start..<i])
                start = i + 1
            }
            i += 1
        }
        return [] // unclosed: unknown
    }

    /// true, 'true', 'on', 't', 'yes', 'y', '1', optionally cast with ::bool / ::boolean.
    private static func isTrueLiteral(_ arg: ArraySlice<SQLToken>) -> Bool {
        var tokens = Array(arg)
        if tokens.count == 3, tokens[1].isPunctuation("::"), tokens[2].isWord("bool") || tokens[2].isWord("boolean") {
            tokens.removeLast(2)
        }
        guard tokens.count == 1 else { return false }
        let tok = tokens[0]
        if tok.isWord("true") { return true }
        guard tok.kind == .string else { return false }
        return ["true", "on", "t", "yes", "y", "1"].contains(tok.text.lowercased())
    }

    // MARK: DO blocks

    private static let plpgsqlControl: Set<String> = ["begin", "then", "else", "loop", "declare", "exception"]

    private static func doEffects(_ t: [SQLToken], depth: Int) -> [SessionEffect] {
        var language = "plpgsql"
        var body: String?
        var i = 1
        while i < t.count {
            if t[i].isWord("language"), i + 1 < t.count {
                language = t[i + 1].text.lowercased()
                i += 2
                continue
            }
            if t[i].kind == .string, body == nil { body = t[i].text }
            i += 1
        }
        guard let body else { return [] }
        guard language == "plpgsql", depth < 4 else {
            return mayHaveEffects(body) ? [.unknownSessionChange] : []
        }
        let tokens = SQLLexer.tokens(body)
        var found: [SessionEffect] = []
        for statement in SQLLexer.split(tokens) {
            // A statement may start after control words: BEGIN SET ...; IF x THEN LISTEN ...; <<l>> LOOP ...
            for p in statement.indices where p == 0 || isControl(statement[p - 1]) {
                let sub = Array(statement[p...])
                var e: [SessionEffect] = []
                if sub[0].isWord("do") {
                    e = doEffects(sub, depth: depth + 1)
                } else {
                    e = statementStartEffects(sub)
                    if sub[0].isWord("set"), e.isEmpty, setMayAct(sub) { e = [.unknownSessionChange] }
                }
                if !e.isEmpty { found += e; break }
            }
            found += callEffects(statement)
        }
        if tokens.contains(where: { $0.isWord("execute") }),
           tokens.contains(where: { $0.kind == .string && mayHaveEffects($0.text) }) {
            found.append(.unknownSessionChange)
        }
        var out: [SessionEffect] = []
        for effect in found {
            switch effect {
            case .set, .reset, .resetAll, .unknownSessionChange:
                if !out.contains(.unknownSessionChange) { out.append(.unknownSessionChange) }
            case .advisoryLock, .listen, .createTemp, .sqlPrepare, .declareWithHold:
                out.append(effect)
            case .advisoryUnlock, .advisoryUnlockAll, .unlisten, .closeCursor, .deallocate, .discardAll, .discardTemp:
                break
            }
        }
        return out
    }

    /// A SET in PL/pgSQL whose exact effect we did not model (e.g. SET with a PL/pgSQL variable): not LOCAL,
    /// TRANSACTION or CONSTRAINTS.
    private static func setMayAct(_ t: [SQLToken]) -> Bool {
        guard t.count > 1 else { return false }
        return !(t[1].isWord("local") || t[1].isWord("transaction") || t[1].isWord("constraints"))
    }

    private static func isControl(_ token: SQLToken) -> Bool {
        (token.kind == .word && plpgsqlControl.contains(token.text)) || token.isPunctuation(">>")
    }

    private static func hasReadOnly(_ t: [SQLToken]) -> Bool {
        for k in 0..<max(0, t.count - 1) where t[k].isWord("read") && t[k + 1].isWord("only") { return true }
        return false
    }
}
