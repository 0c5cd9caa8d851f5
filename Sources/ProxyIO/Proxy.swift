// The composition root: config, secrets, the listener, the registries of clients and pools, the cancel
// key map and the janitor. One Proxy runs one event loop.
import CLibevent
import Foundation
import Logging
import PGWire
import ProxyCore

public final class Proxy {
    public private(set) var config: Config
    public let logger: Logger
    let loop: EventLoop
    let crypto: CryptoProvider = OpenSSLCrypto()
    private(set) var secrets: [String: Secret] = [:]
    private var scramCache: [String: (password: String, secret: SCRAMSecret)] = [:]
    private var listener: Listener?
    private(set) var clients: Set<ClientConnection> = []
    private(set) var pools: [String: Pool] = [:]
    private var cancelKeys: [UInt64: ClientConnection] = [:]
    private var cancelForwarders: Set<CancelForwarder> = []
    private var idCounter = 0
    let startedAt = monotonicNow()
    /// Reads that reached a replica but had to run on the primary (25006, or the replica was lost before replying).
    var misroutes = 0
    /// Clients whose read waits for a replica to replay their own write (read-your-writes).
    var waitingForReplica: Set<ClientConnection> = []
    /// The last SCRAM ClientKey each user proved, for SCRAM pass-through to servers (any backend).
    var scramClientKeys: [String: [UInt8]] = [:]
    /// Protocol-level prepared statements of all clients (transaction mode): one id per distinct query.
    private var registry = StatementRegistry()
    /// Session effects of each registered statement (a prepared SET applies when executed).
    private(set) var statementEffects: [Int: [SessionEffect]] = [:]
    private lazy var mockNonce: [UInt8] = crypto.randomBytes(32)
    private var shuttingDown = false

    /// Health, role, lag and load of every backend (fed by the probes), and the read/write router.
    var backends: BackendSet
    var router: Router
    var random = SystemRandomNumberGenerator()
    private var probes: [HealthProbe] = []
    /// Routing decisions by statement fingerprint (libpg_query runs once per fingerprint). Replaced when the
    /// primary's pg_proc is read (function volatility).
    private(set) var classifier: Classifier

    /// pg_proc rows (name, schema, provolatile) from the primary: overloads take their most volatile form.
    func catalogLoaded(_ rows: [[String?]]) {
        var table: [String: FunctionVolatility] = [:]
        func merge(_ name: String, _ v: FunctionVolatility) {
            let rank: (FunctionVolatility) -> Int = { $0 == .immutable ? 0 : $0 == .stable ? 1 : 2 }
            if let old = table[name], rank(old) >= rank(v) { return }
            table[name] = v
        }
        for row in rows where row.count == 3 {
            guard let name = row[0], let schema = row[1], let code = row[2] else { continue }
            let v: FunctionVolatility = code == "i" ? .immutable : code == "s" ? .stable : .volatile
            merge(schema + "." + name, v)
            if schema == "pg_catalog" || schema == "public" { merge(name, v) }
        }
        classifier = Classifier(parser: PgQueryParser(), catalog: BuiltinFunctionCatalog(extra: table))
        logger.info("function catalog loaded", metadata: ["functions": "\(rows.count)"])
    }

    public init(config: Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.loop = EventLoop()
        self.secrets = try Self.loadSecrets(config)
        self.backends = BackendSet(Self.backendList(config), policy: Self.healthPolicy(config), loadBalance: config.proxy.loadBalance)
        self.router = Router(fallback: config.proxy.replicaFallback, readYourWritesTimeout: config.proxy.readYourWritesTimeout)
        self.classifier = Classifier(parser: PgQueryParser(), catalog: BuiltinFunctionCatalog())
    }

    static func backendList(_ config: Config) -> [(name: String, role: BackendRoleSetting, weight: Int)] {
        config.backends.map { b in
            (b.name, b.roleSetting ?? (b.role == .primary ? .primary : .replica), b.weight)
        }
    }

    static func healthPolicy(_ config: Config) -> HealthPolicy {
        var p = HealthPolicy()
        p.failuresToOpen = config.proxy.healthCheckFailures
        p.resetTimeout = config.proxy.healthCheckResetTimeout
        p.successesToClose = config.proxy.healthCheckSuccesses
        p.maxLagSeconds = config.proxy.maxReplicaLag
        p.maxLagBytes = UInt64(config.proxy.maxReplicaLagBytes)
        return p
    }

    func backendConfig(named name: String) -> BackendConfig? {
        config.backends.first { $0.name == name }
    }

    // MARK: Probes

    func probeSucceeded(_ name: String, now: Double, inRecovery: Bool, lsn: LSN?, replayDelaySeconds: Double?) {
        let change = backends.probeSucceeded(name, now: now, inRecovery: inRecovery, lsn: lsn, replayDelaySeconds: replayDelaySeconds)
        backends.updateLag()
        // A replica's replay position moved: reads waiting for read-your-writes may go now.
        for client in waitingForReplica { client.retryRoute(now: now) }
        if let change { logger.notice("backend \(change.to == .closed ? "back in" : "state changed")", metadata: ["backend": "\(name)", "from": "\(change.from.rawValue)", "to": "\(change.to.rawValue)"]) }
    }

