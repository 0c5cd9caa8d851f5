// Admin console without sockets: statement parsing and permissions, SHOW result sets from a snapshot
// (column names checked against PgBouncer's src/admin.c), and wire bytes decoded back with FrameDecoder.

import XCTest

@testable import PGWire
@testable import ProxyCore

final class AdminTests: XCTestCase {
    // MARK: Parser

    func testParsesEveryCommandCaseInsensitivelyWithWhitespaceAndSemicolon() throws {
        let cases: [(String, AdminCommand)] = [
            ("SHOW CLIENTS", .showClients),
            ("show clients;", .showClients),
            ("  Show   Clients  ;  ", .showClients),
            ("\tSHOW\nservers\r\n", .showServers),
            ("show pools;", .showPools),
            ("SHOW CONFIG", .showConfig),
            ("show version", .showVersion),
            ("show help;", .showHelp),
            ("SHOW LISTS", .showLists),
            ("RELOAD", .reload),
            ("reload;", .reload),
            ("shutdown", .shutdown),
            ("PAUSE", .pause(nil)),
            ("pause app;", .pause("app")),
            ("PAUSE MyDb", .pause("MyDb")),
            ("pause \"my db\"", .pause("my db")),
            ("pause \"a\"\"b\";", .pause("a\"b")),
            ("RESUME", .resume(nil)),
            ("resume app_2 ;", .resume("app_2")),
        ]
        for (sql, expected) in cases {
            XCTAssertEqual(try AdminParser.parse(sql), expected, sql)
        }
    }

    func testRejectsUnknownAndMalformedStatements() {
        let invalid = [
            "SELECT 1 + 1", "SHOW", "SHOW nothing", "hello", "SHOW CLIENTS;;", "SHOW CLIENTS extra",
            "RELOAD now", "SHUTDOWN WAIT_FOR_CLIENTS", "PAUSE a b", "show clients; show pools", ";",
            "PAUSE \"unterminated", "PAUSE \"\"", "show-clients",
        ]
        for sql in invalid {
            XCTAssertThrowsError(try AdminParser.parse(sql), sql) { error in
                guard case .unknown(let message) = error as? AdminCommandError else { return XCTFail("\(sql): \(error)") }
                XCTAssertTrue(message.hasSuffix(", use SHOW HELP;"), message)
            }
        }
        XCTAssertThrowsError(try AdminParser.parse("  bogus ; ")) { error in
            XCTAssertEqual(error as? AdminCommandError, .unknown("invalid command 'bogus ;', use SHOW HELP;"))
        }
        // PgBouncer commands Switchyard does not have say so.
        XCTAssertThrowsError(try AdminParser.parse("SHOW DNS_HOSTS;")) { error in
            XCTAssertEqual(error as? AdminCommandError, .unknown("unsupported command 'SHOW DNS_HOSTS;', use SHOW HELP;"))
        }
        XCTAssertEqual(try AdminParser.parse("show stats;"), .showStats)
        XCTAssertThrowsError(try AdminParser.parse("suspend")) { error in
            XCTAssertEqual(error as? AdminCommandError, .unknown("unsupported command 'suspend', use SHOW HELP;"))
        }
    }

    func testReadOnlyClassificationAndAuthorization() throws {
        let readOnly: [AdminCommand] = [.showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists,
                                        .showBackends, .showStats, .showQueries, .showLatency]
        let writing: [AdminCommand] = [.pause(nil), .pause("db"), .resume(nil), .resume("db"), .reload, .shutdown]
        for c in readOnly {
            XCTAssertTrue(AdminParser.isReadOnly(c), "\(c)")
            XCTAssertNoThrow(try AdminParser.authorize(c, isAdminUser: false))
            XCTAssertEqual(c.commandTag, "SHOW")
        }
        for c in writing {
            XCTAssertFalse(AdminParser.isReadOnly(c), "\(c)")
            XCTAssertNoThrow(try AdminParser.authorize(c, isAdminUser: true))
            XCTAssertThrowsError(try AdminParser.authorize(c, isAdminUser: false)) { error in
                XCTAssertEqual(error as? AdminCommandError, .notAllowed("admin access needed"))
            }
        }
        XCTAssertEqual(try AdminParser.parse("show pools", isAdminUser: false), .showPools)
        XCTAssertThrowsError(try AdminParser.parse("reload", isAdminUser: false))
        XCTAssertEqual([AdminCommand.pause(nil), .resume(nil), .reload, .shutdown].map(\.commandTag),
                       ["PAUSE", "RESUME", "RELOAD", "SHUTDOWN"])
    }

