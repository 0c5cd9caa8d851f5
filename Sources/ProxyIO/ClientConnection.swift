// One client connection: startup and authentication (through ClientLoginStateMachine), waiting for a
// server, then relaying client messages to it. It looks inside only Terminate and the headers it must count.
import CLibevent
import Foundation
import Logging
import PGWire
import ProxyCore

final class ClientConnection: StreamHandler, Hashable {
    enum Phase {
        case startup
        /// Transaction mode, logged in, between transactions: no server.
        case idle
        /// Logged in to the admin console (database "switchyard"): no server.
        case admin
        case waitingForServer
        case settingUp(ServerConnection)
        case active(ServerConnection)
        /// Transaction mode: its lone read was sent behind another client's on this server; it becomes the
        /// server's attached client (`.active`) when the statements before it are done.
        case riding(ServerConnection)
        case closed
    }

    let id: Int
    /// The Proxy outlives every connection (it runs the loop that owns them). A strong `let`: Swift reads it
    /// without a retain/release pair per use, which `unowned(unsafe)` costs; the connection's own retain of the
    /// Proxy is one at creation and one at the end.
    let proxy: Proxy
    let stream: Stream
    let peer: String
    var phase: Phase = .startup
    /// The login state machine, boxed so the ~300 bytes it takes (and its closures) go once the client is
    /// logged in: an idle client keeps only what it needs.
    private final class LoginBox {
        var machine: ClientLoginStateMachine
        init(_ machine: ClientLoginStateMachine) { self.machine = machine }
    }
    private var loginBox: LoginBox?
    var login: ClientLoginStateMachine {
        get { loginBox!.machine }
        set { loginBox!.machine = newValue }
    }
    var info: ClientLogin?
    var pool: Pool?
    /// The key this client got in BackendKeyData: proxy-issued, mapped to the real server key on cancel.
    var processID: Int32 = 0
    var secretKey: Int32 = 0
    /// Bytes owed to the server of the message being forwarded.
    var remaining = 0
    let connectedAt: Double
    var waitingSince = 0.0
    /// Over max_client_conn: refused once its startup packet is read.
    var overLimit = false
    /// Login replies (ParameterStatus, BackendKeyData) have been sent.
    var greeted = false
    /// Logged in from the greeting cache: park as soon as the greeting is flushed (`parkNow`).
    var parkWhenFlushed = false
    var poolMode: PoolMode = .session
    /// Read-your-writes: the primary's WAL position after this client's last write transaction.
    var minLSN: LSN?
    /// The next batch goes to the primary whatever it is (a misrouted read being retried).
    var forcePrimary = false
    /// The current server was chosen for a write (a write transaction ends with a WAL position query).
    var routedWrite = false
    /// Read-your-writes: a statement of the transaction routed as a write may have changed data (only then
    /// does its end learn a WAL position: BEGIN; SELECT ...; COMMIT leaves the client's reads free to go to
    /// any replica). Statements are classified until one may write.
    var transactionWrote = false
    /// The session may hold a `switchyard.route` parameter (from the startup packet, or a SET that reached a
    /// server): only then does routing look it up (a String-keyed lookup per statement otherwise).
    var routeParameterPossible = false
    /// Transaction mode: the client's BEGIN was answered by the proxy (defer_begin); it goes to the server
    /// with the client's next statement, and the client is in a transaction meanwhile.
    var heldBegin = false
    /// When the client last became idle without a server (transaction mode; client_idle_timeout).
    var idleSince = 0.0
    /// Admin console: a command (PAUSE) is still running; further input waits.
    var adminCommandPending = false
    /// Servers lost during check/setup for this client in a row.
    var serverRetries = 0
    /// Session defaults from the startup packet: RESET and DISCARD ALL return to these, as in Postgres.
    var startupParameters: [String: String] = [:]

    /// Rarely used and per-statement state (ClientConnection+Extras.swift); nil while all of it is at defaults.
    var extras: ClientExtras?

    var log: Logger { proxy.logger }

