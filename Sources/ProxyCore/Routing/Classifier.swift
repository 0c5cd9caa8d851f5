// Read/write classification of statement texts from Postgres's own parse tree: reads may go to any backend,
// everything else to the primary. Decisions are cached by Fingerprint; routing hints in comments are applied
// on every call, after the cache.

/// Where a statement may run.
public enum Route: String, Sendable {
    /// Read-only: any backend.
    case replica
    case primary
}

public struct Classification: Equatable, Sendable {
    public var route: Route
    /// The transaction control the text performs (the last one when it has several statements).
    public var transaction: TransactionControl?
    /// Short fixed text for logs and tests: "select", "show", "explain", "copy to", "values", "write statement",
    /// "data-modifying CTE", "locking clause", "select into", "write function nextval", "volatile function f",
    /// "unknown function f", "parse error", "multi-statement with write", "transaction control",
    /// "serializable transaction", "set", "execute", "utility statement", "copy from", "copy to file", "empty",
    /// "hint primary", "hint replica".
    public var reason: String
    /// Whether the text may change data, so that a client's later reads need a replica that replayed it
    /// (read-your-writes): true for everything on the primary except transaction control that commits nothing
    /// of its own (BEGIN, COMMIT, ROLLBACK, SAVEPOINT...; COMMIT PREPARED does) and SET / RESET. Hints do not
    /// change it.
    public var writes: Bool

    public init(route: Route, transaction: TransactionControl? = nil, reason: String, writes: Bool? = nil) {
        self.route = route
        self.transaction = transaction
        self.reason = reason
        self.writes = writes ?? (route == .primary)
    }
}

/// Classifies statement texts and caches the decisions by fingerprint.
///
/// Rules (on the parse tree): reads are SELECT (also VALUES and TABLE), SHOW, EXPLAIN without ANALYZE (EXPLAIN
/// ANALYZE is classified by its inner statement) and COPY ... TO STDOUT of a table or a read query, with no
/// write inside. Everything else goes to the primary, and so does a read that has, at any depth: a
/// data-modifying CTE, FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE, SELECT INTO, a call of a `WriteFunctions`
/// function, or a call of a function the catalog says is volatile or does not know. Text the parser rejects
/// goes to the primary. A text of several statements goes to a replica only when every statement is a read.
/// BEGIN / START TRANSACTION READ ONLY goes to a replica unless it is SERIALIZABLE (refused by hot standbys);
/// other transaction control, SET, RESET, DISCARD, LISTEN, PREPARE, EXECUTE... go to the primary.
///
/// Hints: `/* switchyard:primary */` sends a read to the primary. `/* switchyard:replica */` sends to a replica
/// a statement that is primary only because of volatile or unknown functions (random(), a user function the
/// client knows to be read-only); it never moves a write, a write function, a locking clause, transaction
/// control or a parse error. Hints are comments, which fingerprints drop, so they are read from each text.
///
/// Known limits: functions called by operators, views, column defaults, triggers or row-level security
/// policies are not seen; a read-only user function marked volatile needs a hint or a catalog that says stable.
///
/// Not thread-safe: use one Classifier per event loop (the parser itself may be shared).
public final class Classifier: @unchecked Sendable {
    private let parser: SQLParser
    private let catalog: FunctionCatalog
    /// Verdicts by fingerprint, at most `cacheCapacity` (recently used ones survive).
    private var verdicts: GenerationalCache<Fingerprint, Verdict>
    /// Fingerprints by text key: the classifier's and the stats' (callers use it for texts they record).
    public var fingerprints: FingerprintCache

    /// How many times the real parser ran.
    public private(set) var parseCount = 0
    /// How many classifications were answered from the cache.
    public private(set) var cacheHits = 0
    /// Cached fingerprints (at most the capacity).
    public var cachedCount: Int { verdicts.count }

    /// `cacheCapacity` 0 disables caching.
    public init(parser: SQLParser, catalog: FunctionCatalog, cacheCapacity: Int = 10_000) {
        self.parser = parser
        self.catalog = catalog
        self.verdicts = GenerationalCache(capacity: cacheCapacity)
        self.fingerprints = FingerprintCache(capacity: cacheCapacity)
    }

