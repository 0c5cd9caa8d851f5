// The admin console's I/O: a client logged in to database "switchyard" (a user in admin_users or
// stats_users) sends simple queries; this builds a snapshot of the proxy and answers from ProxyCore's
// AdminConsole (PgBouncer's column names, so pgbouncer_exporter and dashboards work).
import Foundation
import PGWire
import ProxyCore

/// The database name that selects the admin console.
let adminDatabase = "switchyard"

extension ClientConnection {
    /// Greets an authenticated admin client (no server is involved).
    func startAdminSession() {
        phase = .admin
        greeted = true
        var greeting = takeAuthPrefix() + ProxyMessages.authenticationOk()
        for (name, value) in [("server_version", "15.0 (switchyard \(switchyardVersion))"), ("client_encoding", "UTF8"),
                              ("server_encoding", "UTF8"), ("DateStyle", "ISO, MDY"), ("integer_datetimes", "on"),
                              ("standard_conforming_strings", "on"), ("application_name", "")] {
            greeting += ProxyMessages.parameterStatus(name, value)
        }
        greeting += ProxyMessages.backendKeyData(processID: processID, secretKey: secretKey)
        greeting += ProxyMessages.readyForQuery(.idle)
        stream.write(greeting)
        readAdmin()
    }

    /// Reads admin queries and answers each with a result set (or an error) and ReadyForQuery.
    func readAdmin() {
        while case .admin = phase, !adminCommandPending {
            let frame: Frame
            do {
                guard let f = try stream.takeFrame(maxLength: 1 << 20) else { return }
                frame = f
            } catch {
                return fail(code: SQLState.protocolViolation, message: error.message, reason: "protocol violation")
            }
            switch FrontendMessageID(rawValue: frame.type) {
            case .terminate?:
                return disconnected(reason: "client terminated")
            case .query?:
                let sql = String(decoding: frame.payload.prefix { $0 != 0 }, as: UTF8.self)
                guard let reply = answerAdmin(sql) else {
                    // PAUSE answers when it is done; input waits until then.
                    adminCommandPending = true
                    return
                }
                stream.write(reply + ProxyMessages.readyForQuery(.idle))
            case .sync?:
                stream.write(ProxyMessages.readyForQuery(.idle))
            default:
                stream.write(ProxyMessages.error(severity: "ERROR", code: SQLState.featureNotSupported,
                                                 message: "the admin console takes simple queries only")
                             + ProxyMessages.readyForQuery(.idle))
            }
        }
    }

    /// A command that answers later (PAUSE) finished: send its reply and read what came meanwhile.
    func adminCommandFinished(_ reply: [UInt8]) {
        guard adminCommandPending else { return }
        adminCommandPending = false
        stream.write(reply + ProxyMessages.readyForQuery(.idle))
        readAdmin()
    }

    /// The reply to one admin query; nil when it comes later (adminCommandFinished).
    private func answerAdmin(_ sql: String) -> [UInt8]? {
        if sql.allSatisfy({ $0 == ";" || $0.isWhitespace }) { return [BackendMessageID.emptyQueryResponse.rawValue, 0, 0, 0, 4] }
        let isAdmin = proxy.config.proxy.adminUsers.contains(info?.user ?? "")
        let command: AdminCommand
        do {
            command = try AdminParser.parse(sql, isAdminUser: isAdmin)
        } catch {
            return AdminConsole.error(error)
        }
        log.info("admin command", metadata: ["client": "\(label)", "command": "\(sql)"])
        switch command {
        case .reload:
            if let error = proxy.reload() {
                return ProxyMessages.error(severity: "ERROR", code: SQLState.configFileError,
                                           message: "RELOAD failed, the old config stays: \(error)")
            }
            return AdminConsole.commandComplete(command.commandTag)
        case .shutdown:
            proxy.requestShutdown(reason: "SHUTDOWN from the admin console")
            return AdminConsole.commandComplete(command.commandTag)
        case .pause(let database):
            proxy.pause(database, by: self)
            return nil
        case .resume(let database):
            proxy.resume(database)
            return AdminConsole.commandComplete(command.commandTag)
        case .showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists, .showBackends, .showStats, .showQueries, .showLatency:
            // Every worker adds its part; the reply comes on this client's loop.
            proxy.gatherAdminSnapshot(for: command) { [weak self] snapshot in
                guard let self, case .admin = self.phase else { return }
                let reply = AdminConsole.result(of: command, snapshot: snapshot).map(AdminConsole.encode)
                    ?? AdminConsole.commandComplete(command.commandTag)
                self.adminCommandFinished(reply)
            }
            return nil
        }
    }
}

extension Proxy {
    /// What an admin command reads, from every worker: this worker's config, backends and version, all
    /// workers' clients, servers and pools, and for the stats views all workers' statistics merged.
    func gatherAdminSnapshot(for command: AdminCommand, then done: @escaping (AdminSnapshot) -> Void) {
        let withStats: Bool
        switch command {
        case .showStats, .showQueries, .showLatency: withStats = true
        case .showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists, .showBackends,
             .pause, .resume, .reload, .shutdown:
            withStats = false
        }
        workers.gather(for: index, { proxy in
            (proxy.adminSnapshot(), withStats ? proxy.statsCopy() : nil)
        }, then: { [unowned self] parts in
            var snapshot = parts[index].0
            for (i, part) in parts.enumerated() where i != index { snapshot.absorb(part.0) }
            guard withStats else { return done(snapshot) }
            let stats = mergedStats(parts.compactMap(\.1))
            let now = monotonicNow()
            switch command {
            case .showStats: snapshot.stats = stats.statsRows(now: now)
            case .showQueries: snapshot.queries = stats.queryRows(limit: 100, now: now)
            case .showLatency: snapshot.latency = stats.latencyRows(now: now)
            case .showClients, .showServers, .showPools, .showConfig, .showVersion, .showHelp, .showLists, .showBackends,
                 .pause, .resume, .reload, .shutdown:
                break
            }
            done(snapshot)
        })
    }

