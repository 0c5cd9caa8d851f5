// Tests for the proxy.conf parser and the key table: defaults, syntax, units, paths, errors, docs, SHOW CONFIG.
// No files or sockets except one load() test in a temp folder.

import Foundation
import XCTest

@testable import ProxyCore

final class ConfigParserTests: XCTestCase {
    /// The example from the issue.
    static let example = """
        [proxy]
        listen_addr = 127.0.0.1
        listen_port = 6432
        pool_mode = session            # session now; transaction comes in the next issue
        auth_type = scram-sha-256      # trust | md5 | scram-sha-256
        auth_file = userlist.txt       # lines of "user" "secret"
        default_pool_size = 20
        max_client_conn = 10000
        server_reset_query = DISCARD ALL
        admin_users = admin
        log_level = info

        [primary]
        host = 127.0.0.1
        port = 5432

        [replica.r1]                   # any number of replicas
        host = 127.0.0.1
        port = 5433
        weight = 1
        """

    /// Parses `text` (with a [primary] appended unless `primary` is false) against /etc/switchyard.
    private func parse(_ text: String, primary: Bool = true) throws -> Config {
        let full = primary ? text + "\n[primary]\nhost = db\n" : text
        return try ConfigParser.parse(full, baseDirectory: "/etc/switchyard")
    }

    /// The errors `text` produces (fails if it parses).
    private func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [ConfigError] {
        do {
            _ = try ConfigParser.parse(text, baseDirectory: "/etc/switchyard")
            XCTFail("expected errors", file: file, line: line)
            return []
        } catch let error as ConfigErrors {
            return error.errors
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return []
        }
    }

    /// The single error `text` produces, as its description.
    private func error(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        let all = errors(text, file: file, line: line)
        XCTAssertEqual(all.count, 1, "\(all)", file: file, line: line)
        return all.first?.description ?? ""
    }

    // MARK: Defaults and the example

    func testDefaults() throws {
        let config = Config()
        XCTAssertEqual(config.proxy.listenAddr, "127.0.0.1")
        XCTAssertEqual(config.proxy.listenPort, 6432)
        XCTAssertEqual(config.proxy.poolMode, .session)
        XCTAssertEqual(config.proxy.authType, .scramSHA256)
        XCTAssertNil(config.proxy.authFile)
        XCTAssertEqual(config.proxy.defaultPoolSize, 20)
        XCTAssertEqual(config.proxy.maxClientConn, 10000)
        XCTAssertEqual(config.proxy.serverResetQuery, "DISCARD ALL")
        XCTAssertEqual(config.proxy.adminUsers, [])
        XCTAssertEqual(config.proxy.statsUsers, [])
        XCTAssertEqual(config.proxy.logLevel, .info)
        XCTAssertEqual(config.proxy.serverConnectTimeout, 15)
        XCTAssertEqual(config.proxy.clientLoginTimeout, 60)
        XCTAssertEqual(config.proxy.queryWaitTimeout, 120)
        XCTAssertEqual(config.proxy.maxPacketSize, 1_073_741_824)
        XCTAssertEqual(config.proxy.workers, 0)
        XCTAssertNil(config.proxy.pidFile)
        XCTAssertEqual(config.primary, BackendConfig(name: "primary", role: .primary, host: "127.0.0.1", port: 5432, weight: 1))
        XCTAssertEqual(config.replicas, [])
        XCTAssertEqual(config.users, [:])
        XCTAssertNil(config.path)

        // A file with only [primary] host gives the same settings.
        let parsed = try ConfigParser.parse("[primary]\nhost = 127.0.0.1\n", baseDirectory: "/")
        XCTAssertEqual(parsed, config)
    }

    func testExampleFromIssue() throws {
        let config = try ConfigParser.parse(Self.example, baseDirectory: "/etc/switchyard")
        var expected = Config()
        expected.proxy.authFile = "/etc/switchyard/userlist.txt"
        expected.proxy.adminUsers = ["admin"]
        expected.replicas = [BackendConfig(name: "r1", role: .replica, host: "127.0.0.1", port: 5433, weight: 1)]
        XCTAssertEqual(config, expected)
    }