    /// Classifies a statement text (a simple Query string, possibly several statements, or a Parse query).
    /// Cached by Fingerprint: a second call with other literals does not parse again.
    public func classify(_ sql: String) -> Classification {
        let verdict = cachedVerdict(sql)
        return Self.apply(RouteHint.find(in: sql), to: verdict)
    }

    /// `classify` for UTF-8 text (a Query payload without its NUL): no String unless the statement shape is
    /// new (then libpg_query parses it). Also gives the statement's fingerprint (`lastFingerprint`, nil with
    /// caching off) and whether it may have session effects (`lastMayHaveEffects`), so the relay neither
    /// lexes nor scans it again.
    public func classify(utf8 bytes: UnsafeRawBufferPointer) -> Classification {
        lastHint = RouteHint.find(utf8: bytes)
        guard verdicts.isEnabled else {
            lastMayHaveEffects = SessionAnalyzer.mayHaveEffects(bytes)
            return classify(String(decoding: bytes, as: UTF8.self))
        }
        let (key, effects) = fingerprints.withEffects(utf8: bytes)
        lastFingerprint = key
        lastMayHaveEffects = effects
        let verdict = cachedVerdict(key) { String(decoding: bytes, as: UTF8.self) }
        return Self.apply(lastHint, to: verdict)
    }

    /// Whether the text last classified by `classify(utf8:)` may have session effects, and its routing hint.
    public private(set) var lastMayHaveEffects = true
    public private(set) var lastHint: RouteHint?

    /// Drops the cache (the function catalog changed).
    public func invalidate() {
        verdicts.removeAll()
    }

    // MARK: Cache

    /// The fingerprint of the text last classified (nil with caching off), so callers that also need it (stats)
    /// do not lex the statement a second time.
    public private(set) var lastFingerprint: Fingerprint?

    private func cachedVerdict(_ sql: String) -> Verdict {
        guard verdicts.isEnabled else {
            parseCount += 1
            lastFingerprint = nil
            return verdict(parsing: sql)
        }
        let key = fingerprints.of(sql)
        lastFingerprint = key
        return cachedVerdict(key) { sql }
    }

    private func cachedVerdict(_ key: Fingerprint, _ sql: () -> String) -> Verdict {
        if let hit = verdicts.get(key) {
            cacheHits += 1
            return hit
        }
        parseCount += 1
        let fresh = verdict(parsing: sql())
        if fresh.cacheable { verdicts.set(key, fresh) }
        return fresh
    }

    /// Whether a Query text, whose fingerprint the caller has, is reads only and no transaction control (hints
    /// aside): a statement that runs as a transaction of its own and changes nothing, so it may be sent behind
    /// another client's on a server connection. From the verdict cache; a miss parses once.
    public func isPlainRead(_ fingerprint: Fingerprint, utf8 bytes: UnsafeRawBufferPointer) -> Bool {
        let c = (verdicts.isEnabled ? cachedVerdict(fingerprint) { String(decoding: bytes, as: UTF8.self) }
                                    : verdict(parsing: String(decoding: bytes, as: UTF8.self))).classification
        return c.route == .replica && c.transaction == nil
    }

    private static func apply(_ hint: RouteHint?, to verdict: Verdict) -> Classification {
        var c = verdict.classification
        switch hint {
        case .primary?:
            if c.route == .replica {
                c.route = .primary
                c.reason = "hint primary"
            }
        case .replica?:
            if c.route == .primary && verdict.hintable {
                c.route = .replica
                c.reason = "hint replica"
            }
        case nil:
            break
        }
        return c
    }

    // MARK: Statements

    /// A decision before hints.
    struct Verdict {
        var classification: Classification
        /// Primary only because of volatile or unknown functions: a replica hint may override.
        var hintable = false
        /// False when the decision depends on a literal the fingerprint folds (EXPLAIN (ANALYZE 0)) or on an
        /// error (a parse error is not cached, so one bad text does not stick to its fingerprint).
        var cacheable = true

        static func replica(_ reason: String) -> Verdict {
            Verdict(classification: Classification(route: .replica, reason: reason))
        }

        static func primary(_ reason: String, transaction: TransactionControl? = nil, writes: Bool = true) -> Verdict {
            Verdict(classification: Classification(route: .primary, transaction: transaction, reason: reason, writes: writes))
        }
    }

