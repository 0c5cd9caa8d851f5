// Health check and LSN monitor of one backend: a persistent connection of its own (health_check_user) that
// asks, every health_check_interval, whether the server is in recovery, its WAL position and replay delay.
// Results go to the Proxy's BackendSet; the janitor drives it (no timer of its own).
import CLibevent
import Foundation
import PGWire
import ProxyCore

final class HealthProbe: StreamHandler {
    enum Phase {
        case disconnected
        case connecting
        case login(ServerLoginStateMachine)
        case idle
        case querying(row: [String?]?)
        /// Reading pg_proc (the primary's probe only) into `catalogRows`.
        case catalog
    }

    /// pg_proc rows (name, schema, provolatile) read so far, while `phase` is `.catalog`.
    private var catalogRows: [[String?]] = []

    /// Function volatility from the catalog, for the classifier (a function it does not know goes to the primary).
    static let catalogQuery = "SELECT p.proname, n.nspname, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    /// How often the primary's probe re-reads pg_proc (functions created later are unknown, so primary, until then).
    static let catalogRefresh = 300.0
    private var catalogDueAt = 0.0

    /// One row: in recovery, WAL LSN (current on a primary, replayed on a replica), replay delay in seconds
    /// (0 when the replica has replayed everything it received).
    static let query = """
        SELECT pg_is_in_recovery(), \
        CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, \
        CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
        """

    unowned let proxy: Proxy
    let backend: BackendConfig
    private var stream: Stream?
    private(set) var phase: Phase = .disconnected
    private var nextProbeAt = 0.0
    private var deadline = 0.0

    init(proxy: Proxy, backend: BackendConfig) {
        self.proxy = proxy
        self.backend = backend
    }

    /// Janitor tick: start a probe when one is due, and time out a probe that takes too long.
    func tick(now: Double) {
        let settings = proxy.config.proxy
        switch phase {
        case .connecting, .login, .querying, .catalog:
            if now > deadline { failed("health check timed out after \(settings.healthCheckTimeout)s", now: now) }
        case .idle:
            if backend.role == .primary, now >= catalogDueAt {
                catalogDueAt = now + Self.catalogRefresh
                phase = .catalog
                catalogRows = []
                deadline = now + max(settings.healthCheckTimeout, 10)
                stream?.write(ProxyMessages.query(Self.catalogQuery))
                return
            }
            guard now >= nextProbeAt, proxy.backends.shouldProbe(backend.name, now: now) else { return }
            phase = .querying(row: nil)
            deadline = now + settings.healthCheckTimeout
            stream?.write(ProxyMessages.query(Self.query))
        case .disconnected:
            guard now >= nextProbeAt, proxy.backends.shouldProbe(backend.name, now: now) else { return }
            connect(now: now)
        }
    }

    private func connect(now: Double) {
        deadline = now + proxy.config.proxy.healthCheckTimeout
        guard let address = SocketAddress.resolve(host: backend.host, port: backend.port) else {
            return failed("cannot resolve \(backend.host)", now: now)
        }
        let fd = socket(Int32(address.storage.ss_family), Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return failed("socket: \(String(cString: strerror(errno)))", now: now) }
        evutil_make_socket_nonblocking(fd)
        let s = Stream(loop: proxy.loop, fd: fd, handler: self)
        stream = s
        phase = .connecting
        if !s.connect(to: address, tls: proxy.serverTLS(for: backend)) { failed("connect failed", now: now) }
    }

    func streamWritable(_ stream: Stream) {}

    func streamEvent(_ stream: Stream, events: Int16) {
        if events & Int16(BEV_EVENT_CONNECTED) != 0 {
            let user = proxy.config.proxy.healthCheckUser
            let credential: ServerCredential = proxy.secrets[user].map { .secret($0) } ?? .none
            phase = .login(ServerLoginStateMachine(user: user, credential: credential, crypto: proxy.crypto))
            stream.write(ProxyMessages.startup(parameters: [
                ("user", user), ("database", proxy.config.proxy.healthCheckDatabase), ("application_name", "switchyard health check"),
            ]))
            return
        }
        let why = stream.failure
            ?? (events & Int16(BEV_EVENT_EOF) != 0 ? "server closed the connection" : "connection error: \(String(cString: strerror(errno)))")
        failed(why, now: monotonicNow())
    }