    func testEveryKeySet() throws {
        let config = try ConfigParser.parse("""
            [proxy]
            listen_addr = 0.0.0.0
            listen_port = 7000
            pool_mode = transaction
            auth_type = md5
            auth_file = /abs/users.txt
            default_pool_size = 5
            max_client_conn = 100
            server_reset_query =
            admin_users = alice, bob ,,carol
            stats_users = dave
            log_level = debug
            server_connect_timeout = 500ms
            client_login_timeout = 2min
            query_wait_timeout = 0
            max_packet_size = 64MB
            workers = 1
            pid_file = run/switchyard.pid

            [primary]
            host = pg1
            port = 5444
            weight = 0

            [replica.b]
            host = pg3
            [replica.a]
            host = pg2
            weight = 3

            [user.app]
            pool_mode = session
            pool_size = 50
            [user.report]
            pool_size = 2
            """, baseDirectory: "/srv/sy")
        let p = config.proxy
        XCTAssertEqual(p.listenAddr, "0.0.0.0")
        XCTAssertEqual(p.listenPort, 7000)
        XCTAssertEqual(p.poolMode, .transaction)
        XCTAssertEqual(p.authType, .md5)
        XCTAssertEqual(p.authFile, "/abs/users.txt")
        XCTAssertEqual(p.defaultPoolSize, 5)
        XCTAssertEqual(p.maxClientConn, 100)
        XCTAssertEqual(p.serverResetQuery, "")
        XCTAssertEqual(p.adminUsers, ["alice", "bob", "carol"])
        XCTAssertEqual(p.statsUsers, ["dave"])
        XCTAssertEqual(p.logLevel, .debug)
        XCTAssertEqual(p.serverConnectTimeout, 0.5)
        XCTAssertEqual(p.clientLoginTimeout, 120)
        XCTAssertEqual(p.queryWaitTimeout, 0)
        XCTAssertEqual(p.maxPacketSize, 64 << 20)
        XCTAssertEqual(p.workers, 1)
        XCTAssertEqual(p.pidFile, "/srv/sy/run/switchyard.pid")
        XCTAssertEqual(config.primary, BackendConfig(name: "primary", role: .primary, host: "pg1", port: 5444, weight: 0))
        XCTAssertEqual(config.replicas.map(\.name), ["b", "a"], "file order")
        XCTAssertEqual(config.replicas[0], BackendConfig(name: "b", role: .replica, host: "pg3", port: 5432, weight: 1))
        XCTAssertEqual(config.replicas[1].weight, 3)
        XCTAssertEqual(config.users["app"], UserConfig(name: "app", poolMode: .session, poolSize: 50))
        XCTAssertEqual(config.users["report"], UserConfig(name: "report", poolMode: nil, poolSize: 2))
        XCTAssertEqual(config.poolMode(forUser: "app"), .session)
        XCTAssertEqual(config.poolMode(forUser: "report"), .transaction)
        XCTAssertEqual(config.poolSize(forUser: "report"), 2)
        XCTAssertEqual(config.poolSize(forUser: "nobody"), 5)
        XCTAssertEqual(config.backends.map(\.name), ["primary", "b", "a"])
    }

    // MARK: Syntax

    func testComments() throws {
        let config = try parse("""
            # full-line hash comment
            ; full-line semicolon comment
              # indented comment
            [proxy] ; comment after a header
            listen_addr = host#nospace         # trailing hash
            server_reset_query = SELECT 1 ; trailing semicolon
            admin_users = a;b
            """)
        XCTAssertEqual(config.proxy.listenAddr, "host#nospace")
        XCTAssertEqual(config.proxy.serverResetQuery, "SELECT 1")
        XCTAssertEqual(config.proxy.adminUsers, ["a;b"])
        // "warning#x" is one bare word, so it is a bad enum value, not a value and a comment.
        XCTAssertEqual(error("[proxy]\nlog_level=warning#x\n[primary]\nhost=h"),
                       "proxy.conf:2: [proxy] log_level: expected one of trace, debug, info, notice, warning, error, critical, got 'warning#x'")
    }