    private func verdict(parsing sql: String) -> Verdict {
        var failed = Verdict.primary("parse error")
        failed.cacheable = false
        guard case let .success(json) = parser.parseJSON(sql),
              let tree = ParseTree.decode(json), let statements = tree["stmts"]?.array else {
            return failed
        }
        var verdicts: [Verdict] = []
        for entry in statements {
            guard let stmt = entry["stmt"] else { continue }
            verdicts.append(statement(stmt))
        }
        return Self.combine(verdicts)
    }

    /// One verdict for a text of several statements.
    private static func combine(_ verdicts: [Verdict]) -> Verdict {
        guard let first = verdicts.first else { return .replica("empty") }
        if verdicts.count == 1 { return first }
        let transaction = verdicts.last(where: { $0.classification.transaction != nil })?.classification.transaction
        let primaries = verdicts.filter { $0.classification.route == .primary }
        var result: Verdict
        if primaries.isEmpty {
            result = first
        } else {
            result = .primary("multi-statement with write")
            result.hintable = primaries.allSatisfy(\.hintable)
        }
        result.classification.transaction = transaction
        result.classification.writes = verdicts.contains { $0.classification.writes }
        result.cacheable = verdicts.allSatisfy(\.cacheable)
        return result
    }

    /// A statement node: `{"SelectStmt": {...}}`.
    private func statement(_ stmt: ParseTree) -> Verdict {
        guard let (type, fields) = stmt.node else { return .primary("utility statement") }
        switch type {
        case "SelectStmt":
            return read(stmt, reason: fields["valuesLists"] != nil && fields["targetList"] == nil ? "values" : "select")
        case "VariableShowStmt":
            return .replica("show")
        case "ExplainStmt":
            return explain(fields)
        case "CopyStmt":
            return copy(fields)
        case "TransactionStmt":
            return transaction(fields)
        case "VariableSetStmt":
            if fields["name"]?.string == "TRANSACTION", Self.readOnlyOption(fields["args"]) == true {
                return .primary("transaction control", transaction: .setTransactionReadOnly, writes: false)
            }
            return .primary("set", writes: false)
        case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
            return .primary("write statement")
        case "ExecuteStmt":
            return .primary("execute")
        default:
            return .primary("utility statement")
        }
    }

    /// A query that reads unless something inside writes.
    private func read(_ tree: ParseTree, reason: String) -> Verdict {
        var findings = Findings()
        scan(tree, &findings)
        if let write = findings.write { return .primary(write) }
        if let doubt = findings.doubt {
            var v = Verdict.primary(doubt)
            v.hintable = true
            return v
        }
        return .replica(reason)
    }

    private func explain(_ fields: ParseTree) -> Verdict {
        var analyze = false
        var cacheable = true
        for option in fields["options"]?.array ?? [] {
            guard let def = option["DefElem"], def["defname"]?.string == "analyze" else { continue }
            // The value may be a literal (ANALYZE 0, ANALYZE 'off'), which fingerprints fold.
            if let arg = def["arg"] {
                cacheable = false
                analyze = Self.optionIsTrue(arg)
            } else {
                analyze = true
            }
        }
        var v: Verdict
        if analyze, let inner = fields["query"] {
            v = statement(inner)
        } else {
            v = .replica("explain")
        }
        v.cacheable = v.cacheable && cacheable
        return v
    }

    /// EXPLAIN option values: false, off, no, 0 are false; anything else (including unknown forms) is true.
    private static func optionIsTrue(_ arg: ParseTree) -> Bool {
        if let s = arg["String"]?["sval"]?.string {
            return !["false", "off", "no", "0"].contains(s.lowercased())
        }
        if let i = arg["Integer"] { return (i["ival"]?.int ?? 0) != 0 }
        if let b = arg["Boolean"] { return b["boolval"]?.bool ?? false }
        return true
    }

    private func copy(_ fields: ParseTree) -> Verdict {
        if fields["is_from"]?.bool == true { return .primary("copy from") }
        // COPY ... TO 'file' / PROGRAM writes on the server host: keep it where the client's data lives.
        if fields["filename"] != nil || fields["is_program"]?.bool == true { return .primary("copy to file") }
        if let query = fields["query"] {
            var v = statement(query)
            if v.classification.route == .replica { v.classification.reason = "copy to" }
            return v
        }
        return .replica("copy to")
    }