    func testErrorResponseBytes() throws {
        let frames = try decode(AdminConsole.error(.notAllowed("admin access needed")))
        XCTAssertEqual(frames.map(\.type), [UInt8(ascii: "E")])
        guard case .error(let fields) = try BackendMessage(frames[0]) else { return XCTFail() }
        XCTAssertEqual(fields.severity, "ERROR")
        XCTAssertEqual(fields.sqlState, "08P01")
        XCTAssertEqual(fields.message, "admin access needed")
    }

    // MARK: Result sets

    /// SHOW CLIENTS / SHOW SERVERS columns of PgBouncer's socket_header() (src/admin.c, SKF_STD).
    static let pgbouncerSocketColumns = [
        "type", "user", "database", "replication", "state", "addr", "port", "local_addr", "local_port",
        "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls",
        "application_name", "prepared_statements", "id",
    ]
    /// SHOW POOLS columns of PgBouncer's admin_show_pools().
    static let pgbouncerPoolColumns = [
        "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
        "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
        "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts",
    ]

    let snapshot = AdminSnapshot(
        clients: [
            AdminClientRow(user: "app", database: "shop", state: "active", addr: "10.0.0.5", port: 51000,
                           localAddr: "10.0.0.1", localPort: 6432, connectTime: "2024-05-01 12:00:00 UTC",
                           requestTime: "2024-05-01 12:00:05 UTC", linkedServerPID: 4242, applicationName: "psql",
                           preparedStatements: 2, pinned: "listen", id: 17),
            AdminClientRow(user: "app", database: "shop", state: "waiting", addr: "10.0.0.6", port: 51001,
                           connectTime: "2024-05-01 12:00:01 UTC", requestTime: "2024-05-01 12:00:06 UTC",
                           wait: 3, waitMicros: 250, id: 18),
        ],
        servers: [
            AdminServerRow(user: "app", database: "shop", state: "active", addr: "10.0.1.1", port: 5432,
                           localAddr: "10.0.0.1", localPort: 40000, connectTime: "2024-05-01 11:00:00 UTC",
                           requestTime: "2024-05-01 12:00:05 UTC", remotePID: 4242, linkedClientID: 17,
                           preparedStatements: 3, id: 255, backend: "primary"),
            AdminServerRow(user: "app", database: "shop", state: "idle", addr: "10.0.2.1", port: 5432,
                           connectTime: "2024-05-01 11:00:00 UTC", requestTime: "2024-05-01 11:30:00 UTC",
                           remotePID: 5151, id: 256, backend: "replica1"),
        ],
        pools: [
            AdminPoolRow(database: "shop", user: "app", clActive: 1, clWaiting: 1, svActive: 1, svIdle: 0, svUsed: 0,
                         svTested: 0, svLogin: 0, maxWaitSeconds: 3, maxWaitMicros: 250, poolMode: "transaction",
                         backend: "primary"),
            AdminPoolRow(database: "shop", user: "app", svIdle: 1, poolMode: "transaction", backend: "replica1"),
        ],
        config: [(key: "listen_port", value: "6432"), (key: "pool_mode", value: "transaction"),
                 (key: "default_pool_size", value: "20")],
        version: "Switchyard 0.1.0", startTime: "2024-05-01 10:00:00 UTC")