    init(id: Int, proxy: Proxy, fd: Int32, peer: String) {
        self.id = id
        self.proxy = proxy
        self.peer = peer
        self.connectedAt = monotonicNow()
        self.loginBox = LoginBox(proxy.makeLoginMachine())
        self.stream = Stream(loop: proxy.loop, fd: fd, handler: DummyHandler.shared)
        stream.handler = self
    }

    static func == (a: ClientConnection, b: ClientConnection) -> Bool { a === b }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    /// application_name as the client set it (startup or SET), unquoted.
    var applicationName: String {
        session.parameters["application_name"].map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'")) } ?? ""
    }

    /// The client's state as SHOW CLIENTS and /metrics name it: login, idle, waiting or active.
    var adminState: String {
        switch phase {
        case .startup: return "login"
        case .idle, .admin, .closed: return "idle"
        case .waitingForServer: return "waiting"
        case .settingUp, .active, .riding: return "active"
        }
    }

    var label: String { "client \(id) \(peer)" + (info.map { " \($0.user)@\($0.database)" } ?? "") }

    // MARK: StreamHandler

    /// Whether `server` is this client's active server. A function of its own so that no copy of the phase's
    /// payload (a retained server) outlives the comparison, as a `case .active(let current)` binding in a loop
    /// condition would.
    @inline(__always)
    func isActive(on server: ServerConnection) -> Bool {
        if case .active(let current) = phase { return current === server }
        return false
    }

    func streamReadable(_ stream: Stream) {
        switch phase {
        case .startup: readLogin()
        case .active: relayToServer()
        case .idle: idleInput()
        case .admin: readAdmin()
        case .waitingForServer, .settingUp, .riding, .closed:
            // Bytes sent before the login completes stay buffered until a server is attached (a rider's until
            // its statement is done).
            break
        }
    }

    func streamWritable(_ stream: Stream) {
        // Only the first drain after the greeting parks at once (a later one waits for parkAfter).
        let parkRequested = parkWhenFlushed
        parkWhenFlushed = false
        if case .active(let server) = phase { return server.resumeFromBackpressure() }
        if parkRequested { parkNow() }
    }

    func streamEvent(_ stream: Stream, events: Int16) {
        if case .startup = phase, case .awaitingTLSHandshake = login.state {
            // The TLS handshake after 'S' ended: the login continues over TLS, or it failed.
            if events & Int16(BEV_EVENT_CONNECTED) != 0, let peer = stream.tlsPeer {
                log.debug("client TLS established", metadata: ["client": "\(label)", "tls": "\(stream.tlsDescription ?? "")",
                                                               "certificate_cn": "\(peer.commonName ?? "-")"])
                perform(login.tlsEstablished(peer))
                readLogin()
            } else {
                perform(login.tlsFailed(stream.failure ?? "connection closed during the handshake"))
            }
            return
        }
        if events & Int16(BEV_EVENT_EOF | BEV_EVENT_ERROR) != 0 {
            disconnected(reason: events & Int16(BEV_EVENT_EOF) != 0 ? "client closed the connection" : "client socket error")
        }
    }

    // MARK: Login

    private func readLogin() {
        while case .startup = phase {
            switch login.state {
            case .awaitingStartup:
                switch StartupDecoder.decode(stream.peek(max: StartupDecoder.maxStartupLength)) {
                case .needMore: return
                case .violation(let v):
                    return fail(code: SQLState.protocolViolation, message: v.message, reason: "bad startup packet")
                case .packet(let packet, let consumed):
                    stream.drain(consumed)
                    if case .startup = packet, overLimit {
                        return fail(code: SQLState.tooManyConnections, message: "no more connections allowed (max_client_conn)", reason: "max_client_conn")
                    }
                    perform(login.startupReceived(packet, trailingBytes: stream.inputLength))
                }
            case .awaitingMD5, .awaitingSASLInitial, .awaitingSASLFinal:
                let frame: Frame
                do {
                    guard let f = try stream.takeFrame(maxLength: StartupDecoder.maxStartupLength) else { return }
                    frame = f
                } catch {
                    return fail(code: SQLState.protocolViolation, message: error.message, reason: "bad auth message")
                }
                perform(login.passwordReceived(frame))
            case .awaitingTLSHandshake, .authenticated, .failed:
                return
            }
        }
    }