    func testQuotedValues() throws {
        let config = try parse("""
            [proxy]
            server_reset_query = 'SELECT 1; -- # not a comment'   # real comment
            listen_addr = 'it''s'
            admin_users = ''
            """)
        XCTAssertEqual(config.proxy.serverResetQuery, "SELECT 1; -- # not a comment")
        XCTAssertEqual(config.proxy.listenAddr, "it's")
        XCTAssertEqual(config.proxy.adminUsers, [])
        XCTAssertEqual(error("[proxy]\nserver_reset_query = 'open\n[primary]\nhost=h"),
                       "proxy.conf:2: unterminated quoted value (missing closing ')")
        XCTAssertEqual(error("[proxy]\nserver_reset_query = 'a' b\n[primary]\nhost=h"),
                       "proxy.conf:2: unexpected text 'b' after quoted value")
    }

    func testWhitespaceCRLFAndKeyCase() throws {
        let config = try ConfigParser.parse(
            "[proxy]\r\n\tLISTEN_PORT\t=\t7001  \r\n\r\n[primary]\r\nhost=h\r\n", baseDirectory: "/")
        XCTAssertEqual(config.proxy.listenPort, 7001)
        XCTAssertEqual(config.primary.host, "h")
    }

    // MARK: Units

    func testDurations() throws {
        let cases: [(String, Double)] = [
            ("500ms", 0.5), ("30s", 30), ("5min", 300), ("7", 7), ("1h", 3600), ("2d", 172_800),
            ("250us", 0.00025), ("1.5s", 1.5), ("0", 0), ("10 s", 10), ("3MIN", 180),
        ]
        for (raw, seconds) in cases {
            let config = try parse("[proxy]\nserver_connect_timeout = \(raw)")
            XCTAssertEqual(config.proxy.serverConnectTimeout, seconds, accuracy: 1e-12, raw)
        }
        for bad in ["5m", "abc", "-1s", "s", "1.2.3s", "10 sec"] {
            XCTAssertEqual(error("[proxy]\nquery_wait_timeout = \(bad)\n[primary]\nhost=h"),
                           "proxy.conf:2: [proxy] query_wait_timeout: expected a duration like 500ms, 30s or 5min (units us, ms, s, min, h, d), got '\(bad)'")
        }
    }

    func testDurationRendering() {
        XCTAssertEqual(ConfigUnits.renderDuration(15), "15s")
        XCTAssertEqual(ConfigUnits.renderDuration(0.5), "500ms")
        XCTAssertEqual(ConfigUnits.renderDuration(0), "0s")
        XCTAssertEqual(ConfigUnits.renderDuration(300), "5min")
        XCTAssertEqual(ConfigUnits.renderDuration(90), "90s")
        XCTAssertEqual(ConfigUnits.renderDuration(3600), "1h")
        XCTAssertEqual(ConfigUnits.renderDuration(0.00025), "250us")
        // Whatever is rendered parses back to the same value.
        for seconds in [15, 0.5, 0, 300, 90, 3600, 86400, 0.00025, 1.5] {
            XCTAssertEqual(ConfigUnits.parseDuration(ConfigUnits.renderDuration(seconds)), seconds)
        }
    }

    func testSizes() throws {
        let cases: [(String, Int)] = [
            ("16384", 16384), ("16kB", 16384), ("1MB", 1 << 20), ("2GB", 2 << 30), ("20000B", 20000), ("32KB", 32768),
        ]
        for (raw, bytes) in cases {
            let config = try parse("[proxy]\nmax_packet_size = \(raw)")
            XCTAssertEqual(config.proxy.maxPacketSize, bytes, raw)
        }
        for bad in ["1kb2", "1.5MB", "1TB", "-5", "MB", "16383", "1kB", "99999999999999GB"] {
            XCTAssertEqual(error("[proxy]\nmax_packet_size = \(bad)\n[primary]\nhost=h"),
                           "proxy.conf:2: [proxy] max_packet_size: expected a size of at least 16kB (units B, kB, MB, GB), got '\(bad)'")
        }
        XCTAssertEqual(ConfigUnits.renderSize(1 << 30), "1GB")
        XCTAssertEqual(ConfigUnits.renderSize(1000), "1000B")
        XCTAssertEqual(ConfigUnits.renderSize(3 << 10), "3kB")
    }