    func testShowClientsHasPgBouncerColumnsThenPinned() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showClients, snapshot: snapshot))
        XCTAssertEqual(rs.columnNames, Self.pgbouncerSocketColumns + ["pinned"])
        XCTAssertEqual(rs.commandTag, "SHOW")
        XCTAssertEqual(rs.rows.count, 2)
        XCTAssertEqual(rs.rows[0], [
            "C", "app", "shop", "none", "active", "10.0.0.5", "51000", "10.0.0.1", "6432",
            "2024-05-01 12:00:00 UTC", "2024-05-01 12:00:05 UTC", "0", "0", "0",
            "0x11", "0xff", "0", "", "psql", "2", "17", "listen",
        ])
        XCTAssertEqual(rs.value("state", row: 1), "waiting")
        XCTAssertEqual(rs.value("wait", row: 1), "3")
        XCTAssertEqual(rs.value("wait_us", row: 1), "250")
        XCTAssertEqual(rs.value("link", row: 1), "")
        XCTAssertEqual(rs.rows[1].last, .some(nil), "unpinned client: pinned is NULL")
        XCTAssertTrue(rs.rows.allSatisfy { $0.count == rs.columns.count })
    }

    func testShowServersHasPgBouncerColumnsThenBackend() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showServers, snapshot: snapshot))
        XCTAssertEqual(rs.columnNames, Self.pgbouncerSocketColumns + ["backend"])
        XCTAssertEqual(rs.rows[0], [
            "S", "app", "shop", "none", "active", "10.0.1.1", "5432", "10.0.0.1", "40000",
            "2024-05-01 11:00:00 UTC", "2024-05-01 12:00:05 UTC", "0", "0", "0",
            "0xff", "0x11", "4242", "", "", "3", "255", "primary",
        ])
        XCTAssertEqual(rs.value("state", row: 1), "idle")
        XCTAssertEqual(rs.value("link", row: 1), "")
        XCTAssertEqual(rs.value("backend", row: 1), "replica1")
        // A client's link is its server's ptr and the other way round.
        let clients = try XCTUnwrap(AdminConsole.result(of: .showClients, snapshot: snapshot))
        XCTAssertEqual(clients.value("link", row: 0), rs.value("ptr", row: 0))
        XCTAssertEqual(rs.value("link", row: 0), clients.value("ptr", row: 0))
    }

    func testClientLinkFallsBackToServerPID() throws {
        var s = snapshot
        s.servers[0].linkedClientID = nil
        let rs = try XCTUnwrap(AdminConsole.result(of: .showClients, snapshot: s))
        XCTAssertEqual(rs.value("link", row: 0), "0xff")
    }

    func testShowPoolsHasPgBouncerColumnsThenBackend() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showPools, snapshot: snapshot))
        XCTAssertEqual(rs.columnNames, Self.pgbouncerPoolColumns + ["backend"])
        XCTAssertEqual(rs.rows, [
            ["shop", "app", "1", "1", "0", "0", "1", "0", "0", "0", "0", "0", "0", "3", "250", "transaction", nil, "primary"],
            ["shop", "app", "0", "0", "0", "0", "0", "0", "0", "1", "0", "0", "0", "0", "0", "transaction", nil, "replica1"],
        ])
        XCTAssertEqual(rs.columns.filter { $0.type == .text }.map(\.name),
                       ["database", "user", "pool_mode", "load_balance_hosts", "backend"])
    }

    func testShowConfigHasKeyValueDefaultChangeable() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showConfig, snapshot: snapshot))
        XCTAssertEqual(rs.columnNames, ["key", "value", "default", "changeable"])
        XCTAssertEqual(rs.rows, [
            ["listen_port", "6432", ConfigKeys.key(.proxy, "listen_port")?.defaultValue, "no"],
            ["pool_mode", "transaction", "session", "yes"],
            ["default_pool_size", "20", ConfigKeys.key(.proxy, "default_pool_size")?.defaultValue, "yes"],
        ])
    }

    func testShowConfigFromTheRealKeyTable() throws {
        let values = ConfigKeys.currentValues(Config())
        let rs = try XCTUnwrap(AdminConsole.result(of: .showConfig, snapshot: AdminSnapshot(config: values, version: "v")))
        XCTAssertEqual(rs.rows.count, ConfigKeys.keys(in: .proxy).count)
        for row in rs.rows {
            XCTAssertEqual(row[1], row[2], "defaults: value equals default for \(row[0] ?? "")")
            XCTAssertEqual(row[3], ["listen_addr", "listen_port", "workers"].contains(row[0]) ? "no" : "yes")
        }
    }

    func testShowVersionListsAndHelp() throws {
        let version = try XCTUnwrap(AdminConsole.result(of: .showVersion, snapshot: snapshot))
        XCTAssertEqual(version.columnNames, ["version"])
        XCTAssertEqual(version.rows, [["Switchyard 0.1.0"]])

        let lists = try XCTUnwrap(AdminConsole.result(of: .showLists, snapshot: snapshot))
        XCTAssertEqual(lists.columnNames, ["list", "items"])
        XCTAssertEqual(lists.columns.map(\.type), [.text, .int8])
        XCTAssertEqual(lists.rows.map { $0[0] ?? "" }, [
            "databases", "users", "peers", "pools", "peer_pools", "free_clients", "used_clients", "login_clients",
            "free_servers", "used_servers", "dns_names", "dns_zones", "dns_queries", "dns_pending",
        ])
        let items = Dictionary(uniqueKeysWithValues: lists.rows.map { ($0[0]!, $0[1]!) })
        XCTAssertEqual(items["databases"], "1")
        XCTAssertEqual(items["pools"], "2")
        XCTAssertEqual(items["used_clients"], "2")
        XCTAssertEqual(items["used_servers"], "2")

        let help = try XCTUnwrap(AdminConsole.result(of: .showHelp, snapshot: snapshot))
        XCTAssertEqual(help.columnNames, [])
        XCTAssertEqual(help.notice?.message, "Console usage")
        XCTAssertEqual(help.notice?.detail,
                       "\n\tSHOW HELP|CONFIG|POOLS|CLIENTS|SERVERS|VERSION|LISTS|BACKENDS|STATS|QUERIES|LATENCY\n\tRELOAD\n\tPAUSE [<db>]\n\tRESUME [<db>]\n\tSHUTDOWN")

        for c in [AdminCommand.pause(nil), .resume("x"), .reload, .shutdown] {
            XCTAssertNil(AdminConsole.result(of: c, snapshot: snapshot))
        }
    }

    // MARK: Wire bytes

    func decode(_ bytes: [UInt8]) throws -> [Frame] {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        var frames: [Frame] = []
        while let f = try decoder.next() { frames.append(f) }
        XCTAssertEqual(decoder.bufferedCount, 0)
        return frames
    }

    /// RowDescription fields: (name, type OID, type size).
    func fields(_ frame: Frame) throws -> [(String, Int32, Int16)] {
        var r = MessageReader(frame.payload)
        let count = try XCTUnwrap(r.readInt16())
        var out: [(String, Int32, Int16)] = []
        for _ in 0..<count {
            let name = try XCTUnwrap(r.readCString())
            XCTAssertEqual(r.readInt32(), 0)
            XCTAssertEqual(r.readInt16(), 0)
            let oid = try XCTUnwrap(r.readInt32())
            let size = try XCTUnwrap(r.readInt16())
            XCTAssertEqual(r.readInt32(), -1)
            XCTAssertEqual(r.readInt16(), 0)
            out.append((name, oid, size))
        }
        XCTAssertEqual(r.remaining, 0)
        return out
    }

    /// DataRow values; nil for length -1.
    func values(_ frame: Frame) throws -> [String?] {
        var r = MessageReader(frame.payload)
        let count = try XCTUnwrap(r.readInt16())
        var out: [String?] = []
        for _ in 0..<count {
            let length = try XCTUnwrap(r.readInt32())
            if length == -1 {
                out.append(nil)
            } else {
                out.append(String(decoding: try XCTUnwrap(r.readBytes(Int(length))), as: UTF8.self))
            }
        }
        XCTAssertEqual(r.remaining, 0)
        return out
    }

    func testEncodedPoolsDecodeBack() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showPools, snapshot: snapshot))
        let frames = try decode(AdminConsole.encode(rs))
        XCTAssertEqual(frames.map { Character(Unicode.Scalar($0.type)) }, ["T", "D", "D", "C"])
        let desc = try fields(frames[0])
        XCTAssertEqual(desc.count, 18)
        XCTAssertEqual(desc.map(\.0), rs.columnNames)
        XCTAssertEqual(desc.map(\.1), rs.columns.map { $0.type == .text ? 25 : 20 })
        XCTAssertEqual(desc.map(\.2), rs.columns.map { $0.type == .text ? -1 : 8 })
        XCTAssertEqual(try values(frames[1]), rs.rows[0])
        XCTAssertEqual(try values(frames[2]), rs.rows[1])
        XCTAssertNil(try values(frames[1])[16], "load_balance_hosts is NULL (length -1)")
        XCTAssertEqual(frames[3].payload, Array("SHOW".utf8) + [0])
    }

    func testEncodedClientsCarryNullsAndUTF8() throws {
        var s = snapshot
        s.clients[0].applicationName = "Zürich ✓"
        let rs = try XCTUnwrap(AdminConsole.result(of: .showClients, snapshot: s))
        let bytes = AdminConsole.encode(rs)
        let frames = try decode(bytes)
        XCTAssertEqual(frames.map(\.type), [84, 68, 68, 67])
        XCTAssertEqual(try fields(frames[0]).count, 22)
        XCTAssertEqual(try values(frames[1])[18], "Zürich ✓")
        XCTAssertEqual(try values(frames[2]).last, .some(nil))
        // The NULL is written as length -1 with no bytes after it: the row ends there.
        XCTAssertEqual(Array(frames[2].payload.suffix(4)), [0xff, 0xff, 0xff, 0xff])
        // Split at every offset gives the same frames.
        for cut in stride(from: 0, through: bytes.count, by: 7) {
            var decoder = FrameDecoder()
            var got: [Frame] = []
            for part in [Array(bytes[..<cut]), Array(bytes[cut...])] {
                decoder.append(part)
                while let f = try decoder.next() { got.append(f) }
            }
            XCTAssertEqual(got, frames, "split at \(cut)")
        }
    }

    func testEncodedHelpIsNoticeThenCommandComplete() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showHelp, snapshot: snapshot))
        let frames = try decode(AdminConsole.encode(rs))
        XCTAssertEqual(frames.map(\.type), [UInt8(ascii: "N"), UInt8(ascii: "C")])
        guard case .notice(let notice) = try BackendMessage(frames[0]) else { return XCTFail() }
        XCTAssertEqual(notice.message, "Console usage")
        XCTAssertEqual(notice.sqlState, "00000")
        XCTAssertEqual(notice.fields[UInt8(ascii: "D")], rs.notice?.detail)
    }

    func testEncodedEmptyResultAndCommandComplete() throws {
        let rs = try XCTUnwrap(AdminConsole.result(of: .showClients, snapshot: AdminSnapshot(version: "v")))
        let frames = try decode(AdminConsole.encode(rs))
        XCTAssertEqual(frames.map(\.type), [UInt8(ascii: "T"), UInt8(ascii: "C")])
        XCTAssertEqual(AdminConsole.commandComplete("RELOAD"), [UInt8(ascii: "C"), 0, 0, 0, 11] + Array("RELOAD".utf8) + [0])
    }
}
