// One connection to a Postgres server: connect, log in, run the proxy's own queries (SET, reset),
// and relay server messages to the attached client, looking only at ReadyForQuery and ParameterStatus.
import CLibevent
import Foundation
import Logging
import PGWire
import ProxyCore

/// Read-your-writes: a WAL position at or after a commit (the insert position covers the commit record even
/// when synchronous_commit is off).
let walPositionQuery = ProxyMessages.query("SELECT pg_current_wal_insert_lsn()")

final class ServerConnection: StreamHandler, Hashable {
    /// Without payloads that need reference counting (the login machine and an internal query's first error
    /// are kept beside it): reading the phase on every forwarded message copies no strings or objects.
    enum Phase {
        case connecting
        /// Logging in: `login` holds the state machine.
        case login
        /// Running a query of the proxy's own; responses are swallowed until ReadyForQuery (the first error in
        /// `internalError`).
        case internalQuery(InternalQuery)
        case idle
        case active
        case closed
    }

    enum InternalQuery {
        case setup      // health check and SETs that bring the server to the client's session parameters
        case reset      // server_reset_query after a client left
        case walPosition // pg_current_wal_lsn() after a client's write transaction (read-your-writes)
    }

    let id: Int
    let pool: Pool
    let backend: BackendConfig
    let stream: Stream
    var phase: Phase = .connecting
    /// While `.login`.
    private var login: ServerLoginStateMachine?
    /// While `.internalQuery`: the first ErrorResponse of the query.
    private var internalError: ErrorFields?
    /// The attached client while active or being set up for one.
    /// Not weak (see Stream.handler): every path that ends the client's use of this server (release, goIdle,
    /// close) clears it, and a client detaches its server before it closes.
    unowned(unsafe) var client: ClientConnection?
    /// ParameterStatus values as the server last reported them.
    var parameters: [String: String] = [:]
    var processID: Int32 = 0
    var secretKey: Int32 = 0
    var address: SocketAddress
    let openedAt: Double
    var deadline: Double
    /// Counted in its backend's `outstanding` (least_outstanding load balancing) while lent to a client.
    var lent = false {
        didSet { if lent != oldValue { adjustOutstanding(by: lent ? 1 : -1) } }
    }
    /// When the server last went idle in the pool (server_idle_timeout, server_check_delay).
    var idleSince: Double = 0
    /// Parameters SET on this server (name -> SQL text of the value) since its last reset.
    var sessionParams: [String: String] = [:]

    // Transaction-mode state: statements prepared here, and the responses still owed to the client.
    var statements: ServerStatementCache
    /// Statements whose server copy may be wrong (DDL changed them, or a batch with their Parse failed):
    /// the next use sends Close before Parse (Close of a missing statement is not an error).
    var staleStatements: Set<Int> = []
    /// The statement epoch each statement here was prepared at (see Proxy.statementEpoch).
    var preparedEpoch: [Int: Int] = [:]
    /// Statements parsed since the last ReadyForQuery: if the batch fails they become stale.
    var parsedSinceReady: [Int] = []
    var tracker = ResponseTracker()
    /// The WAL position query went behind the client's COMMIT (sendWalQueryBehindCommit): its replies follow.
    var walQueryInFlight = false
    /// Transaction mode: track responses (rewritten prepared statements, session effects).
    var tracking = false
    /// An error arrived since the last ReadyForQuery(idle), or the transaction ended with ROLLBACK.
    var transactionFailed = false
    /// Look at CommandComplete tags (only while the client has session effects waiting for commit).
    var watchCommandTags = false