    private func transaction(_ fields: ParseTree) -> Verdict {
        switch fields["kind"]?.string {
        case "TRANS_STMT_BEGIN", "TRANS_STMT_START":
            let readOnly = Self.readOnlyOption(fields["options"]) ?? false
            let serializable = (fields["options"]?.array ?? []).contains { option in
                guard let def = option["DefElem"], def["defname"]?.string == "transaction_isolation" else { return false }
                return def["arg"]?["A_Const"]?["sval"]?["sval"]?.string == "serializable"
            }
            if readOnly && serializable {
                // Hot standbys refuse SERIALIZABLE.
                return .primary("serializable transaction", transaction: .begin(readOnly: true), writes: false)
            }
            var v = Verdict.primary("transaction control", transaction: .begin(readOnly: readOnly), writes: false)
            if readOnly { v.classification.route = .replica }
            return v
        case "TRANS_STMT_COMMIT":
            return .primary("transaction control", transaction: .commit, writes: false)
        case "TRANS_STMT_ROLLBACK":
            return .primary("transaction control", transaction: .rollback, writes: false)
        case "TRANS_STMT_PREPARE":
            // PREPARE TRANSACTION ends the session's transaction; its writes show at COMMIT PREPARED.
            return .primary("transaction control", transaction: .commit, writes: false)
        case "TRANS_STMT_COMMIT_PREPARED", "TRANS_STMT_ROLLBACK_PREPARED":
            // A prepared transaction's writes become visible (or not) now.
            return .primary("transaction control")
        default:
            // SAVEPOINT, RELEASE, ROLLBACK TO.
            return .primary("transaction control", writes: false)
        }
    }

    /// The transaction_read_only option in BEGIN / START TRANSACTION / SET TRANSACTION options: true for READ
    /// ONLY, false for READ WRITE, nil when absent.
    private static func readOnlyOption(_ options: ParseTree?) -> Bool? {
        var result: Bool?
        for option in options?.array ?? [] {
            guard let def = option["DefElem"], def["defname"]?.string == "transaction_read_only" else { continue }
            result = (def["arg"]?["A_Const"]?["ival"]?["ival"]?.int ?? 0) != 0
        }
        return result
    }

    // MARK: Walking a read

    private struct Findings {
        /// The first certain write (never overridden by a hint).
        var write: String?
        /// The first volatile or unknown function.
        var doubt: String?
    }

    /// Walks the whole tree in printed order; stops at the first certain write.
    private func scan(_ tree: ParseTree, _ findings: inout Findings) {
        switch tree {
        case let .object(members):
            for (key, value) in members {
                switch key {
                case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
                    findings.write = "data-modifying CTE"
                    return
                case "lockingClause":
                    if let clauses = value.array, !clauses.isEmpty {
                        findings.write = "locking clause"
                        return
                    }
                case "intoClause":
                    findings.write = "select into"
                    return
                case "FuncCall":
                    call(value, &findings)
                default:
                    break
                }
                scan(value, &findings)
                if findings.write != nil { return }
            }
        case let .array(items):
            for item in items {
                scan(item, &findings)
                if findings.write != nil { return }
            }
        case .string, .number, .bool, .null:
            return
        }
    }

    /// A FuncCall's fields: `{"funcname": [{"String": {"sval": "pg_catalog"}}, {"String": {"sval": "now"}}], ...}`.
    private func call(_ fields: ParseTree, _ findings: inout Findings) {
        let parts = (fields["funcname"]?.array ?? []).compactMap { $0["String"]?["sval"]?.string }
        guard let name = parts.last else {
            if findings.doubt == nil { findings.doubt = "unknown function" }
            return
        }
        let schema = parts.count >= 2 ? parts[parts.count - 2] : nil
        let builtin = schema == nil || schema == "pg_catalog"
        let display = parts.joined(separator: ".")
        if builtin && WriteFunctions.contains(name.lowercased()) {
            findings.write = "write function \(display)"
            return
        }
        var volatility: FunctionVolatility?
        if let schema {
            volatility = catalog.volatility(of: schema + "." + name)
            if volatility == nil && schema == "pg_catalog" { volatility = catalog.volatility(of: name) }
        } else {
            volatility = catalog.volatility(of: name)
        }
        guard findings.doubt == nil else { return }
        switch volatility {
        case nil: findings.doubt = "unknown function \(display)"
        case .volatile?: findings.doubt = "volatile function \(display)"
        case .stable?, .immutable?: break
        }
    }
}
