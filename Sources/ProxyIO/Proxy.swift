// The composition root of one worker: config, secrets, the registries of clients and pools, the cancel key map
// and the janitor. One Proxy runs one event loop; worker 0 also holds the listener, the health probes, the metrics
// endpoint and the signals, and tells the other workers (Workers) what they need to know.
import CLibevent
import Foundation
import Logging
import PGWire
import ProxyCore

/// How a statement ended, for stats and the query log.
enum StatementOutcome: Equatable {
    case ok
    case error(String)
    case timeout
}

public final class Proxy {
    public private(set) var config: Config
    public private(set) var logger: Logger {
        didSet { debugLogging = logger.logLevel <= .debug }
    }
    /// log_level is debug or trace: the per-transaction debug lines are built only then (checking the Logger
    /// itself costs a copy of it and a call through its handler on every transaction).
    private(set) var debugLogging = false
    let loop: EventLoop
    /// The workers of this process and this one's position among them.
    let workers: Workers
    public let index: Int
    /// Jobs other workers post to this one.
    private(set) var mailbox: Mailbox!
    let crypto: CryptoProvider = OpenSSLCrypto()
    private(set) var secrets: [String: Secret] = [:]
    private var scramCache: [String: (password: String, secret: SCRAMSecret)] = [:]
    /// Per user: SCRAM keys derived from the auth_file password with a server's salt, so PBKDF2
    /// runs once per user and worker rather than on the event loop at every server login.
    private var serverSCRAMKeys: [String: (password: String, keys: SCRAMDerivedKeys)] = [:]
    private var listener: Listener?
    private(set) var clients: Set<ClientConnection> = []
    private(set) var pools: [String: Pool] = [:]
    fileprivate(set) var cancelKeys: [UInt64: ClientConnection] = [:]
    var cancelForwarders: Set<CancelForwarder> = []
    private var idCounter = 0
    let startedAt = monotonicNow()
    /// Latency percentiles per fingerprint and backend, SHOW STATS totals, Prometheus series (this loop's).
    var stats: StatsRegistry
    /// Which statements write a query-log line.
    var querySampler: QuerySampler
    /// Statement shapes quick enough for the shared pipeline (server_pipeline_max_latency).
    var quickStatements: QuickStatements
    /// The shared pipeline is on (server_pipeline_depth > 1).
    var pipelining: Bool { config.proxy.serverPipelineDepth > 1 }
    /// The statement shape BEGINs held by the proxy (defer_begin) are recorded under.
    private(set) lazy var beginFingerprint: Fingerprint = classifier.fingerprints.of("BEGIN")
    /// When the next periodic stats summary line is due.
    private var nextSummary = 0.0
    /// Clients whose read waits for a replica to replay their own write (read-your-writes).
    var waitingForReplica: Set<ClientConnection> = []
    /// Transaction mode: the ParameterStatus values a server reported to the first client of each database and
    /// user ("db\0user"), to greet later clients without waiting for a server (shared by all workers).
    var greetings: Workers.Greetings { workers.greetings }
    /// The last SCRAM ClientKey each user proved, for SCRAM pass-through to servers (any backend).
    var scramClientKeys: [String: [UInt8]] = [:]
    private lazy var mockNonce: [UInt8] = crypto.randomBytes(32)
    private(set) var shuttingDown = false
    /// The HTTP endpoint (metrics_listen), if configured.
    private var metricsServer: MetricsHTTP?
    /// TLS for clients (nil when client_tls_sslmode = disable). RELOAD replaces it: sessions already running keep
    /// the context they started with (each SSL holds a reference to it).
    private(set) var clientTLS: TLSContext?
    /// TLS towards servers, one context per distinct effective setting (backends may override); RELOAD rebuilds them.
    private var serverTLSContexts: [ServerTLSSettings: TLSContext] = [:]

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
        workers.everywhere(from: self) { $0.applyCatalog(rows) }
    }

    private func applyCatalog(_ rows: [[String?]]) {
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
        if index == 0 { logger.info("function catalog loaded", metadata: ["functions": "\(rows.count)"]) }
    }

    public init(config: Config, logger: Logger, workers: Workers = Workers(count: 1), index: Int = 0) throws {
        self.config = config
        self.logger = logger
        self.debugLogging = logger.logLevel <= .debug
        self.workers = workers
        self.index = index
        self.loop = EventLoop()
        self.secrets = try Self.loadSecrets(config)
        self.backends = BackendSet(Self.backendList(config), policy: Self.healthPolicy(config), loadBalance: config.proxy.loadBalance)
        self.router = Router(fallback: config.proxy.replicaFallback, readYourWritesTimeout: config.proxy.readYourWritesTimeout)
        self.classifier = Classifier(parser: PgQueryParser(), catalog: BuiltinFunctionCatalog())
        self.stats = StatsRegistry(settings: Self.statsSettings(config), now: monotonicNow(), collector: workers.collector)
        self.querySampler = Self.sampler(config)
        self.quickStatements = QuickStatements(limitMicros: config.proxy.serverPipelineMaxLatency * 1e6)
        self.nextSummary = Self.nextBoundary(after: monotonicNow(), period: config.proxy.statsPeriod)
        (clientTLS, serverTLSContexts) = try Self.loadTLS(config)
        mailbox = Mailbox(loop: loop)
        workers.add(self)
        if index == 0 { logTLS() }
    }

    static func statsSettings(_ config: Config) -> StatsSettings {
        StatsSettings(window: config.proxy.statsWindow, period: config.proxy.statsPeriod,
                      maxFingerprints: config.proxy.statsMaxFingerprints)
    }

    static func sampler(_ config: Config) -> QuerySampler {
        QuerySampler(mode: config.proxy.logQueries, sampleRate: config.proxy.logSampleRate,
                     slowThreshold: config.proxy.slowQueryThreshold)
    }

    /// `switchyard --check`: the certificate, key and CA files load and fit together.
    public static func checkTLSFiles(_ config: Config) throws {
        _ = try loadTLS(config)
    }

    /// Every TLS context `config` needs, with its certificate, key and CA files read now; throws on a file that
    /// does not load, so a bad file stops the start or refuses the RELOAD.
    static func loadTLS(_ config: Config) throws -> (TLSContext?, [ServerTLSSettings: TLSContext]) {
        let client = config.proxy.clientTLSSSLMode == .disable ? nil : try TLSContext.forClients(config.proxy)
        var servers: [ServerTLSSettings: TLSContext] = [:]
        for backend in config.backends {
            let settings = config.serverTLS(for: backend)
            if settings.mode != .disable, servers[settings] == nil { servers[settings] = try TLSContext.forServers(settings) }
        }
        return (client, servers)
    }

    private func logTLS() {
        if let clientTLS {
            logger.info("client TLS ready", metadata: ["sslmode": "\(config.proxy.clientTLSSSLMode.rawValue)",
                                                      "certificate": "\(clientTLS.certificateSummary)"])
        }
        for backend in config.backends where config.serverTLS(for: backend).mode != .disable {
            logger.info("server TLS ready", metadata: ["backend": "\(backend.name)", "sslmode": "\(config.serverTLS(for: backend).mode.rawValue)"])
        }
    }

    /// How to reach `backend` over TLS; nil when its server_tls_sslmode is disable. Settings come from the current
    /// config (a pool created before a RELOAD may hold an older copy of its backend).
    func serverTLS(for backend: BackendConfig) -> ServerTLSSetup? {
        let current = backendConfig(named: backend.name) ?? backend
        let settings = config.serverTLS(for: current)
        guard settings.mode != .disable else { return nil }
        if serverTLSContexts[settings] == nil {
            do {
                serverTLSContexts[settings] = try TLSContext.forServers(settings)
            } catch {
                logger.error("server TLS unavailable", metadata: ["backend": "\(backend.name)", "error": "\(error)"])
            }
        }
        return ServerTLSSetup(context: serverTLSContexts[settings], mode: settings.mode, host: current.host)
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

    /// A probe (worker 0) reached `name`: every worker's backend set learns it.
    func probeSucceeded(_ name: String, now: Double, inRecovery: Bool, lsn: LSN?, replayDelaySeconds: Double?) {
        workers.everywhere(from: self) {
            $0.applyProbeSucceeded(name, now: now, inRecovery: inRecovery, lsn: lsn, replayDelaySeconds: replayDelaySeconds)
        }
    }

    private func applyProbeSucceeded(_ name: String, now: Double, inRecovery: Bool, lsn: LSN?, replayDelaySeconds: Double?) {
        let change = backends.probeSucceeded(name, now: now, inRecovery: inRecovery, lsn: lsn, replayDelaySeconds: replayDelaySeconds)
        backends.updateLag()
        // A replica's replay position moved: reads waiting for read-your-writes may go now.
        for client in waitingForReplica { client.retryRoute(now: now) }
        if let change, index == 0 { logger.notice("backend \(change.to == .closed ? "back in" : "state changed")", metadata: ["backend": "\(name)", "from": "\(change.from.rawValue)", "to": "\(change.to.rawValue)"]) }
    }

    /// A pool could not connect to a replica: take it out (in every worker) until the probes bring it back.
    func backendUnreachable(_ name: String, error: String) {
        workers.everywhere(from: self) { $0.applyBackendUnreachable(name, error: error) }
    }

    private func applyBackendUnreachable(_ name: String, error: String) {
        if let change = backends.markDown(name, now: monotonicNow(), error: error), change.from != change.to {
            logger.warning("backend taken out", metadata: ["backend": "\(name)", "error": "\(error)"])
        }
    }

    func probeFailed(_ name: String, now: Double, error: String) {
        workers.everywhere(from: self) { $0.applyProbeFailed(name, now: now, error: error) }
    }

    private func applyProbeFailed(_ name: String, now: Double, error: String) {
        let change = backends.probeFailed(name, now: now, error: error)
        guard index == 0 else { return }
        logger.info("health check failed", metadata: ["backend": "\(name)", "error": "\(error)"])
        if let change { logger.warning("backend \(change.to == .open ? "taken out" : "state changed")", metadata: ["backend": "\(name)", "from": "\(change.from.rawValue)", "to": "\(change.to.rawValue)"]) }
    }

    static func loadSecrets(_ config: Config) throws -> [String: Secret] {
        guard let path = config.proxy.authFile else { return [:] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try AuthFile.parse(text)
    }

    /// Binds the listening socket; throws if the address is taken.
    /// Worker 0 binds the listening socket (throws if the address is taken) and starts the probes and the metrics
    /// endpoint; every worker starts its janitor.
    public func start() throws {
        loop.every(0.1) { [unowned self] in self.janitor() }
        guard index == 0 else { return }
        listener = try Listener(proxy: self, host: config.proxy.listenAddr, port: config.proxy.listenPort)
        if !config.proxy.healthCheckUser.isEmpty {
            probes = config.backends.map { HealthProbe(proxy: self, backend: $0) }
        }
        try startMetrics()
        logger.info("listening", metadata: ["addr": "\(config.proxy.listenAddr):\(config.proxy.listenPort)",
                                             "pool_mode": "\(config.proxy.poolMode.rawValue)",
                                             "primary": "\(config.primary.host):\(config.primary.port)",
                                             "workers": "\(workers.count)"])
    }

    /// The HTTP endpoint of metrics_listen, if set.
    private func startMetrics() throws {
        let listen = config.proxy.metricsListen
        guard !listen.isEmpty else { return }
        guard let (host, port) = MetricsHTTP.parseListen(listen) else {
            throw MetricsHTTPError(message: "metrics_listen: expected host:port, got '\(listen)'")
        }
        metricsServer = try MetricsHTTP(base: loop.base, host: host, port: port) { [unowned self] path in
            self.httpReply(path)
        }
        logger.info("metrics endpoint listening", metadata: ["addr": "\(listen)"])
    }

    private func httpReply(_ path: String) -> HTTPReply? {
        switch path {
        case "/metrics":
            return HTTPReply(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsText())
        case "/health":
            return HTTPReply(status: 200, contentType: "text/plain; charset=utf-8", body: "ok\n")
        case "/ready":
            let (ready, why) = readiness()
            return HTTPReply(status: ready ? 200 : 503, contentType: "text/plain; charset=utf-8", body: why + "\n")
        default:
            return nil
        }
    }

    /// Ready: the config is loaded, the proxy is not shutting down, and the health probes reach a primary (its
    /// circuit is closed and it answered a probe). With probes off (no health_check_user) the primary is
    /// assumed reachable.
    func readiness() -> (Bool, String) {
        if shuttingDown { return (false, "shutting down") }
        let primaries = backends.statuses.filter { $0.isPrimary }
        guard let primary = primaries.first else { return (false, "no primary known yet") }
        if primary.circuit == .open { return (false, "primary \(primary.name) unreachable: \(primary.lastError ?? "")") }
        if !config.proxy.healthCheckUser.isEmpty && primary.lsn == nil && primary.inRecovery == nil {
            return (false, "primary \(primary.name) not probed yet")
        }
        return (true, "ready: primary \(primary.name)")
    }

    /// Runs the event loop until shutdown. Worker 0 takes the signals and passes them on.
    public func run() {
        if index == 0 {
            loop.onSignal(SIGINT) { [unowned self] in self.shutdown(signal: "SIGINT", graceful: false) }
            loop.onSignal(SIGTERM) { [unowned self] in self.shutdown(signal: "SIGTERM", graceful: true) }
            loop.onSignal(SIGHUP) { [unowned self] in self.reload() }
        }
        loop.run()
    }

    /// Ids unique in the process: each worker counts in its own residue class.
    func nextID() -> Int {
        idCounter += 1
        return idCounter * workers.count + index
    }

    // MARK: Clients

    /// The listener (worker 0) accepted a client: the workers take turns.
    func accepted(fd: Int32, peer: String) {
        let target = workers.nextAcceptWorker()
        if target == index { return adopt(fd: fd, peer: peer) }
        workers.post(to: target) { $0.adopt(fd: fd, peer: peer) }
    }

    private func adopt(fd: Int32, peer: String) {
        guard !shuttingDown else {
            evutil_closesocket(fd)
            return
        }
        SocketOptions.setNoDelay(fd)
        let client = ClientConnection(id: nextID(), proxy: self, fd: fd, peer: peer)
        client.overLimit = workers.clientOpened() > config.proxy.maxClientConn
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
        // A client context exists whenever the mode is not disable (the config refuses one without a certificate).
        machine.tlsMode = clientTLS == nil ? .disable : config.proxy.clientTLSSSLMode
        return machine
    }

    /// SCRAM secrets derived from plaintext passwords are cached: PBKDF2 runs once per user, not per login.
    private func scramSecret(user: String, password: String) -> SCRAMSecret {
        if let cached = scramCache[user], cached.password == password { return cached.secret }
        let secret = SCRAM.makeSecret(password: password, salt: crypto.randomBytes(16), iterations: 4096, crypto: crypto)
        scramCache[user] = (password, secret)
        return secret
    }

    /// Feeds one server message to a login machine (pool connection or health probe) and keeps the
    /// SCRAM keys it derives: logins that started together all use the keys the first one derived.
    func serverLoginStep(_ machine: inout ServerLoginStateMachine, _ message: BackendMessage) -> ServerLoginStateMachine.Action {
        guard case .secret(.plain(let password)) = machine.credential else { return machine.received(message) }
        let user = machine.user
        if machine.knownKeys == nil, let cached = serverSCRAMKeys[user], cached.password == password { machine.knownKeys = cached.keys }
        let action = machine.received(message)
        if let keys = machine.learnedKeys, keys != machine.knownKeys { serverSCRAMKeys[user] = (password, keys) }
        return action
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
        // A proxy-issued cancel key, unique among live clients; its low byte names the worker (forwardCancel).
        repeat {
            let r = crypto.randomBytes(8)
            client.processID = Int32(bitPattern: UInt32(r[0]) << 24 | UInt32(r[1]) << 16 | UInt32(r[2]) << 8) & 0x7fff_ff00 | Int32(index)
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

    /// A server of pool `key` closed in some worker while this worker's clients waited for one.
    func slotFreed(_ key: String) { pools[key]?.slotFreed() }

    /// Another worker handed over an idle server of pool `key`.
    func adoptServer(_ handoff: ServerHandoff, key: String) {
        guard let pool = pools[key], !shuttingDown else {
            close(handoff.fd)
            return workers.releaseSlot(key)
        }
        pool.adopt(handoff)
    }

    func clientClosed(_ client: ClientConnection, reason: String) {
        if clients.remove(client) != nil { workers.clientClosed() }
        pausedClients.remove(client)
        if client.processID != 0 { cancelKeys.removeValue(forKey: cancelKey(client.processID, client.secretKey)) }
        logger.info("client closed", metadata: ["client": "\(client.label)", "reason": "\(reason)"])
    }

    func cancelKey(_ pid: Int32, _ secret: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: pid)) << 32 | UInt64(UInt32(bitPattern: secret))
    }

    // MARK: Prepared statements

    /// Registers a statement a client parsed (process-wide id, see SharedStatements) and notes its session effects
    /// in this worker (a prepared SET applies when executed).
    func registerStatement(_ key: StatementKey) -> Int {
        let id = workers.statements.id(for: key)
        noteEffects(of: id, key)
        return id
    }

    private func noteEffects(of id: Int, _ key: StatementKey) {
        if statementEffects[id] == nil, SessionAnalyzer.mayHaveEffects(key.query) {
            let effects = SessionAnalyzer.effects(of: key.query)
            if !effects.isEmpty { statementEffects[id] = effects }
        }
    }

    /// Session effects of statements this worker's clients registered.
    private(set) var statementEffects: [Int: [SessionEffect]] = [:]

    func statementKey(_ id: Int) -> StatementKey? { workers.statements.key(for: id) }

    /// Fingerprints of registered statements, computed once per statement and worker.
    private var statementFingerprints: [Int: Fingerprint] = [:]

    func statementFingerprint(_ id: Int) -> Fingerprint? {
        if let f = statementFingerprints[id] { return f }
        guard let key = statementKey(id) else { return nil }
        let f = classifier.fingerprints.of(key.query)
        statementFingerprints[id] = f
        return f
    }

    /// The statement's epoch: bumped when a server reports "cached plan must not change result type" for it
    /// (DDL changed its result), so server copies prepared before are stale, and each client that has not seen
    /// the error yet gets it once, as Postgres would give it, so drivers that cache row descriptions (asyncpg)
    /// re-prepare.
    func statementEpoch(_ id: Int) -> Int { workers.statements.epoch(id) }

    /// The server's own "cached plan must not change result type" error, replayed to clients that have not
    /// seen it (drivers recognise it by its fields, e.g. asyncpg by the routine RevalidateCachedQuery).
    var resultChangedError: [UInt8] {
        get { workers.statements.resultChangedError }
        set { workers.statements.resultChangedError = newValue }
    }

    func statementResultChanged(_ id: Int) -> Int { workers.statements.bumpEpoch(id) }

    func knownValidStatement(_ key: StatementKey) -> Int? {
        guard let id = workers.statements.knownValid(key) else { return nil }
        noteEffects(of: id, key)
        return id
    }

    func markStatementsValid(_ ids: [Int]) {
        if !ids.isEmpty { workers.statements.markValid(ids) }
    }

    /// The role a backend plays now: its configured role, or for `role = auto` what its probes found (a
    /// replica until a probe saw it out of recovery; its section's role if the backend set does not list it).
    func role(of backend: BackendConfig) -> BackendRole {
        switch backend.roleSetting ?? (backend.role == .primary ? .primary : .replica) {
        case .primary: return .primary
        case .replica: return .replica
        case .auto: return (backends.status(backend.name)?.isPrimary).map { $0 ? .primary : .replica } ?? backend.role
        }
    }

    /// Statements cancelled by the proxy's statement_timeout.
    var statementTimeouts = 0

    // MARK: Janitor, reload, shutdown

    /// Startup parameter sets by value, so equal sets share one storage (see ClientConnection.waitForServer).
    private var internedParameters: Set<[String: String]> = []

    func intern(_ parameters: [String: String]) -> [String: String] {
        if parameters.isEmpty { return parameters }
        if internedParameters.count >= 1_000 { internedParameters.removeAll() }
        return internedParameters.insert(parameters).memberAfterInsert
    }

    /// The summary line runs just after each stats period boundary: it covers the period before the last one up
    /// to now, so lines at boundaries leave no gap between them (lines `stats_period` apart drifted by a janitor
    /// tick each time, and a statement falling between a late line and the next boundary was in no line).
    static func nextBoundary(after now: Double, period: Double) -> Double {
        guard period > 0 else { return now }
        return ((now / period).rounded(.down) + 1) * period
    }

    private func janitor() {
        let now = monotonicNow()
        if shuttingDown { drainForShutdown(now: now) }
        finishPauses()
        retiredPools.removeAll { $0.machine.total == 0 }
        if config.proxy.statsPeriod > 0, now >= nextSummary, index == 0 {
            nextSummary = Self.nextBoundary(after: now, period: config.proxy.statsPeriod)
            gatherStats { [unowned self] merged in
                logger.info("stats", metadata: ["summary": "\(merged.summaryLine(now: monotonicNow()))"])
            }
        }
        if workers.count > 1, index != 0, now >= nextGauges {
            nextGauges = now + 1
            workers.publish(gauges(), worker: index)
        }
        for probe in probes { probe.tick(now: now) }
        for forwarder in cancelForwarders where now > forwarder.deadline { forwarder.giveUp() }
        for client in waitingForReplica { client.retryRoute(now: now) }
        for client in clients {
            client.checkTimeout(now: now)
            client.parkIfIdle(now: now)
        }
        for pool in pools.values {
            for server in pool.allServers { server.checkTimeout(now: now) }
            pool.tick(now: now)
        }
        for pool in retiredPools {
            for server in pool.allServers { server.checkTimeout(now: now) }
        }
    }

    /// RELOAD and SIGHUP: re-read proxy.conf (and auth_file) without dropping clients. Pool sizes, timeouts,
    /// backends (added, removed, reweighted), routing and log settings take effect; a bad file is refused with
    /// the error logged and the old config kept. Returns the error, if any.
    @discardableResult
    func reload() -> String? {
        guard let path = config.path else { return "no config file to reload" }
        let next: Config
        let nextSecrets: [String: Secret]
        let nextTLS: (TLSContext?, [ServerTLSSettings: TLSContext])
        do {
            next = try ConfigParser.load(path: path)
            nextSecrets = try Self.loadSecrets(next)
            // Certificate files are read again even when their paths did not change (renewed certificates).
            nextTLS = try Self.loadTLS(next)
        } catch {
            logger.error("reload failed: keeping the old config", metadata: ["error": "\(error)"])
            return "\(error)"
        }
        apply(next, secrets: nextSecrets, tls: nextTLS)
        // The other workers take what this one read (one read of each file: every worker gets the same config);
        // each applies it to its own pools and clients. OpenSSL contexts are safe to share between threads.
        workers.broadcast(from: index) { $0.apply(next, secrets: nextSecrets, tls: nextTLS, announce: false) }
        logger.notice("config reloaded", metadata: ["path": "\(path)", "backends": "\(next.backends.map(\.name).joined(separator: ","))",
                                                    "users": "\(secrets.count)"])
        return nil
    }

    /// Takes a reloaded config on this worker (`announce`: the worker that read it, which logs what changed).
    private func apply(_ loaded: Config, secrets nextSecrets: [String: Secret], tls nextTLS: (TLSContext?, [ServerTLSSettings: TLSContext]),
                       announce: Bool = true) {
        var next = loaded
        for key in AdminConsole.restartOnlyKeys {
            let before = ConfigKeys.currentValues(config).first { $0.key == key }?.value
            let after = ConfigKeys.currentValues(next).first { $0.key == key }?.value
            if before != after, announce { logger.warning("reload: \(key) changes only at restart", metadata: ["kept": "\(before ?? "")"]) }
        }
        next.proxy.listenAddr = config.proxy.listenAddr
        next.proxy.listenPort = config.proxy.listenPort
        next.proxy.workers = config.proxy.workers
        let old = config
        config = next
        secrets = nextSecrets
        (clientTLS, serverTLSContexts) = nextTLS
        if announce { logTLS() }
        scramCache.removeAll()
        serverSCRAMKeys.removeAll()
        logger.logLevel = Logger.Level(rawValue: next.proxy.logLevel.rawValue) ?? .info
        querySampler = Self.sampler(next)
        quickStatements.limitMicros = next.proxy.serverPipelineMaxLatency * 1e6
        if Self.statsSettings(next) != Self.statsSettings(old) {
            stats = StatsRegistry(settings: Self.statsSettings(next), now: monotonicNow(), collector: workers.collector)
            nextSummary = Self.nextBoundary(after: monotonicNow(), period: next.proxy.statsPeriod)
            if announce { logger.notice("stats settings changed: statistics restart") }
        }
        backends.reconfigure(Self.backendList(next))
        backends.policy = Self.healthPolicy(next)
        backends.loadBalance = next.proxy.loadBalance
        router = Router(fallback: next.proxy.replicaFallback, readYourWritesTimeout: next.proxy.readYourWritesTimeout)
        // Pools: a backend that is gone or moved retires its pools; the rest take the new sizes.
        var rerouted: [ClientConnection] = []
        for (key, pool) in pools {
            if let backend = backendConfig(named: pool.backend.name), backend.host == pool.backend.host, backend.port == pool.backend.port {
                pool.resize(next.poolSize(forUser: pool.user))
            } else {
                pools[key] = nil
                retiredPools.append(pool)
                rerouted += pool.retire()
            }
        }
        if index == 0, old.backends != next.backends || old.proxy.healthCheckUser != next.proxy.healthCheckUser
            || old.proxy.healthCheckDatabase != next.proxy.healthCheckDatabase {
            for probe in probes { probe.close() }
            probes = next.proxy.healthCheckUser.isEmpty ? [] : next.backends.map { HealthProbe(proxy: self, backend: $0) }
        }
        for client in rerouted { client.backendFailed(code: SQLState.connectionFailure, message: "backend removed by RELOAD", reroute: true) }
    }

    /// When this worker next publishes its gauges for /metrics (workers other than 0, once a second).
    private var nextGauges = 0.0

    /// Pools whose backend RELOAD removed or moved, kept until their last server is gone.
    private var retiredPools: [Pool] = []

    // MARK: PAUSE / RESUME

    /// Databases paused by `PAUSE db`; `pausedAll` is set by a bare `PAUSE`.
    var pausedDatabases: Set<String> = []
    var pausedAll = false
    /// Clients that asked for a server while their database was paused.
    var pausedClients: Set<ClientConnection> = []
    /// Admin clients waiting for PAUSE to finish (no server of theirs still lent), by database (nil: all).
    var pauseWaiters: [(client: ClientConnection, database: String?)] = []
    /// Whether a PAUSE check is on its way through the workers.
    var pauseCheckPending = false

    // MARK: Shutdown

    /// SHUTDOWN from the admin console: as SIGTERM.
    func requestShutdown(reason: String) {
        loop.every(0.05) { [unowned self] in if !self.shuttingDown { self.shutdown(signal: reason, graceful: true) } }
    }

    /// Stop accepting. Graceful (SIGTERM, SHUTDOWN): clients between transactions are closed now, the others
    /// when their transaction ends, everything at shutdown_timeout. Immediate (SIGINT): everything now, cleanly.
    private func shutdown(signal: String, graceful: Bool, passOn: Bool = true) {
        if shuttingDown && graceful { return }
        if passOn {
            workers.broadcast(from: index) { $0.shutdown(signal: signal, graceful: graceful, passOn: false) }
            logger.notice("shutting down", metadata: ["signal": "\(signal)", "mode": "\(graceful ? "graceful" : "immediate")",
                                                      "workers": "\(workers.count)"])
        }
        shuttingDown = true
        shutdownDeadline = graceful ? monotonicNow() + config.proxy.shutdownTimeout : monotonicNow()
        listener?.close()
        listener = nil
        drainForShutdown(now: monotonicNow())
    }

    /// When the proxy stops by shutdown_timeout even if transactions are still open.
    private var shutdownDeadline = 0.0
    private var stopping = false

    /// Closes every client that is not inside a transaction (all of them once the deadline passed); with no
    /// client left, closes the servers and stops the loop after queued messages flushed.
    private func drainForShutdown(now: Double) {
        let force = now >= shutdownDeadline
        for client in clients where force || client.canCloseForShutdown {
            client.fail(code: SQLState.adminShutdown, message: "switchyard is shutting down", reason: "shutdown")
        }
        guard clients.isEmpty, !stopping else { return }
        stopping = true
        for pool in pools.values + retiredPools {
            for server in pool.allServers { server.close(reason: "shutdown") }
        }
        for probe in probes { probe.close() }
        metricsServer = nil
        // Let queued error and Terminate messages flush, then stop.
        loop.every(0.2) { [unowned self] in self.loop.stop() }
    }
}
