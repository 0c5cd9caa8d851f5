// The admin console's answers: SHOW result sets built from an AdminSnapshot with PgBouncer's columns
// (Switchyard's extras at the end), and their wire bytes. The I/O layer adds ReadyForQuery.

import PGWire

/// A NoticeResponse sent before a result (SHOW HELP's usage text).
public struct AdminNotice: Equatable, Sendable {
    public var message: String
    public var detail: String

    public init(message: String, detail: String) {
        self.message = message
        self.detail = detail
    }
}

/// Rows of one SHOW command, in text format.
public struct ResultSet: Equatable, Sendable {
    /// Column types the console uses.
    public enum ColumnType: Equatable, Sendable {
        case text
        case int8

        /// The type OID in RowDescription.
        public var oid: Int32 {
            switch self {
            case .text: return 25
            case .int8: return 20
            }
        }

        /// The type size in RowDescription (-1: variable length).
        public var size: Int16 {
            switch self {
            case .text: return -1
            case .int8: return 8
            }
        }
    }

    public var columns: [(name: String, type: ColumnType)]
    /// One entry per column; nil is SQL NULL.
    public var rows: [[String?]]
    /// "SHOW" for every SHOW command.
    public var commandTag: String
    /// Sent first when set; with no columns no RowDescription is sent (PgBouncer's SHOW HELP).
    public var notice: AdminNotice?

    public init(columns: [(name: String, type: ColumnType)], rows: [[String?]], commandTag: String = "SHOW",
                notice: AdminNotice? = nil) {
        self.columns = columns
        self.rows = rows
        self.commandTag = commandTag
        self.notice = notice
    }

    public var columnNames: [String] { columns.map(\.name) }

    /// The value of column `name` in row `row`.
    public func value(_ name: String, row: Int) -> String? {
        guard let i = columns.firstIndex(where: { $0.name == name }) else { return nil }
        return rows[row][i]
    }

    public static func == (a: ResultSet, b: ResultSet) -> Bool {
        a.columns.map(\.name) == b.columns.map(\.name) && a.columns.map(\.type) == b.columns.map(\.type)
            && a.rows == b.rows && a.commandTag == b.commandTag && a.notice == b.notice
    }
}

public enum AdminConsole {
    /// Keys that need a restart: SHOW CONFIG says changeable "no" for them, "yes" for the rest.
    public static let restartOnlyKeys: Set<String> = ["listen_addr", "listen_port", "workers"]

    /// The result of a SHOW command from a snapshot; PgBouncer's column names and order where PgBouncer has the
    /// command, plus Switchyard's extra columns at the END (clients: `pinned`; servers and pools: `backend`).
    /// nil for non-SHOW commands.
    public static func result(of command: AdminCommand, snapshot: AdminSnapshot) -> ResultSet? {
        switch command {
        case .showClients: return clients(snapshot)
        case .showServers: return servers(snapshot)
        case .showPools: return pools(snapshot)
        case .showConfig: return config(snapshot)
        case .showVersion: return ResultSet(columns: [("version", .text)], rows: [[snapshot.version]])
        case .showHelp:
            return ResultSet(columns: [], rows: [], notice: AdminNotice(message: "Console usage", detail: AdminParser.helpDetail))
        case .showLists: return lists(snapshot)
        case .showBackends:
            return ResultSet(columns: backendColumns, rows: snapshot.backends.map(\.cells))
        case .showStats: return ResultSet(columns: DatabaseStatsRow.columns, rows: snapshot.stats.map(\.cells))
        case .showQueries: return ResultSet(columns: QueryStatsRow.columns, rows: snapshot.queries.map(\.cells))
        case .showLatency: return ResultSet(columns: LatencyStatsRow.columns, rows: snapshot.latency.map(\.cells))
        case .pause, .resume, .reload, .shutdown: return nil
        }
    }

    // MARK: Column lists (PgBouncer src/admin.c socket_header, admin_show_pools, admin_show_config, ...)