    // Shared pipeline (ServerConnection+Pipeline.swift).
    /// Clients whose lone reads were sent behind the attached client's requests, oldest first (strong: one that
    /// left still owns its reply until it is read).
    var riders: [ClientConnection] = []
    /// Everything in flight here is lone autocommit reads: another may be sent behind them.
    var boardable = false
    /// The attached client left while riders waited behind it (its replies are dropped); kept alive until done.
    var departed: ClientConnection?
    /// Each rider's copy of its Query (retried on the primary after a 25006 on a replica, or again after a
    /// cancel meant for an earlier statement), and cancelsSent when it boarded.
    var riderTickets: [(query: KeptBytes, cancelMark: Int)] = []
    /// Storage of tickets done with, reused for the next riders' copies: riding allocates nothing once warm.
    var spareQueries: [KeptBytes] = []
    /// A cancel request went to this server and its ReadyForQuery has not come yet: nobody boards.
    var cancelInFlight = false
    /// Cancel requests sent for this connection (client's or statement_timeout's), ever.
    var cancelsSent = 0
    /// Cancel requests for this connection that Postgres has not yet confirmed (CancelForwarder): while any is
    /// on its way the connection is not handed to another client, whose statement it could hit.
    var cancelsOutstanding = 0
    /// Went idle while a cancel was on its way: back to the pool when the last one lands.
    private var releaseAfterCancel = false
    /// cancelsSent when the attached rider boarded: a later cancel was meant for a statement before its own.
    var riderCancelMark = Int.max
    /// Where this backend's status was in `proxy.backends` last time (a hint; a reload may move it).
    private var backendSlot = -1

    func adjustOutstanding(by delta: Int) {
        proxy.backends.adjustOutstanding(backend.name, by: delta, slot: &backendSlot)
    }

    /// Riders sent here since the server was lent (at most server_pipeline_depth - 1).
    var boarded = 0
    /// Riders that asked to cancel before their statement started.
    var cancelsOnStart: [ClientConnection] = []

    // Relay state: bytes still to forward of the current server message.
    private var remaining = 0
    /// ReadyForQuery messages owed by the server (one per Query, Sync, FunctionCall the client sent).
    var pendingReady = 0
    /// When the oldest request still owed a ReadyForQuery was sent (statement_timeout runs from here).
    var requestSince = 0.0
    /// When the last ReadyForQuery arrived (idle-in-transaction and idle-client clocks run from here).
    var readySince = 0.0
    /// statement_timeout: when the proxy cancelled the running statement; nil when it has not.
    var cancelSentAt: Double?
    /// The statement_timeout (seconds) that fired, for the error the client gets.
    var cancelledAfter = 0.0
    /// The client sent extended-protocol messages since its last Sync.
    var unsynced = false
    var transactionStatus: TransactionStatus = .idle

    var proxy: Proxy { pool.proxy }
    var log: Logger { pool.proxy.logger }