    private func perform(_ action: ClientLoginStateMachine.Action) {
        switch action {
        case .send(let bytes): stream.write(bytes)
        case .refuseEncryption(let byte): stream.write([byte])
        case .acceptEncryption:
            guard let ssl = proxy.clientTLS?.makeServerSSL() else {
                return fail(code: SQLState.internalError, message: "switchyard cannot start TLS", reason: "no TLS context")
            }
            stream.write([UInt8(ascii: "S")])
            stream.acceptTLS(ssl)
        case .none:
            break
        case .close(let reason):
            log.info("client login failed", metadata: ["client": "\(label)", "reason": "\(reason)"])
            close(reason: reason)
        case .cancel(let pid, let key):
            proxy.forwardCancel(processID: pid, secretKey: key)
            close(reason: "cancel request")
        case .fail(let bytes, let reason):
            log.info("client login failed", metadata: ["client": "\(label)", "reason": "\(reason)"])
            finish(bytes, reason: reason)
        case .authenticated(let login, let send):
            info = login
            authPrefix = send
            log.info("client logged in", metadata: ["client": "\(label)", "tls": "\(stream.tlsDescription ?? "off")"])
            proxy.clientAuthenticated(self)
            if case .startup = phase {} else { loginBox = nil }
        }
    }

    // MARK: Server assignment

    func waitForServer(in pool: Pool) {
        self.pool = pool
        poolMode = pool.poolMode
        for (name, value) in StartupOptions.effectiveParameters(info?.parameters ?? []) {
            startupParameters[name] = SQLText.quote(value)
        }
        // Shared storage with every client of the same startup values: a server set up for one of them is
        // recognised as set up for the next by identity, without comparing the parameters (attach).
        startupParameters = proxy.intern(startupParameters)
        routeParameterPossible = startupParameters[Self.routeParameter] != nil
        // Without a box the session already is the startup parameters (ClientConnection+Extras.swift).
        extras?.session.parameters = startupParameters
        if poolMode == .transaction, let cached = proxy.greetings[greetingKey],
           let reported = StartupOptions.greeting(cached: cached, startup: info?.parameters ?? []) {
            // Transaction mode: a server already told us this database's parameters; no server is needed
            // until the first query (the client's own values are SET on whichever server it gets).
            greet(reported)
            phase = .idle
            idleSince = proxy.loop.now
            parkWhenFlushed = true
            stream.setWriteLowWatermark(0)
            return idleInput()
        }
        requestServer()
    }

    /// The key of the greeting cache: database and user.
    private var greetingKey: String { (info?.database ?? "") + "\u{0}" + (info?.user ?? "") }

    /// AuthenticationOk (after the SASL final message owed), ParameterStatus, BackendKeyData, ReadyForQuery.
    private func greet(_ parameters: [String: String]) {
        greeted = true
        var greeting = authPrefix + ProxyMessages.authenticationOk()
        authPrefix = []
        for (name, value) in parameters.sorted(by: { $0.key < $1.key }) {
            greeting += ProxyMessages.parameterStatus(name, value)
        }
        greeting += ProxyMessages.backendKeyData(processID: processID, secretKey: secretKey)
        greeting += ProxyMessages.readyForQuery(.idle)
        stream.write(greeting)
    }

    /// The SASL final message owed before AuthenticationOk, once.
    func takeAuthPrefix() -> [UInt8] {
        defer { authPrefix = [] }
        return authPrefix
    }