    // MARK: Paths

    func testRelativePathsResolveAgainstBaseDirectory() throws {
        let cases: [(String, String)] = [
            ("userlist.txt", "/etc/switchyard/userlist.txt"),
            ("./auth/users.txt", "/etc/switchyard/auth/users.txt"),
            ("../shared/users.txt", "/etc/shared/users.txt"),
            ("/var/lib/users.txt", "/var/lib/users.txt"),
        ]
        for (raw, resolved) in cases {
            let config = try parse("[proxy]\nauth_file = \(raw)")
            XCTAssertEqual(config.proxy.authFile, resolved, raw)
        }
        XCTAssertNil(try parse("[proxy]\nauth_file =").proxy.authFile)
        XCTAssertEqual(ConfigPath.directory(of: "/etc/switchyard/proxy.conf"), "/etc/switchyard")
        XCTAssertEqual(ConfigPath.directory(of: "/proxy.conf"), "/")
        XCTAssertEqual(ConfigPath.directory(of: "proxy.conf"), ".")
    }

    func testLoadFromFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-config-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("proxy.conf").path
        try Self.example.write(toFile: file, atomically: true, encoding: .utf8)

        let config = try ConfigParser.load(path: file)
        XCTAssertEqual(config.path, file)
        XCTAssertEqual(config.proxy.authFile, folder.appendingPathComponent("userlist.txt").path)