    /// This worker's clients, servers, pools, config and backends right now.
    func adminSnapshot() -> AdminSnapshot {
        let now = monotonicNow()
        let wallNow = Date().timeIntervalSince1970
        func wall(_ monotonic: Double) -> String {
            Self.timestamp(wallNow - (now - monotonic))
        }
        var clientRows: [AdminClientRow] = []
        for c in clients.sorted(by: { $0.id < $1.id }) {
            let (addr, port) = Self.split(c.peer)
            if case .closed = c.phase { continue }
            let state = c.adminState
            var server: ServerConnection?
            if case .settingUp(let s) = c.phase { server = s }
            if case .active(let s) = c.phase { server = s }
            if case .riding(let s) = c.phase { server = s }
            let waited: Double
            if case .waitingForServer = c.phase { waited = now - c.waitingSince } else { waited = 0 }
            let appName = c.applicationName
            clientRows.append(AdminClientRow(
                user: c.info?.user ?? "", database: c.info?.database ?? "", state: state, addr: addr, port: port,
                connectTime: wall(c.connectedAt), requestTime: wall(c.waitingSince > 0 ? c.waitingSince : c.connectedAt),
                wait: Int(waited), waitMicros: Int((waited - Double(Int(waited))) * 1e6),
                linkedServerPID: server.map { Int($0.processID) }, applicationName: appName,
                preparedStatements: c.statements.count, pinned: c.session.pinReason, tls: c.stream.tlsDescription ?? "", id: c.id))
        }
        var serverRows: [AdminServerRow] = []
        var poolRows: [AdminPoolRow] = []
        for pool in pools.values.sorted(by: { $0.label < $1.label }) {
            var login = 0
            var active = 0
            for s in pool.allServers.sorted(by: { $0.id < $1.id }) {
                let state: String
                switch s.phase {
                case .connecting, .login: state = "login"; login += 1
                case .idle: state = "idle"
                case .internalQuery, .active: state = "active"; active += 1
                case .closed: continue
                }
                let (addr, port) = Self.split(s.address.description)
                serverRows.append(AdminServerRow(
                    user: pool.user, database: pool.database, state: state, addr: addr, port: port,
                    connectTime: wall(s.openedAt), requestTime: wall(s.idleSince > 0 ? s.idleSince : s.openedAt),
                    remotePID: Int(s.processID), linkedClientID: s.client?.id,
                    applicationName: s.parameters["application_name"] ?? "", preparedStatements: s.statements.count,
                    tls: s.stream.tlsDescription ?? "", id: s.id, backend: pool.backend.name))
            }
            let waiting = pool.machine.waiting
            let maxWait = waiting.map { now - $0.waitingSince }.max() ?? 0
            poolRows.append(AdminPoolRow(
                database: pool.database, user: pool.user,
                clActive: clients.filter { c in
                    if c.pool === pool, case .active = c.phase { return true }
                    if c.pool === pool, case .settingUp = c.phase { return true }
                    if c.pool === pool, case .riding = c.phase { return true }
                    return false
                }.count,
                clWaiting: waiting.count, svActive: active, svIdle: pool.machine.idle.count, svLogin: login,
                maxWaitSeconds: Int(maxWait), maxWaitMicros: Int((maxWait - Double(Int(maxWait))) * 1e6),
                poolMode: pool.poolMode.rawValue, backend: pool.backend.name))
        }
        var snapshot = AdminSnapshot(clients: clientRows, servers: serverRows, pools: poolRows,
                                     config: ConfigKeys.currentValues(config), version: "Switchyard \(switchyardVersion)",
                                     startTime: Self.timestamp(wallNow - (now - startedAt)))
        snapshot.backends = backends.statuses.map { st in
            let cfg = backendConfig(named: st.name)
            return AdminBackendRow(
                name: st.name, host: cfg?.host ?? "", port: cfg?.port ?? 0,
                role: st.isPrimary ? "primary" : st.isReplica ? "replica" : "unknown", inRecovery: st.inRecovery,
                circuit: st.circuit.rawValue, consecutiveFailures: st.consecutiveFailures, lsn: st.lsn?.description,
                lagBytes: st.lagBytes, lagSeconds: st.lagSeconds, outstanding: st.outstanding, weight: st.weight,
                lastError: st.lastError)
        }
        return snapshot
    }

    static func split(_ hostPort: String) -> (String, Int) {
        guard let colon = hostPort.lastIndex(of: ":") else { return (hostPort, 0) }
        return (String(hostPort[..<colon]), Int(hostPort[hostPort.index(after: colon)...]) ?? 0)
    }

    static func timestamp(_ epoch: Double) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return f.string(from: Date(timeIntervalSince1970: epoch))
    }
}