    /// SHOW BACKENDS (Switchyard's own command).
    public static let backendColumns: [(name: String, type: ResultSet.ColumnType)] = [
        ("name", .text), ("host", .text), ("port", .int8), ("role", .text), ("in_recovery", .text), ("circuit", .text),
        ("failures", .int8), ("lsn", .text), ("lag_bytes", .int8), ("lag_seconds", .text), ("outstanding", .int8),
        ("weight", .int8), ("last_error", .text),
    ]

    /// PgBouncer's SHOW CLIENTS / SHOW SERVERS columns (socket_header, non-debug).
    public static let socketColumns: [(name: String, type: ResultSet.ColumnType)] = [
        ("type", .text), ("user", .text), ("database", .text), ("replication", .text), ("state", .text),
        ("addr", .text), ("port", .int8), ("local_addr", .text), ("local_port", .int8),
        ("connect_time", .text), ("request_time", .text),
        ("wait", .int8), ("wait_us", .int8), ("close_needed", .int8),
        ("ptr", .text), ("link", .text), ("remote_pid", .int8), ("tls", .text),
        ("application_name", .text), ("prepared_statements", .int8), ("id", .int8),
    ]
    public static let clientColumns = socketColumns + [("pinned", .text)]
    public static let serverColumns = socketColumns + [("backend", .text)]

    /// PgBouncer's SHOW POOLS columns, then `backend`.
    public static let poolColumns: [(name: String, type: ResultSet.ColumnType)] = [
        ("database", .text), ("user", .text),
        ("cl_active", .int8), ("cl_waiting", .int8), ("cl_active_cancel_req", .int8), ("cl_waiting_cancel_req", .int8),
        ("sv_active", .int8), ("sv_active_cancel", .int8), ("sv_being_canceled", .int8),
        ("sv_idle", .int8), ("sv_used", .int8), ("sv_tested", .int8), ("sv_login", .int8),
        ("maxwait", .int8), ("maxwait_us", .int8), ("pool_mode", .text), ("load_balance_hosts", .text),
        ("backend", .text),
    ]

    public static let configColumns: [(name: String, type: ResultSet.ColumnType)] = [
        ("key", .text), ("value", .text), ("default", .text), ("changeable", .text),
    ]

    public static let listColumns: [(name: String, type: ResultSet.ColumnType)] = [("list", .text), ("items", .int8)]

    // MARK: Rows

    /// PgBouncer prints socket pointers ("0x55d0c8a1b2c0"); Switchyard prints the connection id the same way.
    static func pointer(_ id: Int) -> String { "0x" + String(id, radix: 16) }

    private static func clients(_ s: AdminSnapshot) -> ResultSet {
        let serverByClient = Dictionary(s.servers.compactMap { sv in sv.linkedClientID.map { ($0, sv.id) } },
                                        uniquingKeysWith: { first, _ in first })
        let serverByPID = Dictionary(s.servers.map { ($0.remotePID, $0.id) }, uniquingKeysWith: { first, _ in first })
        let rows: [[String?]] = s.clients.map { c in
            let linkedServer = serverByClient[c.id] ?? c.linkedServerPID.flatMap { serverByPID[$0] }
            return [
                c.type, c.user, c.database, "none", c.state,
                c.addr, String(c.port), c.localAddr, String(c.localPort),
                c.connectTime, c.requestTime,
                String(c.wait), String(c.waitMicros), "0",
                // remote_pid is the peer's pid over Unix sockets in PgBouncer; clients here are TCP.
                pointer(c.id), linkedServer.map(pointer) ?? "", "0", c.tls,
                c.applicationName, String(c.preparedStatements), String(c.id),
                c.pinned,
            ]
        }
        return ResultSet(columns: clientColumns, rows: rows)
    }

    private static func servers(_ s: AdminSnapshot) -> ResultSet {
        let rows: [[String?]] = s.servers.map { sv in
            [
                sv.type, sv.user, sv.database, "none", sv.state,
                sv.addr, String(sv.port), sv.localAddr, String(sv.localPort),
                sv.connectTime, sv.requestTime,
                "0", "0", "0",
                pointer(sv.id), sv.linkedClientID.map(pointer) ?? "", String(sv.remotePID), sv.tls,
                sv.applicationName, String(sv.preparedStatements), String(sv.id),
                sv.backend,
            ]
        }
        return ResultSet(columns: serverColumns, rows: rows)
    }