    init?(id: Int, pool: Pool, backend: BackendConfig, address: SocketAddress) {
        self.id = id
        self.pool = pool
        self.backend = backend
        self.address = address
        let fd = socket(Int32(address.storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        evutil_make_socket_nonblocking(fd)
        SocketOptions.setNoDelay(fd)
        let now = monotonicNow()
        openedAt = now
        deadline = now + pool.proxy.config.proxy.serverConnectTimeout
        statements = ServerStatementCache(capacity: pool.proxy.config.proxy.maxPreparedStatements)
        stream = Stream(loop: pool.proxy.loop, fd: fd, handler: DummyHandler.shared)
        stream.handler = self
        guard stream.connect(to: address, tls: pool.proxy.serverTLS(for: backend)) else {
            stream.close()
            return nil
        }
    }

    /// An idle server another worker handed over (`handOff()`): its socket is already logged in.
    init(id: Int, pool: Pool, handoff: ServerHandoff) {
        self.id = id
        self.pool = pool
        self.backend = handoff.backend
        self.address = handoff.address
        openedAt = handoff.openedAt
        deadline = handoff.openedAt
        processID = handoff.processID
        secretKey = handoff.secretKey
        parameters = handoff.parameters
        sessionParams = handoff.sessionParams
        statements = handoff.statements
        staleStatements = handoff.staleStatements
        preparedEpoch = handoff.preparedEpoch
        stream = Stream(loop: pool.proxy.loop, fd: handoff.fd, handler: DummyHandler.shared)
        stream.handler = self
        phase = .idle
        idleSince = proxy.loop.now
    }

    static func == (a: ServerConnection, b: ServerConnection) -> Bool { a === b }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    var label: String { "server \(id) \(backend.name)(\(address.description)) pid=\(processID)" }

    /// True when nothing is in flight and no transaction is open: safe to reset and reuse.
    var isClean: Bool {
        pendingReady == 0 && !unsynced && !walQueryInFlight && transactionStatus == .idle && remaining == 0 && stream.inputLength == 0
            && (!tracking || tracker.isEmpty) && riders.isEmpty && departed == nil
    }

    // MARK: StreamHandler

    func streamEvent(_ stream: Stream, events: Int16) {
        if events & Int16(BEV_EVENT_CONNECTED) != 0 {
            guard case .connecting = phase else { return }
            SocketOptions.setNoDelay(stream.fd)
            login = ServerLoginStateMachine(user: pool.user, credential: pool.credential, crypto: proxy.crypto)
            phase = .login
            stream.write(ProxyMessages.startup(parameters: [("user", pool.user), ("database", pool.database)]))
            return
        }
        if events & Int16(BEV_EVENT_EOF | BEV_EVENT_ERROR) != 0 {
            let why: String
            if let failure = stream.failure {
                why = failure
            } else if events & Int16(BEV_EVENT_ERROR) != 0 {
                why = String(cString: strerror(errno))
            } else {
                why = "server closed the connection"
            }
            broken(why)
        }
    }

    func streamReadable(_ stream: Stream) {
        switch phase {
        case .connecting, .closed: return
        case .login: readLogin()
        case .internalQuery: readInternal()
        case .active:
            relayToClient()
            // The relay handed the server over to a WAL position query sent behind the client's COMMIT: its
            // replies may be buffered already.
            if case .internalQuery = phase, stream.inputLength > 0 { readInternal() }
        case .idle:
            // Unsolicited input on an idle server (a notice, or the server shutting down): read and drop;
            // an error here means the connection is going away.
            readIdle()
        }
    }

    func streamWritable(_ stream: Stream) {
        // Our output drained below the watermark: let the paused client send again.
        if case .active = phase, let client { client.resumeFromBackpressure() }
    }

    // MARK: Login

    private func readLogin() {
        while case .login = phase, var machine = login {
            let frame: Frame
            do {
                guard let f = try stream.takeFrame(maxLength: 1 << 20) else { return }
                frame = f
            } catch {
                return loginFailed(fields(SQLState.connectionFailure, "invalid message from server: \(error.message)"), reason: error.message)
            }
            let message: BackendMessage
            do { message = try BackendMessage(frame) } catch {
                return loginFailed(fields(SQLState.connectionFailure, "invalid message from server: \(error.message)"), reason: error.message)
            }
            let action = proxy.serverLoginStep(&machine, message)
            login = machine
            switch action {
            case .none: continue
            case .send(let bytes): stream.write(bytes)
            case .ready(let params, let pid, let key):
                parameters = params
                processID = pid
                secretKey = key
                phase = .idle
                login = nil
                idleSince = proxy.loop.now
                log.debug("server connected", metadata: ["server": "\(label)"])
                pool.serverLoggedIn(self)
                return
            case .fail(let errorFields, let reason):
                return loginFailed(errorFields, reason: reason)
            }
        }
    }

    private func loginFailed(_ errorFields: ErrorFields, reason: String) {
        log.warning("server login failed", metadata: ["server": "\(label)", "reason": "\(reason)"])
        phase = .closed
        login = nil
        stream.close()
        pool.serverFailed(self, error: errorFields)
    }

    func fields(_ code: String, _ message: String) -> ErrorFields {
        ErrorFields(fields: [UInt8(ascii: "S"): "FATAL", UInt8(ascii: "C"): code, UInt8(ascii: "M"): message])
    }

    // MARK: Proxy's own queries

    func runInternal(_ query: InternalQuery, sql: String) {
        runInternal(query, message: ProxyMessages.query(sql))
    }

    /// An internal query whose Query message is built already.
    func runInternal(_ query: InternalQuery, message: [UInt8]) {
        phase = .internalQuery(query)
        internalError = nil
        stream.write(message)
    }

    /// The read-your-writes WAL position query, sent behind the client's COMMIT in the same write (no round
    /// trip of its own): its replies, after the COMMIT's, are read as an internal query's.
    func sendWalQueryBehindCommit() {
        stream.write(walPositionQuery)
        walQueryInFlight = true
        if proxy.debugLogging { log.debug("WAL position query sent behind COMMIT", metadata: ["server": "\(label)"]) }
    }

    /// The COMMIT is answered: read the WAL position query sent behind it.
    func awaitWalQuery() {
        walQueryInFlight = false
        phase = .internalQuery(.walPosition)
        internalError = nil
    }

    private func readInternal() {
        while case .internalQuery(let query) = phase {
            let frame: Frame
            do {
                guard let f = try stream.takeFrame(maxLength: proxy.config.proxy.maxPacketSize) else { return }
                frame = f
            } catch {
                return broken("invalid message from server: \(error.message)")
            }
            guard let message = try? BackendMessage(frame) else { return broken("malformed message from server") }
            switch message {
            case .parameterStatus(let name, let value): parameters[name] = value
            case .error(let f): if internalError == nil { internalError = f }
            case .readyForQuery(let status):
                transactionStatus = status
                phase = .active
                let firstError = internalError
                internalError = nil
                internalQueryDone(query, error: firstError, status: status)
                internalRow = nil
                return
            case .other(type: BackendMessageID.dataRow.rawValue):
                if internalRow == nil { internalRow = HealthProbe.textColumns(frame.payload) }
            case .authentication, .backendKeyData, .notice, .negotiateProtocolVersion, .other: continue
            }
        }
    }

    /// First row of the running internal query.
    private var internalRow: [String?]?

    private func internalQueryDone(_ query: InternalQuery, error: ErrorFields?, status: TransactionStatus) {
        switch query {
        case .setup:
            guard let client else { return release() }
            if let error {
                log.info("session parameters rejected", metadata: ["server": "\(label)", "error": "\(error.message)"])
                client.fail(code: error.sqlState, message: error.message, reason: "bad session parameter")
                close(reason: "setup failed")
                return
            }
            sessionParams = client.sessionParameters
            client.serverReady(self)
        case .walPosition:
            guard let client else { return release() }
            if let error { log.warning("pg_current_wal_lsn() failed", metadata: ["server": "\(label)", "error": "\(error.message)"]) }
            client.walPositionKnown(internalRow?.first.flatMap { $0.flatMap { LSN($0) } }, on: self)
        case .reset:
            if let error {
                log.warning("server reset failed", metadata: ["server": "\(label)", "error": "\(error.message)"])
                return close(reason: "reset failed")
            }
            guard status == .idle else { return close(reason: "reset left a transaction open") }
            for effect in SessionAnalyzer.effects(of: proxy.config.proxy.serverResetQuery) { forget(effect) }
            goIdle()
        }
    }

    /// Back to the pool's idle list.
    func goIdle() {
        lent = false
        boardable = false
        boarded = 0
        departed = nil
        if pool.boarding === self { pool.boarding = nil }
        batchFailed = false
        if !parsedSinceReady.isEmpty { parsedSinceReady.removeAll() }
        phase = .idle
        client = nil
        tracking = false
        tracker.reset()
        idleSince = proxy.loop.now
        riderCancelMark = .max
        if cancelsOutstanding > 0 {
            // A cancel meant for the last client's statement has not landed: the next client's would take it.
            log.debug("server held until its cancel request lands", metadata: ["server": "\(label)"])
            releaseAfterCancel = true
            return
        }
        pool.serverReleased(self)
    }

    /// A cancel request for this connection landed (or was given up).
    func cancelFinished() {
        cancelsOutstanding -= 1
        guard cancelsOutstanding == 0, releaseAfterCancel else { return }
        releaseAfterCancel = false
        guard case .idle = phase, !stream.isClosed else { return }
        pool.serverReleased(self)
    }

    private func readIdle() {
        while true {
            let frame: Frame?
            do { frame = try stream.takeFrame(maxLength: 1 << 20) } catch { return broken("invalid message from idle server") }
            guard let frame else { return }
            if let message = try? BackendMessage(frame) {
                switch message {
                case .error(let f): return broken("idle server sent error: \(f.message)")
                case .parameterStatus(let n, let v): parameters[n] = v
                case .authentication, .backendKeyData, .readyForQuery, .notice, .negotiateProtocolVersion, .other: continue
                }
            }
        }
    }

    // MARK: Relay

    /// Moves server messages to the client. Looks inside only ReadyForQuery and ParameterStatus, and in
    /// transaction mode consults the response tracker at each message boundary (and reads errors whole).
    func relayToClient() {
        guard let client else { return }
        // A client that left while others rode behind it: its replies are read and dropped.
        let discard = departed != nil
        guard discard || !client.stream.isClosed else { return }
        let out = client.stream
        let maxLength = proxy.config.proxy.maxPacketSize
        // Whatever path leaves the loop, what was decided for the client goes before anything else.
        defer { moveDecided(to: out) }
        while true {
            if remaining > 0 {
                if !dropping && !discard && !releaseAfterMessage && stream.inputLength >= decided + remaining {
                    // A whole message for the client: it goes with the ones after it, in one move.
                    decided += remaining
                    bytesOut &+= remaining
                    remaining = 0
                    continue
                }
                let moved: Int
                if dropping || discard {
                    moveDecided(to: out)
                    moved = drainInput(remaining)
                } else {
                    let before = decided
                    decided = 0
                    moved = stream.move(upTo: before + remaining, to: out) - before
                }
                if moved <= 0 { break }
                remaining -= moved
                bytesOut &+= moved
                if remaining == 0 && releaseAfterMessage {
                    releaseAfterMessage = false
                    if discard { clientDone() } else { client.transactionEnded(on: self) }
                    return relayToNextRider(after: client)
                }
                continue
            }
            guard let (type, lengthField) = stream.peekHeader(at: decided) else { break }
            guard lengthField >= 4, Int(lengthField) <= maxLength else {
                moveDecided(to: out)
                return broken("invalid message length \(lengthField) from server")
            }
            let total = Int(lengthField) + 1
            dropping = false
            // Only the commonest replies are looked at behind messages not yet moved; anything else first
            // moves those, and is handled at the front of the input.
            if decided > 0 && (!Self.relaysBehind(type) || retryable.isSet || retryAfterReady != nil) { moveDecided(to: out) }
            switch type {
            case BackendMessageID.readyForQuery.rawValue where retryAfterReady != nil:
                guard stream.inputLength >= 6 else { return }
                stream.drain(6)
                let retry = retryAfterReady!
                retryAfterReady = nil
                _ = tracker.received(type: type)
                transactionStatus = .idle
                requestError = nil
                requestAnswered()
                if discard {
                    clientDone()
                } else if retry.onPrimary {
                    client.retryOnPrimary(retry.query, from: self, misroutedOn: backend.name)
                } else {
                    client.retryAfterStrayCancel(retry.query, from: self)
                }
                return relayToNextRider(after: client)
            case BackendMessageID.errorResponse.rawValue where retryable.isSet && total <= 65_536:
                guard stream.inputLength >= total else { return }
                let fields = ErrorFields(payload: Array(stream.peek(max: total).dropFirst(5)))
                let misrouted = fields.sqlState == SQLState.readOnlySQLTransaction && proxy.role(of: backend) == .replica
                // A rider's statement cancelled by a request sent after it boarded, neither its own nor its
                // statement_timeout's: meant for a statement before it that ended before the cancel landed.
                let strayCancel = fields.sqlState == SQLState.queryCanceled && cancelSentAt == nil && !cancelInFlight
                    && cancelsSent > riderCancelMark
                guard misrouted || strayCancel else {
                    retryable.clear()
                    flushHeldRowDescription(to: out)
                    break
                }
                // A write reached a replica (the classifier was wrong), or a cancel reached the wrong statement:
                // hide the error; after the ReadyForQuery the query runs again (on the primary if misrouted).
                heldRowDescription.clear()
                retryAfterReady = (retryable.bytes!, misrouted)
                retryable.clear()
                stream.drain(total)
                _ = tracker.received(type: type)
                continue
            case BackendMessageID.readyForQuery.rawValue:
                guard stream.inputLength >= decided + 6 else { return }
                if let status = TransactionStatus(rawValue: stream.peekByte(at: decided + 5)) { transactionStatus = status }
                requestAnswered()
                if tracking {
                    // Statements parsed in a batch that ended without error are known good.
                    if !batchFailed { proxy.markStatementsValid(parsedSinceReady) }
                    batchFailed = false
                    parsedSinceReady.removeAll(keepingCapacity: true)
                    if !riders.isEmpty && transactionStatus != .idle {
                        // A lone read left a transaction open (the classifier was wrong): the riders' statements
                        // would run inside it. Nobody's reply can be trusted on this connection now.
                        moveDecided(to: out)
                        return broken("a statement sent as a lone read left a transaction open")
                    }
                    // Riders' statements still owed come after this client's (one ReadyForQuery each).
                    if transactionStatus == .idle && tracker.pendingSyncs <= 1 + riders.count && !unsynced { releaseAfterMessage = true }
                }
            case BackendMessageID.parameterStatus.rawValue:
                guard stream.inputLength >= total else { return }
                var r = MessageReader(stream.peek(max: total), offset: 5)
                if let n = r.readCString(), let v = r.readCString() { parameters[n] = v }
            case BackendMessageID.errorResponse.rawValue where tracking:
                transactionFailed = true
                batchFailed = true
                guard total > 65_536 || stream.inputLength >= total else { return }
                noteError(total: total)
                let step = tracker.received(type: type)
                if step.emitsBefore { out.write(step.emitBefore) }
                // Parses and evictions the server skipped or failed: their server copy is unknown.
                for id in step.unprepared { markStale(id) }
                for id in step.notClosed { markStale(id) }
                if step.failed != nil { log.debug("error for request", metadata: ["request": "\(step.failed!)", "server": "\(label)"]) }
                if case .bind(let id?)? = step.failed, id < 0 {
                    // A Bind the proxy made fail on purpose: this client had not yet seen that DDL changed
                    // the statement's result. Tell it what Postgres would have said.
                    out.write(proxy.resultChangedError)
                    dropping = true
                    remaining = total
                    continue
                }
                if total <= 65_536, case .bind(let id?)? = step.failed {
                    let bytes = stream.peek(max: total)
                    let fields = ErrorFields(payload: Array(bytes.dropFirst(5)))
                    if fields.sqlState == SQLState.featureNotSupported, fields.message.contains(cachedPlanMessage) {
                        // DDL changed the statement's result: every server copy is stale from now on, and
                        // this client has seen the error.
                        let epoch = proxy.statementResultChanged(id)
                        proxy.resultChangedError = bytes
                        log.info("statement result changed (DDL): re-preparing", metadata: ["statement": "\(StatementRegistry.serverName(id))", "server": "\(label)"])
                        if let name = client.lastBoundName[id] { client.seenEpochs[name] = epoch }
                        markStale(id)
                    }
                }
                if !dropping, !discard, replacedTimeoutError(total: total, out: out) { continue }
                remaining = total
                continue
            case BackendMessageID.commandComplete.rawValue:
                guard stream.inputLength >= decided + total else { return }
                if watchCommandTags, stream.withSmallInput(at: decided, min(total, 14), { $0.dropFirst(5).starts(with: "ROLLBACK".utf8) }) {
                    transactionFailed = true
                }
                noteCommandComplete(total: total, at: decided)
            case BackendMessageID.errorResponse.rawValue:
                if total <= 65_536 && stream.inputLength < total { return }
                noteError(total: total)
            default:
                break
            }
            switch type {
            case BackendMessageID.noticeResponse.rawValue, BackendMessageID.parameterStatus.rawValue,
                 BackendMessageID.notificationResponse.rawValue:
                break
            case BackendMessageID.rowDescription.rawValue where retryable.isSet && total <= 65_536:
                // Postgres describes the result before running it: hold the description back until the
                // statement shows it runs (a row, a completion), so a 25006 can still be retried unseen.
                guard stream.inputLength >= total else { return }
                heldRowDescription.fill(total, from: stream)
                stream.drain(total)
                if tracking {
                    let step = tracker.received(type: type)
                    if step.emitsBefore { out.write(step.emitBefore) }
                }
                continue
            default:
                retryable.clear()   // a reply reached the client: never retried after this
                flushHeldRowDescription(to: out)
            }
            if tracking {
                let step = tracker.received(type: type)
                if step.unexpected {
                    log.debug("unexpected server message for the response queue", metadata: ["server": "\(label)", "type": "\(ProtocolViolation.describe(type))"])
                }
                if step.emitsBefore {
                    moveDecided(to: out)
                    out.write(step.emitBefore)
                }
                dropping = !step.forward
            }
            if type == BackendMessageID.errorResponse.rawValue, !dropping, !discard, replacedTimeoutError(total: total, out: out) { continue }
            remaining = total
        }
        moveDecided(to: out)
        if !discard && out.outputLength > pauseBytes {
            stream.pauseReading()
            out.setWriteLowWatermark(resumeBytes)
        }
    }

    private var dropping = false
    /// Bytes at the front of the input already relayed to the client (counted in bytesOut) but not yet
    /// moved to its output: whole messages are moved together, one evbuffer_remove_buffer per read rather
    /// than one per message. Always 0 outside `relayToClient`.
    private var decided = 0

    private func moveDecided(to out: Stream) {
        guard decided > 0 else { return }
        _ = stream.move(upTo: decided, to: out)
        decided = 0
    }

    /// Server messages `relayToClient` handles behind others not yet moved (it reads them at an offset):
    /// rows, descriptions, completions, ReadyForQuery and the extended protocol's acknowledgements.
    private static func relaysBehind(_ type: UInt8) -> Bool {
        switch type {
        case BackendMessageID.dataRow.rawValue, BackendMessageID.rowDescription.rawValue,
             BackendMessageID.commandComplete.rawValue, BackendMessageID.readyForQuery.rawValue,
             BackendMessageID.parseComplete.rawValue, BackendMessageID.bindComplete.rawValue,
             BackendMessageID.closeComplete.rawValue, BackendMessageID.noData.rawValue,
             BackendMessageID.parameterDescription.rawValue, BackendMessageID.portalSuspended.rawValue,
             BackendMessageID.emptyQueryResponse.rawValue:
            return true
        default:
            return false
        }
    }

    /// After the attached client was done: when a rider took its place, relay the rider's reply already buffered.
    private func relayToNextRider(after previous: ClientConnection) {
        if case .active = phase, let next = client, next !== previous, stream.inputLength > 0 { relayToClient() }
    }

    /// Fingerprints of the requests still owed a ReadyForQuery, oldest first from `requestFingerprintsHead`
    /// (taken by index: removeFirst would shift the array at every statement).
    var requestFingerprints: [Fingerprint?] = []
    var requestFingerprintsHead = 0
    /// When the transaction in progress began (its first request after the server was idle).
    var transactionSince = 0.0
    /// Bytes relayed from the client and to the client since the last ReadyForQuery (SHOW STATS).
    var bytesIn = 0
    var bytesOut = 0
    /// Microseconds the attached client waited for this server, charged to its first statement.
    var waitMicros = 0
    /// Rows reported by CommandComplete, and the SQLSTATE of the first error, in the oldest request.
    var requestRows = 0
    var requestError: String?

    /// A RowDescription held back while the query may still be retried on the primary.
    private var heldRowDescription = KeptBytes()

    private func flushHeldRowDescription(to out: Stream) {
        if let held = heldRowDescription.bytes {
            out.write(held)
            heldRowDescription.clear()
        }
    }
    /// The one simple Query in flight on a replica, kept until any reply reaches the client: a 25006 error
    /// or a lost connection before that sends it to the primary instead.
    var retryable = KeptBytes()
    /// Drop the ReadyForQuery that follows a swallowed error, then run the query again (on the primary after a
    /// 25006).
    private var retryAfterReady: (query: [UInt8], onPrimary: Bool)?
    /// An error arrived since the last ReadyForQuery.
    private var batchFailed = false
    private var releaseAfterMessage = false

    private func drainInput(_ count: Int) -> Int {
        let n = min(count, stream.inputLength)
        stream.drain(n)
        return n
    }

    /// The client drained its output: read from the server again.
    func resumeFromBackpressure() {
        stream.resumeReading()
        relayToClient()
    }
}

/// The message of Postgres's error when DDL changed a prepared statement's result (SQLSTATE 0A000).
let cachedPlanMessage = "cached plan must not change result type"