    /// A pool could not connect to a replica: take it out until the probes bring it back.
    func backendUnreachable(_ name: String, error: String) {
        if let change = backends.markDown(name, now: monotonicNow(), error: error), change.from != change.to {
            logger.warning("backend taken out", metadata: ["backend": "\(name)", "error": "\(error)"])
        }
    }

    func probeFailed(_ name: String, now: Double, error: String) {
        let change = backends.probeFailed(name, now: now, error: error)
        logger.info("health check failed", metadata: ["backend": "\(name)", "error": "\(error)"])
        if let change { logger.warning("backend \(change.to == .open ? "taken out" : "state changed")", metadata: ["backend": "\(name)", "from": "\(change.from.rawValue)", "to": "\(change.to.rawValue)"]) }
    }

    static func loadSecrets(_ config: Config) throws -> [String: Secret] {
        guard let path = config.proxy.authFile else { return [:] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try AuthFile.parse(text)
    }

    /// Binds the listening socket; throws if the address is taken.
    public func start() throws {
        listener = try Listener(proxy: self, host: config.proxy.listenAddr, port: config.proxy.listenPort)
        if !config.proxy.healthCheckUser.isEmpty {
            probes = config.backends.map { HealthProbe(proxy: self, backend: $0) }
        }
        loop.every(0.1) { [unowned self] in self.janitor() }
        logger.info("listening", metadata: ["addr": "\(config.proxy.listenAddr):\(config.proxy.listenPort)",
                                             "pool_mode": "\(config.proxy.poolMode.rawValue)",
                                             "primary": "\(config.primary.host):\(config.primary.port)"])
    }

    /// Runs the event loop until shutdown.
    public func run() {
        loop.onSignal(SIGINT) { [unowned self] in self.shutdown(signal: "SIGINT") }
        loop.onSignal(SIGTERM) { [unowned self] in self.shutdown(signal: "SIGTERM") }
        loop.onSignal(SIGHUP) { [unowned self] in self.reloadSecrets() }
        loop.run()
    }

    func nextID() -> Int {
        idCounter += 1
        return idCounter
    }

    // MARK: Clients

    func accepted(fd: Int32, peer: String) {
        guard !shuttingDown else {
            evutil_closesocket(fd)
            return
        }
        SocketOptions.setNoDelay(fd)
        let client = ClientConnection(id: nextID(), proxy: self, fd: fd, peer: peer)
        client.overLimit = clients.count >= config.proxy.maxClientConn
        clients.insert(client)
        logger.debug("client connected", metadata: ["client": "\(client.label)"])
    }

    func makeLoginMachine() -> ClientLoginStateMachine {
        var machine = ClientLoginStateMachine(
            authType: config.proxy.authType, crypto: crypto,
            secrets: { [unowned self] user in self.secrets[user] },
            scramSecretFor: { [unowned self] user, password in self.scramSecret(user: user, password: password) },
            mockNonce: mockNonce)
        machine.requireKnownUserForTrust = config.proxy.authFile != nil
        return machine
    }

    /// SCRAM secrets derived from plaintext passwords are cached: PBKDF2 runs once per user, not per login.
    private func scramSecret(user: String, password: String) -> SCRAMSecret {
        if let cached = scramCache[user], cached.password == password { return cached.secret }
        let secret = SCRAM.makeSecret(password: password, salt: crypto.randomBytes(16), iterations: 4096, crypto: crypto)
        scramCache[user] = (password, secret)
        return secret
    }

    func clientAuthenticated(_ client: ClientConnection) {
        guard let info = client.info else { return }
        if info.database == adminDatabase {
            guard config.proxy.adminUsers.contains(info.user) || config.proxy.statsUsers.contains(info.user) else {
                return client.fail(code: SQLState.invalidAuthorization,
                                   message: "not allowed to connect to the admin console: \"\(info.user)\" is not in admin_users or stats_users",
                                   reason: "admin console refused")
            }
        }
        // A proxy-issued cancel key, unique among live clients.
        repeat {
            let r = crypto.randomBytes(8)
            client.processID = Int32(bitPattern: UInt32(r[0]) << 24 | UInt32(r[1]) << 16 | UInt32(r[2]) << 8 | UInt32(r[3])) & 0x7fff_ffff
            client.secretKey = Int32(bitPattern: UInt32(r[4]) << 24 | UInt32(r[5]) << 16 | UInt32(r[6]) << 8 | UInt32(r[7]))
        } while cancelKeys[cancelKey(client.processID, client.secretKey)] != nil
        cancelKeys[cancelKey(client.processID, client.secretKey)] = client
        if info.database == adminDatabase { return client.startAdminSession() }
        if let key = info.scramClientKey { scramClientKeys[info.user] = key }
        client.waitForServer(in: self.pool(database: info.database, user: info.user, backend: config.primary))
    }

    /// The pool of (database, user) on `backend`, created on first use.
    func pool(database: String, user: String, backend: BackendConfig) -> Pool {
        let key = database + "\u{0}" + user + "\u{0}" + backend.name
        if let p = pools[key] { return p }
        let p = Pool(proxy: self, database: database, user: user, backend: backend, size: config.poolSize(forUser: user))
        pools[key] = p
        return p
    }

    func clientClosed(_ client: ClientConnection, reason: String) {
        clients.remove(client)
        if client.processID != 0 { cancelKeys.removeValue(forKey: cancelKey(client.processID, client.secretKey)) }
        logger.info("client closed", metadata: ["client": "\(client.label)", "reason": "\(reason)"])
        if shuttingDown && clients.isEmpty { loop.stop() }
    }

    private func cancelKey(_ pid: Int32, _ secret: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: pid)) << 32 | UInt64(UInt32(bitPattern: secret))
    }

    // MARK: Prepared statements

    func registerStatement(_ key: StatementKey) -> Int {
        let before = registry.count
        let id = registry.id(for: key)
        if registry.count > before, SessionAnalyzer.mayHaveEffects(key.query) {
            let effects = SessionAnalyzer.effects(of: key.query)
            if !effects.isEmpty { statementEffects[id] = effects }
        }
        return id
    }

    func statementKey(_ id: Int) -> StatementKey? { registry.key(for: id) }

    /// Statements some server parsed without error: a client's Parse of one of them can be answered locally.
    private(set) var validStatements: Set<Int> = []

    /// Bumped when a server reports "cached plan must not change result type" for a statement (DDL changed
    /// its result): server copies prepared before are stale, and each client that has not seen the error yet
    /// gets it once, as Postgres would give it, so drivers that cache row descriptions (asyncpg) re-prepare.
    private var statementEpochs: [Int: Int] = [:]

    func statementEpoch(_ id: Int) -> Int { statementEpochs[id] ?? 0 }

    /// The server's own "cached plan must not change result type" error, replayed to clients that have not
    /// seen it (drivers recognise it by its fields, e.g. asyncpg by the routine RevalidateCachedQuery).
    var resultChangedError: [UInt8] = ProxyMessages.error(
        severity: "ERROR", code: SQLState.featureNotSupported, message: cachedPlanMessage,
        extra: [(UInt8(ascii: "R"), "RevalidateCachedQuery")])

    func statementResultChanged(_ id: Int) -> Int {
        let next = statementEpoch(id) + 1
        statementEpochs[id] = next
        return next
    }

    func knownValidStatement(_ key: StatementKey) -> Int? {
        guard let id = registry.existingID(for: key), validStatements.contains(id) else { return nil }
        return id
    }

    func markStatementsValid(_ ids: [Int]) {
        for id in ids { validStatements.insert(id) }
    }

    // MARK: Cancel

    /// A CancelRequest with a proxy-issued key: send the real key to the server the client is on.
    func forwardCancel(processID: Int32, secretKey: Int32) {
        guard let client = cancelKeys[cancelKey(processID, secretKey)] else {
            logger.info("cancel request with unknown key ignored")
            return
        }
        guard case .active(let server) = client.phase else { return }
        logger.info("forwarding cancel", metadata: ["client": "\(client.label)", "server": "\(server.label)"])
        if let f = CancelForwarder(proxy: self, address: server.address, processID: server.processID, secretKey: server.secretKey) {
            cancelForwarders.insert(f)
        }
    }

    func cancelDone(_ f: CancelForwarder) { cancelForwarders.remove(f) }

    // MARK: Janitor, reload, shutdown

    private func janitor() {
        let now = monotonicNow()
        for probe in probes { probe.tick(now: now) }
        for client in waitingForReplica { client.retryRoute(now: now) }
        for client in clients { client.checkTimeout(now: now) }
        for pool in pools.values {
            for server in pool.allServers { server.checkTimeout(now: now) }
            pool.tick(now: now)
        }
    }

    /// RELOAD from the admin console: re-reads auth_file (the full config reload comes with SIGHUP handling).
    func reload() { reloadSecrets() }

    /// SHUTDOWN from the admin console.
    func requestShutdown(reason: String) {
        loop.every(0.05) { [unowned self] in if !self.shuttingDown { self.shutdown(signal: reason) } }
    }

    private func reloadSecrets() {
        do {
            secrets = try Self.loadSecrets(config)
            scramCache.removeAll()
            logger.info("auth_file reloaded", metadata: ["users": "\(secrets.count)"])
        } catch {
            logger.error("reload failed, keeping the old auth_file", metadata: ["error": "\(error)"])
        }
    }

    private func shutdown(signal: String) {
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        shuttingDown = true
        listener?.close()
        listener = nil
        for client in clients {
            client.fail(code: SQLState.adminShutdown, message: "switchyard is shutting down", reason: "shutdown")
        }
        for pool in pools.values {
            for server in pool.allServers { server.close(reason: "shutdown") }
        }
        for probe in probes { probe.close() }
        // Let queued error messages flush, then stop.
        loop.every(0.3) { [unowned self] in self.loop.stop() }
    }
}