    func streamReadable(_ stream: Stream) {
        while true {
            let frame: Frame
            do {
                guard let f = try stream.takeFrame(maxLength: 1 << 20) else { return }
                frame = f
            } catch {
                return failed("invalid message: \(error.message)", now: monotonicNow())
            }
            guard let message = try? BackendMessage(frame) else { return failed("malformed message", now: monotonicNow()) }
            switch phase {
            case .login(var machine):
                let action = proxy.serverLoginStep(&machine, message)
                phase = .login(machine)
                switch action {
                case .none: continue
                case .send(let bytes): stream.write(bytes)
                case .ready:
                    phase = .idle
                    // Probe right away once logged in.
                    nextProbeAt = 0
                    tick(now: monotonicNow())
                    return
                case .fail(_, let reason): return failed("login failed: \(reason)", now: monotonicNow())
                }
            case .querying(let row):
                switch message {
                case .other(type: BackendMessageID.dataRow.rawValue):
                    phase = .querying(row: Self.textColumns(frame.payload))
                case .error(let fields):
                    return failed("health query failed: \(fields.message)", now: monotonicNow())
                case .readyForQuery:
                    return finished(row: row)
                case .authentication, .parameterStatus, .backendKeyData, .notice, .negotiateProtocolVersion, .other:
                    continue
                }
            case .catalog:
                switch message {
                case .other(type: BackendMessageID.dataRow.rawValue):
                    // Appended in place: the rows live outside the enum, so no copy per row.
                    if let row = Self.textColumns(frame.payload) { catalogRows.append(row) }
                case .error(let fields):
                    proxy.logger.warning("reading pg_proc failed", metadata: ["backend": "\(backend.name)", "error": "\(fields.message)"])
                    catalogRows = []
                case .readyForQuery:
                    let rows = catalogRows
                    catalogRows = []
                    if !rows.isEmpty { proxy.catalogLoaded(rows) }
                    phase = .idle
                    tick(now: monotonicNow())
                    return
                case .authentication, .parameterStatus, .backendKeyData, .notice, .negotiateProtocolVersion, .other:
                    continue
                }
            case .disconnected, .connecting, .idle:
                continue
            }
        }
    }

    private func finished(row: [String?]?) {
        let now = monotonicNow()
        guard let row, row.count == 3, let recovery = row[0] else { return failed("health query returned no row", now: now) }
        phase = .idle
        nextProbeAt = now + proxy.config.proxy.healthCheckInterval
        proxy.probeSucceeded(backend.name, now: now, inRecovery: recovery == "t",
                             lsn: row[1].flatMap { LSN($0) }, replayDelaySeconds: row[2].flatMap { Double($0) })
    }

    private func failed(_ why: String, now: Double) {
        stream?.close()
        stream = nil
        phase = .disconnected
        nextProbeAt = now + proxy.config.proxy.healthCheckInterval
        proxy.probeFailed(backend.name, now: now, error: why)
    }

    func close() {
        stream?.close()
        stream = nil
        phase = .disconnected
    }

    /// Text columns of a DataRow payload (NULL as nil).
    static func textColumns(_ payload: [UInt8]) -> [String?]? {
        var r = MessageReader(payload)
        guard let n = r.readInt16(), n >= 0 else { return nil }
        var out: [String?] = []
        for _ in 0..<Int(n) {
            guard let len = r.readInt32() else { return nil }
            if len < 0 { out.append(nil); continue }
            guard let bytes = r.readBytes(Int(len)) else { return nil }
            out.append(String(decoding: bytes, as: UTF8.self))
        }
        return out
    }
}