    /// The client needs a server: route its pending batch (transaction mode; session mode and login go
    /// by the same router), then queue on the chosen backend's pool.
    func requestServer() {
        guard let current = pool else { return }
        let now = proxy.loop.now
        if proxy.shuttingDown && greeted && !heldBegin {
            // No new transaction starts during shutdown (one the client began, held by the proxy, goes on).
            return fail(code: SQLState.adminShutdown, message: "switchyard is shutting down", reason: "shutdown")
        }
        if proxy.isPaused(current.database) {
            // PAUSE: wait (query_wait_timeout still applies) until RESUME.
            if case .waitingForServer = phase {} else { waitingSince = now }
            phase = .waitingForServer
            proxy.pausedClients.insert(self)
            return
        }
        var (request, preference) = greeted && poolMode == .transaction ? pendingRoute() : (greeted || poolMode == .session ? .write : .read, .auto)
        let retrying = forcePrimary
        if forcePrimary {
            forcePrimary = false
            preference = .primary
        }
        let context = RouteContext(request: request, preference: preference,
                                   minLSN: proxy.config.proxy.readYourWrites == .lsn ? minLSN : nil,
                                   waitDeadline: replicaWaitDeadline, now: now)
        var decision = proxy.router.route(context, backends: &proxy.backends, random: &proxy.random)
        if !greeted, case .fail = decision, request == .read {
            // Logging in needs any backend: with no replica available, greet from the primary.
            decision = proxy.router.route(RouteContext(request: .write, now: now), backends: &proxy.backends, random: &proxy.random)
        }
        if proxy.debugLogging { log.debug("route", metadata: ["client": "\(label)", "request": "\(request)", "preference": "\(preference.rawValue)",
                                      "min_lsn": "\(context.minLSN?.description ?? "-")", "decision": "\(decision)"]) }
        switch decision {
        case .primary(let name), .replica(let name):
            if !proxy.waitingForReplica.isEmpty { proxy.waitingForReplica.remove(self) }
            replicaWaitDeadline = nil
            // The same backend as last time needs no lookup (the common case: one transaction after another).
            let pool: Pool
            if current.backend.name == name {
                pool = current
            } else {
                guard let backend = proxy.backendConfig(named: name) else { return }
                pool = proxy.pool(database: current.database, user: current.user, backend: backend)
            }
            // Read-your-writes matters only when there are replicas to read from.
            routedWrite = request == .write && !proxy.config.replicas.isEmpty
            transactionWrote = false
            // The same pool as last time, usually: no retain of it and release of itself.
            if self.pool !== pool { self.pool = pool }
            // A lone autocommit read may go behind another client's on a busy server (the shared pipeline).
            if greeted && poolMode == .transaction && !retrying && pool.boarding != nil && rideIfPossible(pool) { return }
            phase = .waitingForServer
            waitingSince = now
            pool.request(for: self)
        case .waitForReplica(let until):
            // Read-your-writes: no replica has replayed this client's last write yet; the janitor retries.
            replicaWaitDeadline = until
            phase = .waitingForServer
            proxy.waitingForReplica.insert(self)
        case .fail(let sqlState, let message):
            proxy.waitingForReplica.remove(self)
            replicaWaitDeadline = nil
            if greeted {
                rejectPendingBatch(code: sqlState, message: message)
            } else {
                fail(code: sqlState, message: message, reason: "no backend")
            }
        }
    }

    /// The backend this client waited for could not be reached. A logged-in transaction-mode client routes
    /// its batch again (another replica, or the primary) or gets the error for that batch only; a client
    /// still logging in gets the error and is closed.
    func backendFailed(code: String, message: String, reroute: Bool) {
        guard case .waitingForServer = phase else { return }
        if reroute && serverRetries < 3 {
            serverRetries += 1
            return requestServer()
        }
        if greeted && poolMode == .transaction {
            rejectPendingBatch(code: code, message: message)
        } else {
            fail(code: code, message: message, reason: "server unavailable")
        }
    }

    /// Janitor: a read waiting for read-your-writes routes again (a replica may have caught up, or time is up).
    func retryRoute(now: Double) {
        guard case .waitingForServer = phase, replicaWaitDeadline != nil else {
            proxy.waitingForReplica.remove(self)
            return
        }
        requestServer()
    }

    /// A cancel request while this client waits for a server (pool full, read-your-writes, PAUSE): its batch
    /// leaves the queue unsent and gets the error Postgres gives a cancelled statement.
    func cancelWhileWaiting() {
        guard case .waitingForServer = phase else { return }
        leaveWaiting()
        replicaWaitDeadline = nil
        rejectPendingBatch(code: SQLState.queryCanceled, message: "canceling statement due to user request")
    }