    private static func pools(_ s: AdminSnapshot) -> ResultSet {
        let rows: [[String?]] = s.pools.map { p in
            [
                p.database, p.user,
                String(p.clActive), String(p.clWaiting), "0", "0",
                String(p.svActive), "0", "0",
                String(p.svIdle), String(p.svUsed), String(p.svTested), String(p.svLogin),
                String(p.maxWaitSeconds), String(p.maxWaitMicros), p.poolMode, nil,
                p.backend,
            ]
        }
        return ResultSet(columns: poolColumns, rows: rows)
    }

    private static func config(_ s: AdminSnapshot) -> ResultSet {
        let rows: [[String?]] = s.config.map { entry in
            let key = ConfigKeys.key(.proxy, entry.key)
            return [entry.key, entry.value, key?.defaultValue, restartOnlyKeys.contains(entry.key) ? "no" : "yes"]
        }
        return ResultSet(columns: configColumns, rows: rows)
    }

    /// PgBouncer's list names in its order; ones Switchyard has no counterpart for say 0.
    private static func lists(_ s: AdminSnapshot) -> ResultSet {
        let items: [(String, Int)] = [
            ("databases", Set(s.pools.map(\.database)).count),
            ("users", Set(s.pools.map(\.user)).count),
            ("peers", 0),
            ("pools", s.pools.count),
            ("peer_pools", 0),
            ("free_clients", 0),
            ("used_clients", s.clients.count),
            ("login_clients", s.clients.filter { $0.state == "login" }.count),
            ("free_servers", 0),
            ("used_servers", s.servers.count),
            ("dns_names", 0),
            ("dns_zones", 0),
            ("dns_queries", 0),
            ("dns_pending", 0),
        ]
        return ResultSet(columns: listColumns, rows: items.map { [$0.0, String($0.1)] })
    }

    // MARK: Wire bytes

    /// Wire bytes: [NoticeResponse] + RowDescription + DataRow* + CommandComplete (no ReadyForQuery: the caller adds it).
    public static func encode(_ rs: ResultSet) -> [UInt8] {
        var bytes: [UInt8] = []
        if let notice = rs.notice {
            bytes += ProxyMessages.error(severity: "NOTICE", code: "00000", message: notice.message,
                                         detail: notice.detail, notice: true)
        }
        var w = MessageWriter()
        if !rs.columns.isEmpty {
            w.begin(BackendMessageID.rowDescription.rawValue)
            w.writeInt16(Int16(rs.columns.count))
            for column in rs.columns {
                w.writeCString(column.name)
                w.writeInt32(0)  // table OID
                w.writeInt16(0)  // column number
                w.writeInt32(column.type.oid)
                w.writeInt16(column.type.size)
                w.writeInt32(-1)  // type modifier
                w.writeInt16(0)  // text format
            }
            w.finish()
        }
        for row in rs.rows {
            w.begin(BackendMessageID.dataRow.rawValue)
            w.writeInt16(Int16(row.count))
            for value in row {
                if let value {
                    let utf8 = Array(value.utf8)
                    w.writeInt32(Int32(utf8.count))
                    w.writeBytes(utf8)
                } else {
                    w.writeInt32(-1)
                }
            }
            w.finish()
        }
        return bytes + w.bytes + commandComplete(rs.commandTag)
    }

    /// CommandComplete alone for commands without rows (e.g. "RELOAD", "PAUSE", "RESUME", "SHUTDOWN").
    public static func commandComplete(_ tag: String) -> [UInt8] { ProxyMessages.commandComplete(tag) }

    /// An ErrorResponse (severity ERROR, the session stays open) for a refused statement.
    public static func error(_ e: AdminCommandError) -> [UInt8] {
        ProxyMessages.error(severity: "ERROR", code: e.sqlState, message: e.message)
    }
}