        let missing = folder.appendingPathComponent("nope.conf").path
        XCTAssertThrowsError(try ConfigParser.load(path: missing)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.errors, [ConfigError(file: missing, line: nil, message: "file not found")])
        }

        try "[proxy]\nlisten_port = abc\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConfigParser.load(path: file)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.errors.map(\.description), [
                "\(file):2: [proxy] listen_port: expected an integer from 1 to 65535, got 'abc'",
                "\(file): missing required section [primary]",
            ])
        }
    }

    // MARK: Errors

    func testBadInteger() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_port = abc"),
                       "proxy.conf:4: [proxy] listen_port: expected an integer from 1 to 65535, got 'abc'")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_port = 0"),
                       "proxy.conf:4: [proxy] listen_port: expected an integer from 1 to 65535, got '0'")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_port = 65536"),
                       "proxy.conf:4: [proxy] listen_port: expected an integer from 1 to 65535, got '65536'")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\ndefault_pool_size = 0"),
                       "proxy.conf:4: [proxy] default_pool_size: expected an integer >= 1, got '0'")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nworkers = 65"),
                       "proxy.conf:4: [proxy] workers: expected an integer from 0 to 64, got '65'")
        XCTAssertEqual(error("[primary]\nhost = h\nweight = -1"),
                       "proxy.conf:3: [primary] weight: expected an integer >= 0, got '-1'")
        XCTAssertEqual(error("[primary]\nhost = h\n[replica.r2]\nhost = h\nport = 5o"),
                       "proxy.conf:5: [replica.r2] port: expected an integer from 1 to 65535, got '5o'")
        XCTAssertEqual(error("[primary]\nhost = h\n[user.bob]\npool_size = 0"),
                       "proxy.conf:4: [user.bob] pool_size: expected an integer >= 1, got '0'")
    }

    func testBadEnum() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nauth_type = plain"),
                       "proxy.conf:4: [proxy] auth_type: expected one of trust, md5, scram-sha-256, cert, got 'plain'")
        XCTAssertEqual(error("[primary]\nhost = h\n[user.x]\npool_mode = statement"),
                       "proxy.conf:4: [user.x] pool_mode: expected one of session, transaction, got 'statement'")
    }

    func testEmptyRequiredString() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_addr ="),
                       "proxy.conf:4: [proxy] listen_addr: expected a non-empty string, got ''")
    }

    func testUnknownKey() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_prot = 1"),
                       "proxy.conf:4: [proxy] listen_prot: unknown key (did you mean 'listen_port'?)")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nbananas = 1"),
                       "proxy.conf:4: [proxy] bananas: unknown key")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nweight = 1"),
                       "proxy.conf:4: [proxy] weight: unknown key (it belongs in [primary], [replica.NAME])")
        XCTAssertEqual(error("[primary]\nhost = h\n[user.u]\ndefault_pool_size = 1"),
                       "proxy.conf:4: [user.u] default_pool_size: unknown key (it belongs in [proxy])")
    }

    func testDuplicateKey() {
        XCTAssertEqual(error("[proxy]\nlisten_port = 1\n\nlisten_port = 2\n[primary]\nhost = h"),
                       "proxy.conf:4: [proxy] listen_port: duplicate key (first set on line 2)")
        // The same key in different sections is fine.
        XCTAssertNoThrow(try parse("[replica.a]\nhost = a\n[replica.b]\nhost = b"))
    }

    func testDuplicateSection() {
        XCTAssertEqual(error("[primary]\nhost = h\n[replica.a]\nhost = a\n[replica.a]\nhost = b"),
                       "proxy.conf:5: duplicate section [replica.a] (first on line 3)")
    }

    func testUnknownSection() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxi]\nlisten_port = 1\nwhatever = 2"),
                       "proxy.conf:3: unknown section [proxi]; expected [proxy], [primary], [replica.NAME], [user.NAME] or [database.NAME]")
        XCTAssertEqual(error("[primary]\nhost = h\n[replica.]\nhost = x"),
                       "proxy.conf:3: invalid replica name in [replica.]: use letters, digits, '_' or '-'")
        XCTAssertEqual(error("[primary]\nhost = h\n[user.]"), "proxy.conf:3: missing user name in [user.]")
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy"), "proxy.conf:3: malformed section header '[proxy': missing ']'")
    }

    func testMissingPrimary() {
        let all = errors("[proxy]\nlisten_port = 6432\n")
        XCTAssertEqual(all, [ConfigError(file: "proxy.conf", line: nil, message: "missing required section [primary]")])
        XCTAssertEqual(all.first?.description, "proxy.conf: missing required section [primary]")
    }

    func testMissingHost() {
        XCTAssertEqual(error("[primary]\nport = 5432"), "proxy.conf:1: [primary] host: required key is missing")
        XCTAssertEqual(error("[primary]\nhost = h\n\n[replica.r9]\nport = 1"),
                       "proxy.conf:4: [replica.r9] host: required key is missing")
    }

    func testLineWithoutEquals() {
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nlisten_port 6432"),
                       "proxy.conf:4: expected 'key = value', '[section]' or a comment, got 'listen_port 6432'")
        XCTAssertEqual(error("[primary]\nhost = h\n = 5"), "proxy.conf:3: missing key name before '='")
    }

    func testKeyOutsideSection() {
        XCTAssertEqual(error("listen_port = 6432\n[primary]\nhost = h"),
                       "proxy.conf:1: listen_port: key outside of any section (put it under [proxy], [primary], ...)")
    }

    func testAllErrorsCollectedInLineOrder() {
        let text = """
            stray = 1
            [proxy]
            listen_port = abc
            pool_mode = statement
            listen_port = 2
            nope = 3
            garbage line
            [mystery]
            x = 1
            [replica.r1]
            port = 5433
            """
        let all = errors(text)
        XCTAssertEqual(all.map(\.line), [1, 3, 4, 5, 6, 7, 8, nil, 10])
        XCTAssertEqual(all.map(\.description), [
            "proxy.conf:1: stray: key outside of any section (put it under [proxy], [primary], ...)",
            "proxy.conf:3: [proxy] listen_port: expected an integer from 1 to 65535, got 'abc'",
            "proxy.conf:4: [proxy] pool_mode: expected one of session, transaction, got 'statement'",
            "proxy.conf:5: [proxy] listen_port: duplicate key (first set on line 3)",
            "proxy.conf:6: [proxy] nope: unknown key",
            "proxy.conf:7: expected 'key = value', '[section]' or a comment, got 'garbage line'",
            "proxy.conf:8: unknown section [mystery]; expected [proxy], [primary], [replica.NAME], [user.NAME] or [database.NAME]",
            "proxy.conf: missing required section [primary]",
            "proxy.conf:10: [replica.r1] host: required key is missing",
        ])
        do {
            _ = try ConfigParser.parse(text, file: "/etc/sy.conf", baseDirectory: "/")
        } catch let error as ConfigErrors {
            XCTAssertEqual(error.description.split(separator: "\n").count, 9)
            XCTAssertTrue(error.description.hasPrefix("/etc/sy.conf:1: stray"))
        } catch {
            XCTFail("\(error)")
        }
    }

    // MARK: Statement timeouts

    func testStatementTimeoutPrecedence() throws {
        let config = try ConfigParser.parse("""
            [proxy]
            statement_timeout = 5s
            replica_statement_timeout = 2s
            log_sample_rate = 0.25
            [primary]
            host = db
            [user.report]
            statement_timeout = 30s
            [database.analytics]
            statement_timeout = 0
            """, baseDirectory: "/")
        XCTAssertEqual(config.statementTimeout(user: "app", database: "shop", role: .primary), 5)
        XCTAssertEqual(config.statementTimeout(user: "app", database: "shop", role: .replica), 2)
        XCTAssertEqual(config.statementTimeout(user: "app", database: "analytics", role: .replica), 0)
        XCTAssertEqual(config.statementTimeout(user: "report", database: "analytics", role: .primary), 30)
        XCTAssertEqual(config.proxy.logSampleRate, 0.25)
        XCTAssertThrowsError(try ConfigParser.parse("[proxy]\nlog_sample_rate = 2\n[primary]\nhost = db\n", baseDirectory: "/"))
        XCTAssertThrowsError(try ConfigParser.parse("[primary]\nhost = db\n[database.x]\npool_size = 3\n", baseDirectory: "/"))
    }

    // MARK: TLS

    func testTLSKeys() throws {
        let config = try ConfigParser.parse("""
            [proxy]
            client_tls_sslmode = verify-full
            client_tls_cert_file = certs/proxy.crt
            client_tls_key_file = certs/proxy.key
            client_tls_ca_file = /etc/ssl/ca.pem
            client_tls_protocols = tlsv1.3
            client_tls_ciphers = HIGH:!aNULL
            server_tls_sslmode = require
            server_tls_ca_file = server-ca.pem
            server_tls_protocols = secure
            auth_type = cert
            [primary]
            host = db.example.com
            server_tls_sslmode = verify-full
            [replica.r1]
            host = 10.0.0.2
            server_tls_ca_file = other-ca.pem
            server_tls_cert_file = me.crt
            server_tls_key_file = me.key
            """, baseDirectory: "/etc/switchyard")
        XCTAssertEqual(config.proxy.clientTLSSSLMode, .verifyFull)
        XCTAssertEqual(config.proxy.clientTLSCertFile, "/etc/switchyard/certs/proxy.crt")
        XCTAssertEqual(config.proxy.clientTLSCAFile, "/etc/ssl/ca.pem")
        XCTAssertEqual(config.proxy.clientTLSProtocols, TLSProtocols(lowest: .tls1_3, highest: .tls1_3))
        XCTAssertEqual(config.proxy.clientTLSCiphers, "HIGH:!aNULL")
        XCTAssertEqual(config.proxy.authType, .cert)
        XCTAssertEqual(config.serverTLS(for: config.primary),
                       ServerTLSSettings(mode: .verifyFull, caFile: "/etc/switchyard/server-ca.pem"))
        XCTAssertEqual(config.serverTLS(for: config.replicas[0]),
                       ServerTLSSettings(mode: .require, caFile: "/etc/switchyard/other-ca.pem",
                                         certFile: "/etc/switchyard/me.crt", keyFile: "/etc/switchyard/me.key"))
        let shown = Dictionary(uniqueKeysWithValues: ConfigKeys.currentValues(config).map { ($0.key, $0.value) })
        XCTAssertEqual(shown["client_tls_protocols"], "tlsv1.3")
        XCTAssertEqual(shown["server_tls_protocols"], "tlsv1.2,tlsv1.3")
    }

    func testTLSDefaultsAreOff() throws {
        let config = try parse("")
        XCTAssertEqual(config.proxy.clientTLSSSLMode, .disable)
        XCTAssertEqual(config.serverTLS(for: config.primary).mode, .disable)
        XCTAssertEqual(config.proxy.clientTLSProtocols, .secure)
    }

    func testTLSProtocolLists() throws {
        XCTAssertEqual(try parse("[proxy]\nclient_tls_protocols = all").proxy.clientTLSProtocols, TLSProtocols(lowest: .tls1_0, highest: .tls1_3))
        XCTAssertEqual(try parse("[proxy]\nclient_tls_protocols = tlsv1.2, tlsv1.1").proxy.clientTLSProtocols, TLSProtocols(lowest: .tls1_1, highest: .tls1_2))
        XCTAssertEqual(error("[primary]\nhost = h\n[proxy]\nclient_tls_protocols = tlsv1.1,tlsv1.3"),
                       "proxy.conf:4: [proxy] client_tls_protocols: expected TLS versions (tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure, all) forming a contiguous range, got 'tlsv1.1,tlsv1.3'")
        XCTAssertEqual(errors("[primary]\nhost = h\n[proxy]\nserver_tls_protocols = sslv3").count, 1)
    }

    func testTLSKeysThatGoTogether() {
        XCTAssertEqual(error("[proxy]\nclient_tls_sslmode = require\n[primary]\nhost = h"),
                       "proxy.conf:2: [proxy] client_tls_sslmode = require needs client_tls_cert_file and client_tls_key_file")
        XCTAssertEqual(error("[proxy]\nclient_tls_sslmode = verify-ca\nclient_tls_cert_file = a\nclient_tls_key_file = b\n[primary]\nhost = h"),
                       "proxy.conf:2: [proxy] client_tls_sslmode = verify-ca needs client_tls_ca_file (to verify client certificates)")
        XCTAssertEqual(error("[proxy]\nauth_type = cert\n[primary]\nhost = h"),
                       "proxy.conf:2: [proxy] auth_type = cert needs client_tls_sslmode other than disable and client_tls_ca_file")
        XCTAssertEqual(error("[proxy]\nclient_tls_cert_file = a\n[primary]\nhost = h"),
                       "proxy.conf:2: [proxy] client_tls_cert_file and client_tls_key_file go together")
        XCTAssertEqual(error("[primary]\nhost = h\nserver_tls_key_file = k"),
                       "proxy.conf:3: [primary] server_tls_cert_file and server_tls_key_file go together")
        XCTAssertEqual(error("[primary]\nhost = h\nserver_tls_sslmode = verify"),
                       "proxy.conf:3: [primary] server_tls_sslmode: expected one of disable, prefer, require, verify-ca, verify-full, got 'verify'")
    }

    // MARK: The key table

    func testTableHasEveryKeyOnce() {
        let proxyKeys = ConfigKeys.keys(in: .proxy).map(\.name)
        XCTAssertEqual(proxyKeys, [
            "listen_addr", "listen_port", "pool_mode", "auth_type", "auth_file", "default_pool_size",
            "min_pool_size", "max_prepared_statements", "server_pipeline_depth", "server_pipeline_max_latency", "defer_begin", "server_idle_timeout", "server_lifetime",
            "server_check_delay", "server_check_query", "health_check_interval", "health_check_timeout",
            "health_check_failures", "health_check_reset_timeout", "health_check_successes", "health_check_user",
            "health_check_database", "replica_fallback", "max_replica_lag", "max_replica_lag_bytes", "load_balance",
            "read_your_writes", "read_your_writes_timeout", "max_client_conn", "server_reset_query", "admin_users",
            "stats_users", "log_level", "server_connect_timeout", "client_login_timeout", "server_login_retry",
            "query_wait_timeout", "max_packet_size", "workers", "pid_file", "statement_timeout",
            "primary_statement_timeout", "replica_statement_timeout", "cancel_wait_timeout", "idle_transaction_timeout",
            "client_idle_timeout", "shutdown_timeout", "slow_query_threshold", "log_queries", "log_sample_rate",
            "log_format", "stats_window", "stats_period", "stats_max_fingerprints", "metrics_listen",
            "client_tls_sslmode", "client_tls_cert_file", "client_tls_key_file", "client_tls_ca_file",
            "client_tls_protocols", "client_tls_ciphers", "server_tls_sslmode", "server_tls_ca_file",
            "server_tls_cert_file", "server_tls_key_file", "server_tls_protocols", "server_tls_ciphers",
        ])
        XCTAssertEqual(ConfigKeys.keys(in: .backend).map(\.name), [
            "host", "port", "role", "weight",
            "server_tls_sslmode", "server_tls_ca_file", "server_tls_cert_file", "server_tls_key_file",
        ])
        XCTAssertEqual(ConfigKeys.keys(in: .user).map(\.name), ["pool_mode", "pool_size", "statement_timeout"])
        XCTAssertEqual(ConfigKeys.keys(in: .database).map(\.name), ["statement_timeout"])
        XCTAssertEqual(ConfigKeys.key(.proxy, "listen_port")?.kind, "integer")
        XCTAssertEqual(ConfigKeys.key(.proxy, "pool_mode")?.kind, "enum: session|transaction")
        XCTAssertEqual(ConfigKeys.key(.proxy, "server_connect_timeout")?.defaultValue, "15s")
        XCTAssertEqual(ConfigKeys.key(.proxy, "max_packet_size")?.defaultValue, "1GB")
        XCTAssertEqual(ConfigKeys.key(.proxy, "auth_type")?.defaultValue, "scram-sha-256")
        XCTAssertEqual(ConfigKeys.key(.backend, "host")?.isRequired, true)
        XCTAssertEqual(ConfigKeys.key(.backend, "port")?.defaultValue, "5432")
        for key in ConfigKeys.all {
            XCTAssertFalse(key.doc.isEmpty, key.name)
            XCTAssertFalse(key.kind.isEmpty, key.name)
        }
    }

    /// Every default in the table, written into a file, parses back to the default config.
    func testTableDefaultsRoundTrip() throws {
        var text = "[proxy]\n"
        for key in ConfigKeys.keys(in: .proxy) {
            text += "\(key.name) = '\(key.defaultValue)'\n"
        }
        text += "[primary]\nhost = 127.0.0.1\n"
        XCTAssertEqual(try ConfigParser.parse(text, baseDirectory: "/"), Config())
    }

    func testMarkdownReferenceMentionsEveryKey() {
        let markdown = ConfigKeys.markdownReference()
        let lines = markdown.split(separator: "\n")
        XCTAssertEqual(lines.first, "| section | key | type | default | description |")
        XCTAssertEqual(lines.count, 2 + ConfigKeys.all.count)
        for key in ConfigKeys.all {
            XCTAssertTrue(lines.contains { $0.contains("`\(key.name)`") && $0.contains(key.section.heading) }, key.name)
        }
        XCTAssertTrue(markdown.contains("| [proxy] | `pool_mode` | enum: session\\|transaction | `session` |"), markdown)
        XCTAssertTrue(markdown.contains("| [primary], [replica.NAME] | `host` | string | `(required)` |"), markdown)
    }

    func testCurrentValuesCoverEveryProxyKey() throws {
        var config = try parse("""
            [proxy]
            server_connect_timeout = 500ms
            admin_users = a, b
            auth_file = users.txt
            max_packet_size = 16kB
            """)
        config.path = "/etc/switchyard/proxy.conf"
        let values = ConfigKeys.currentValues(config)
        XCTAssertEqual(values.map(\.key), ConfigKeys.keys(in: .proxy).map(\.name))
        let byKey = Dictionary(uniqueKeysWithValues: values.map { ($0.key, $0.value) })
        XCTAssertEqual(byKey["server_connect_timeout"], "500ms")
        XCTAssertEqual(byKey["client_login_timeout"], "1min")
        XCTAssertEqual(byKey["query_wait_timeout"], "2min")
        XCTAssertEqual(byKey["admin_users"], "a,b")
        XCTAssertEqual(byKey["auth_file"], "/etc/switchyard/users.txt")
        XCTAssertEqual(byKey["max_packet_size"], "16kB")
        XCTAssertEqual(byKey["listen_port"], "6432")
        XCTAssertEqual(byKey["pid_file"], "")
        XCTAssertEqual(byKey["auth_type"], "scram-sha-256")
    }
}