    /// Answers the client's next batch (a Query, or extended messages through Sync) with an error, without a server.
    func rejectPendingBatch(code: String, message: String) {
        routedQueryFingerprint = nil
        // A BEGIN the proxy answered never reached a server: ReadyForQuery below tells the client it is idle.
        heldBegin = false
        phase = .idle
        idleSince = proxy.loop.now
        while let (type, lengthField) = stream.peekHeader() {
            let total = Int(lengthField) + 1
            guard lengthField >= 4, stream.inputLength >= total else { break }
            stream.drain(total)
            if type == FrontendMessageID.query.rawValue || type == FrontendMessageID.sync.rawValue { break }
        }
        stream.write(ProxyMessages.error(severity: "ERROR", code: code, message: message) + ProxyMessages.readyForQuery(.idle))
        if stream.inputLength > 0 { idleInput() }
    }

    /// The pool gives this client a server: apply its startup parameters, then greet it.
    func attach(_ server: ServerConnection) {
        server.phase = .active
        guard case .waitingForServer = phase else {
            // Gone meanwhile: hand the server back.
            return server.release()
        }
        server.client = self
        server.lent = true
        server.waitMicros = Int(max(0, proxy.loop.now - waitingSince) * 1e6)
        server.tracking = poolMode == .transaction
        phase = .settingUp(server)
        // Most of the time the server already has this client's parameters: no SQL at all.
        let parameters = sessionParameters
        var sql = server.sessionParams == parameters
            ? "" : SessionState.syncSQL(from: server.effectiveParams(for: parameters), to: parameters)
        // Read in place (a copy of the settings would retain each of their strings).
        if !proxy.config.proxy.serverCheckQuery.isEmpty, proxy.loop.now - server.idleSince >= proxy.config.proxy.serverCheckDelay {
            sql = proxy.config.proxy.serverCheckQuery + ";" + sql
        }
        if sql.isEmpty {
            serverReady(server)
        } else {
            server.runInternal(.setup, sql: sql)
        }
    }

    /// The server given to this client broke during its check or setup: wait for another one (a few times).
    func serverLostBeforeUse() {
        guard case .settingUp = phase else { return }
        serverRetries += 1
        guard serverRetries <= 3 else {
            return fail(code: SQLState.connectionFailure, message: "server connections keep failing before use", reason: "server lost")
        }
        requestServer()
    }

    /// The server is set up: send the login replies and start relaying.
    func serverReady(_ server: ServerConnection) {
        guard case .settingUp = phase else { return }
        phase = .active(server)
        serverRetries = 0
        server.readySince = proxy.loop.now
        if greeted { return relayToServer() }
        greet(server.parameters)
        if poolMode == .transaction, proxy.greetings[greetingKey] == nil {
            // What this server reported greets the next clients of this database and user, when this client set
            // nothing but greetable values (application_name, reset to the server default here).
            if let cached = StartupOptions.cacheableGreeting(server.parameters, startup: info?.parameters ?? []) {
                proxy.greetings[greetingKey] = cached
            }
        }
        if proxy.debugLogging { log.debug("client got server", metadata: ["client": "\(label)", "server": "\(server.label)"]) }
        if poolMode == .transaction {
            transactionEnded(on: server)
        } else {
            relayToServer()
        }
    }

    /// Transaction mode: the server reported idle with nothing in flight. Commit the transaction's session
    /// effects, and give the server back unless the client is pinned.
    func transactionEnded(on server: ServerConnection) {
        guard isActive(on: server) else { return }
        if !pendingEffects.isEmpty {
            if !server.transactionFailed {
                // The server's own parameters follow the statements (RESET goes to the server's default);
                // the client's return to its startup values.
                var serverState = SessionState()
                serverState.parameters = server.sessionParams
                for effect in pendingEffects {
                    serverState.apply(effect)
                    commit(effect, on: server)
                }
                server.sessionParams = serverState.parameters
            }
            pendingEffects.removeAll()
        }
        server.transactionFailed = false
        server.watchCommandTags = false
        if server.walQueryInFlight || wantsWalPosition && remaining == 0 {
            // Read-your-writes: learn a WAL position at or after this commit before the server goes back.
            routedWrite = false
            // Nothing the client sends meanwhile is relayed: it waits in the input buffer.
            phase = .settingUp(server)
            if server.walQueryInFlight {
                server.awaitWalQuery()
            } else {
                server.runInternal(.walPosition, message: walPositionQuery)
            }
            return
        }
        routedWrite = false
        if sessionIsPinned || remaining > 0 {
            if sessionIsPinned { log.debug("client pinned", metadata: ["client": "\(label)", "reason": "\(session.pinReason ?? "")"]) }
            return relayToServer()
        }
        phase = .idle
        idleSince = proxy.loop.now
        server.clientDone()
        idleInput()
    }

