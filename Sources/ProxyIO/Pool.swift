// The server connections of one (database, user, backend) in one worker: runs PoolStateMachine's actions,
// opening servers and handing them to waiting clients, within the pool_size cap shared by all workers.
import Foundation
import Logging
import PGWire
import ProxyCore

final class Pool {
    /// The Proxy outlives its pools (it owns them, for the life of the process). A strong `let` (a cycle the
    /// process never needs to break): read without a retain/release pair per use, unlike `unowned(unsafe)`.
    let proxy: Proxy
    let database: String
    let user: String
    /// The backend this pool's servers connect to.
    let backend: BackendConfig
    let poolMode: PoolMode
    private(set) var machine: PoolStateMachine<ClientConnection, ServerConnection>
    /// Servers being opened (owned here until they log in; then the machine's collections hold them).
    private var opening: Set<ServerConnection> = []
    /// The pool's name among all workers' pools (Workers counts its servers against pool_size).
    let key: String
    /// Process-wide slots this pool holds: one per server open or opening.
    private var slotsHeld = 0
    /// Whether this worker asked Workers to be woken when a slot of `key` frees up.
    private var wantsSlot = false
    /// The server that last began a lone autocommit read: another client's lone read may ride it
    /// (ServerConnection+Pipeline.swift).
    var boarding: ServerConnection?

    /// No server is idle and none can be opened now (the pool is at pool_size, or clients already wait): a
    /// client would wait for a server to come back.
    var isSaturated: Bool {
        machine.idle.isEmpty && (machine.total >= machine.maxSize || machine.waiting.count > machine.connecting)
    }

    /// Whether riding beats waiting for a server with `queueLength` clients in the queue (a newcomer counted):
    /// a busy server frees up about every statement time / pool size, a rider waits for the statement ahead
    /// of it. With a queue shorter than the pool a server comes back first: riding then only adds latency
    /// (measured at 32 clients / 20 servers, pgbench -S: p99 above PgBouncer's in three rounds of four with
    /// riding, below it in all four without, and less CPU per transaction).
    func ridingPays(queueLength: Int) -> Bool { queueLength >= machine.maxSize }

    /// `server` just sent a lone quick read while clients wait here: the first waiting clients whose next
    /// statement is one too ride behind it (looking at a few of them, in order), when the queue is long enough.
    func boardWaiting(_ server: ServerConnection) {
        guard isSaturated, ridingPays(queueLength: machine.waiting.count) else { return }
        var i = 0
        var looked = 0
        while i < machine.waiting.count, looked < 8 {
            let client = machine.waiting[i]
            looked += 1
            if case .waitingForServer = client.phase, client.ride(server) {
                machine.clientLeftQueue(at: i)
                if !server.hasRoom { break }
            } else {
                i += 1
            }
        }
        stopWantingIfServed()
    }

    init(proxy: Proxy, database: String, user: String, backend: BackendConfig, size: Int) {
        self.proxy = proxy
        self.backend = backend
        self.database = database
        self.user = user
        self.key = database + "\u{0}" + user + "\u{0}" + backend.name
        self.poolMode = proxy.config.poolMode(forUser: user)
        self.machine = PoolStateMachine(maxSize: size, retryDelay: proxy.config.proxy.serverLoginRetry)
    }

    var label: String { "\(database)/\(user)@\(backend.name)" }

    /// How the proxy logs in to the server as this pool's user.
    var credential: ServerCredential {
        switch proxy.secrets[user] {
        case .scram(let s)?:
            if let key = proxy.scramClientKeys[user] { return .scramKeys(clientKey: key, serverKey: s.serverKey) }
            return .secret(.scram(s))
        case let secret?: return .secret(secret)
        case nil: return .none
        }
    }

    var allServers: [ServerConnection] { machine.idle + machine.active + Array(opening) }

    func request(for client: ClientConnection) { run(machine.clientRequests(client, now: proxy.loop.now)) }

    /// Janitor tick: closes servers idle past server_idle_timeout (above min_pool_size) or older than
    /// server_lifetime, retries connects for waiting clients, and keeps min_pool_size servers open.
    func tick(now: Double) {
        let settings = proxy.config.proxy
        var total = machine.total
        for server in machine.idle {
            let tooOld = settings.serverLifetime > 0 && now - server.openedAt > settings.serverLifetime
            let idleTooLong = settings.serverIdleTimeout > 0 && now - server.idleSince > settings.serverIdleTimeout
                && total > settings.minPoolSize
            if tooOld || idleTooLong {
                total -= 1
                server.close(reason: tooOld ? "server_lifetime" : "server_idle_timeout")
            }
        }
        run(machine.tick(now: now, minimum: settings.minPoolSize))
        handOverIdle()
    }

    /// Another worker freed a slot of this pool while clients here waited.
    func slotFreed() { run(machine.tick(now: monotonicNow())) }

    func cancelWait(_ client: ClientConnection) {
        machine.clientLeftQueue(client)
        stopWantingIfServed()
    }

    /// RELOAD changed this pool's size.
    func resize(_ size: Int) {
        guard size != machine.maxSize else { return }
        proxy.logger.info("pool resized", metadata: ["pool": "\(label)", "from": "\(machine.maxSize)", "to": "\(size)"])
        run(machine.resize(size, now: monotonicNow()))
    }

    /// RELOAD removed or moved this pool's backend: no new clients; servers close as they come back, and
    /// waiting clients route again.
    func retire() -> [ClientConnection] {
        let waiting = machine.waiting
        for client in waiting { machine.clientLeftQueue(client) }
        run(machine.resize(0, now: monotonicNow()))
        return waiting
    }