    /// Read-your-writes: this client's transaction was routed as a write, so a WAL position is learned at its end.
    var wantsWalPosition: Bool {
        routedWrite && transactionWrote && greeted && proxy.config.proxy.readYourWrites == .lsn && !sessionIsPinned
    }

    /// The WAL position after this client's write: its reads now need a replica that replayed it.
    func walPositionKnown(_ lsn: LSN?, on server: ServerConnection) {
        if let lsn, minLSN.map({ lsn > $0 }) ?? true { minLSN = lsn }
        guard case .settingUp(let current) = phase, current === server else { return }
        phase = .active(server)
        transactionEnded(on: server)
    }

    private func restoreStartupParameters() {
        for (name, value) in startupParameters where session.parameters[name] == nil { session.parameters[name] = value }
    }

    static let routeParameter = "switchyard.route"

    private func commit(_ effect: SessionEffect, on server: ServerConnection) {
        session.apply(effect)
        if case .set(let name, _) = effect, name.lowercased() == Self.routeParameter { routeParameterPossible = true }
        server.forget(effect)
        switch effect {
        case .discardAll, .deallocate(nil):
            if case .discardAll = effect { restoreStartupParameters() }
            statements.removeAll()
            seenEpochs.removeAll()
            lastBoundName.removeAll()
        case .reset(let name):
            if let value = startupParameters[name.lowercased()] { session.parameters[name.lowercased()] = value }
        case .resetAll:
            restoreStartupParameters()
        case .set, .discardTemp, .deallocate, .sqlPrepare, .listen, .unlisten, .advisoryLock,
             .advisoryUnlock, .advisoryUnlockAll, .createTemp, .declareWithHold, .closeCursor, .unknownSessionChange:
            break
        }
    }

    // MARK: Relay

    /// Moves client messages to the server. Looks at headers to count ReadyForQuery owed; Terminate ends the session.
    func relayToServer() {
        guard case .active(let server) = phase else { return }
        if poolMode == .transaction { return relayTransaction(to: server) }
        let out = server.stream
        let maxLength = proxy.config.proxy.maxPacketSize
        relay: while true {
            if remaining > 0 {
                guard forwardOwedBytes(to: server) else { break }
                continue
            }
            guard let header = peekFrameHeader(maxLength: maxLength) else { break }
            let (type, lengthField) = (header.type, Int32(header.length))
            switch type {
            case FrontendMessageID.terminate.rawValue:
                stream.drain(min(stream.inputLength, Int(lengthField) + 1))
                return disconnected(reason: "client terminated")
            case FrontendMessageID.query.rawValue where Int(lengthField) < inspectLimit:
                // Read whole: a lone short Query may be one of the proxy's own settings (SET
                // switchyard.statement_timeout); every one is fingerprinted for stats.
                let total = Int(lengthField) + 1
                guard stream.inputLength >= total else { break relay }
                if lengthField <= 1024, server.pendingReady == 0, !server.unsynced,
                   let reply = proxySettingReply(total: total, status: server.transactionStatus) {
                    stream.write(reply)
                    continue
                }
                server.requestSent(queryFingerprint(total: total))
                server.unsynced = false
            case FrontendMessageID.query.rawValue, FrontendMessageID.functionCall.rawValue:
                server.requestSent(nil)
                server.unsynced = false
            case FrontendMessageID.sync.rawValue:
                server.requestSent(batchFingerprint)
                batchFingerprint = nil
                server.unsynced = false
            case FrontendMessageID.parse.rawValue where Int(lengthField) < inspectLimit:
                let total = Int(lengthField) + 1
                guard stream.inputLength >= total else { break relay }
                if let parse = try? ParseMessage(payload: Array(stream.peek(max: total).dropFirst(5))) {
                    let fingerprint = proxy.classifier.fingerprints.of(parse.query)
                    if parse.name.isEmpty { unnamedFingerprint = fingerprint } else { namedFingerprints[parse.name] = fingerprint }
                    batchFingerprint = fingerprint
                }
                server.unsynced = true
            case FrontendMessageID.bind.rawValue:
                let prefix = stream.peek(max: min(Int(lengthField) + 1, 5 + 2 * 1025))
                if let head = try? BindHead.parse(prefix: Array(prefix.dropFirst(5))) {
                    batchFingerprint = head.statement.isEmpty ? unnamedFingerprint : namedFingerprints[head.statement]
                }
                server.unsynced = true
            case FrontendMessageID.parse.rawValue, FrontendMessageID.describe.rawValue,
                 FrontendMessageID.execute.rawValue, FrontendMessageID.close.rawValue, FrontendMessageID.flush.rawValue:
                server.unsynced = true
            default:
                break
            }
            remaining = Int(lengthField) + 1
        }
        guard case .active = phase else { return }
        if out.outputLength > pauseBytes {
            stream.pauseReading()
            out.setWriteLowWatermark(resumeBytes)
        }
    }