    func serverLoggedIn(_ server: ServerConnection) {
        opening.remove(server)
        run(machine.serverConnected(server))
        handOverIdle()
    }

    func serverReleased(_ server: ServerConnection) {
        run(machine.serverReleased(server))
        handOverIdle()
    }

    func serverClosed(_ server: ServerConnection) {
        releaseSlot()
        run(machine.serverClosed(server, now: monotonicNow()))
    }

    /// A server could not be opened; `error` goes to the waiting clients if the pool is now empty.
    func serverFailed(_ server: ServerConnection, error: ErrorFields?) {
        guard opening.remove(server) != nil else { return }
        releaseSlot()
        lastError = error ?? lastError
        run(machine.serverConnectFailed(now: monotonicNow()))
    }

    // MARK: Slots shared with other workers

    private func releaseSlot() {
        guard slotsHeld > 0 else { return }
        slotsHeld -= 1
        proxy.workers.releaseSlot(key)
    }

    /// An idle server here while another worker's clients wait at the cap: it moves to that worker (a plain TCP
    /// server with nothing buffered), or closes so that worker can open one.
    private func handOverIdle() {
        stopWantingIfServed()
        // Whether another worker waits first (one atomic load when none does), then which server: taking the
        // idle list's first server costs a retain and a release per transaction.
        guard !machine.idle.isEmpty, proxy.workers.othersWaitForSlot(key, besides: proxy.index),
              let server = machine.idle.first,
              let target = proxy.workers.takeSlotWaiter(key, besides: proxy.index) else { return }
        let key = key
        guard server.canHandOff, let handoff = server.handOff() else {
            // The slot frees up when the server is gone; the target was taken off the waiters, so it asks again.
            server.close(reason: "slot handed to another worker")
            return proxy.workers.post(to: target) { $0.slotFreed(key) }
        }
        slotsHeld -= 1
        run(machine.serverClosed(server, now: monotonicNow()))
        proxy.workers.post(to: target) { $0.adoptServer(handoff, key: key) }
    }

    /// A server handed over by another worker (its slot comes with it).
    func adopt(_ handoff: ServerHandoff) {
        slotsHeld += 1
        wantsSlot = false
        let server = ServerConnection(id: proxy.nextID(), pool: self, handoff: handoff)
        if proxy.debugLogging { proxy.logger.debug("server handed over", metadata: ["server": "\(server.label)"]) }
        run(machine.serverAdopted(server))
        // Clients still waiting ask for a slot again (taking this worker off the waiters list took its place).
        if !machine.waiting.isEmpty { run(machine.tick(now: monotonicNow())) }
    }

    private func stopWantingIfServed() {
        guard wantsSlot, machine.waiting.isEmpty else { return }
        wantsSlot = false
        proxy.workers.stopWaitingForSlot(key, worker: proxy.index)
    }

    private var lastError: ErrorFields?

    private func run(_ actions: PoolStateMachine<ClientConnection, ServerConnection>.Actions) {
        for action in actions {
            // Consumed: the client and server it holds move into the bindings, without a copy of each.
            switch consume action {
            case .attach(let client, let server):
                client.attach(server)
            case .connect:
                openServer()
            case .close(let server):
                server.close(reason: "pool size lowered")
            case .fail(let clients):
                let e = lastError ?? ErrorFields(fields: [UInt8(ascii: "C"): SQLState.unableToConnect, UInt8(ascii: "M"): "no server connection available"])
                if proxy.backends.status(backend.name)?.isPrimary == false {
                    // A replica that cannot be reached is out now; its waiting clients route again elsewhere.
                    proxy.backendUnreachable(backend.name, error: e.message)
                    for c in clients { c.backendFailed(code: e.sqlState, message: e.message, reroute: true) }
                } else {
                    for c in clients { c.backendFailed(code: e.sqlState, message: e.message, reroute: false) }
                }
            }
        }
    }

    private func openServer() {
        // A connect without waiting clients keeps min_pool_size warm: every worker may, up to min_pool_size in all.
        let wait = !machine.waiting.isEmpty
        let limit = wait ? machine.maxSize : min(machine.maxSize, proxy.config.proxy.minPoolSize)
        guard proxy.workers.acquireSlot(key, limit: limit, worker: proxy.index, wait: wait) else {
            // Other workers hold pool_size servers: Workers wakes this pool (slotFreed) when one closes.
            wantsSlot = wantsSlot || wait
            return machine.connectDeferred()
        }
        slotsHeld += 1
        guard let address = SocketAddress.resolve(host: backend.host, port: backend.port) else {
            lastError = ErrorFields(fields: [UInt8(ascii: "C"): SQLState.unableToConnect,
                                             UInt8(ascii: "M"): "switchyard could not resolve backend \(backend.name) host \"\(backend.host)\""])
            releaseSlot()
            return run(machine.serverConnectFailed(now: monotonicNow()))
        }
        guard let server = ServerConnection(id: proxy.nextID(), pool: self, backend: backend, address: address) else {
            lastError = ErrorFields(fields: [UInt8(ascii: "C"): SQLState.unableToConnect,
                                             UInt8(ascii: "M"): "switchyard could not connect to backend \(backend.name) (\(address.description))"])
            releaseSlot()
            return run(machine.serverConnectFailed(now: monotonicNow()))
        }
        opening.insert(server)
    }
}