    /// Moves the rest of the message being forwarded (`remaining` bytes) to the server, as far as it is
    /// buffered; false when nothing could move.
    func forwardOwedBytes(to server: ServerConnection) -> Bool {
        let moved = stream.move(upTo: remaining, to: server.stream)
        guard moved > 0 else { return false }
        remaining -= moved
        server.bytesIn &+= moved
        return true
    }

    /// The next message's header; nil when fewer than 5 bytes are buffered, or when its length is invalid,
    /// in which case the client got 08P01 and is closed (callers stop on nil and check `phase`).
    func peekFrameHeader(maxLength: Int) -> FrameHeader? {
        guard let (type, lengthField) = stream.peekHeader() else { return nil }
        switch FrameHeader.parse(type: type, lengthField: lengthField, maxLength: maxLength) {
        case .success(let header):
            return header
        case .failure(let violation):
            fail(code: SQLState.protocolViolation, message: violation.message, reason: "protocol violation")
            return nil
        }
    }

    /// The server drained its output: read from the client again.
    func resumeFromBackpressure() {
        stream.resumeReading()
        relayToServer()
    }

    // MARK: Ends

    /// Sends an ErrorResponse and closes; the server, if any, is released or closed.
    func fail(code: String, message: String, reason: String) {
        finish(ProxyMessages.error(code: code, message: message), reason: reason)
    }

    private func finish(_ bytes: [UInt8], reason: String) {
        if case .closed = phase { return }
        detachServer(clean: false)
        phase = .closed
        stream.closeAfterFlush(bytes)
        proxy.clientClosed(self, reason: reason)
    }

    /// The client left (Terminate, EOF or socket error).
    func disconnected(reason: String) {
        if case .closed = phase { return }
        detachServer(clean: true)
        close(reason: reason)
    }

    private func close(reason: String) {
        if case .closed = phase { return }
        phase = .closed
        stream.close()
        proxy.clientClosed(self, reason: reason)
    }

    /// Out of whichever queue it waits in: the pool's, read-your-writes', PAUSE's.
    private func leaveWaiting() {
        pool?.cancelWait(self)
        proxy.waitingForReplica.remove(self)
        proxy.pausedClients.remove(self)
    }

    private func detachServer(clean: Bool) {
        switch phase {
        case .active(let server), .settingUp(let server):
            if clean && remaining == 0 { server.release() } else { server.close(reason: "client failed") }
        case .waitingForServer:
            leaveWaiting()
        case .riding:
            // Its statement is on the server already: the reply is read and dropped when it comes.
            break
        case .startup, .idle, .admin, .closed:
            break
        }
    }
}
