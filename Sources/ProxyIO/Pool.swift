// The server connections of one (database, user) pair: runs PoolStateMachine's actions, opening
// servers to the primary and handing them to waiting clients.
import Logging
import PGWire
import ProxyCore

final class Pool {
    /// The Proxy outlives its pools (it owns them): no reference counting on the hot path.
    unowned(unsafe) let proxy: Proxy
    let database: String
    let user: String
    /// The backend this pool's servers connect to.
    let backend: BackendConfig
    let poolMode: PoolMode
    private(set) var machine: PoolStateMachine<ClientConnection, ServerConnection>
    /// Servers being opened (owned here until they log in; then the machine's collections hold them).
    private var opening: Set<ServerConnection> = []

    init(proxy: Proxy, database: String, user: String, backend: BackendConfig, size: Int) {
        self.proxy = proxy
        self.backend = backend
        self.database = database
        self.user = user
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

    var allServers: [ServerConnection] { machine.idle + Array(machine.active) + Array(opening) }

    func request(for client: ClientConnection) { run(machine.clientRequests(client, now: monotonicNow())) }

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
    }

    func cancelWait(_ client: ClientConnection) { machine.clientLeftQueue(client) }

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
    }

    func serverReleased(_ server: ServerConnection) { run(machine.serverReleased(server)) }

    func serverClosed(_ server: ServerConnection) { run(machine.serverClosed(server, now: monotonicNow())) }

    /// A server could not be opened; `error` goes to the waiting clients if the pool is now empty.
    func serverFailed(_ server: ServerConnection, error: ErrorFields?) {
        guard opening.remove(server) != nil else { return }
        lastError = error ?? lastError
        run(machine.serverConnectFailed(now: monotonicNow()))
    }

    private var lastError: ErrorFields?

    private func run(_ actions: [PoolStateMachine<ClientConnection, ServerConnection>.Action]) {
        for action in actions {
            switch action {
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
        guard let address = SocketAddress.resolve(host: backend.host, port: backend.port) else {
            lastError = ErrorFields(fields: [UInt8(ascii: "C"): SQLState.unableToConnect,
                                             UInt8(ascii: "M"): "switchyard could not resolve backend \(backend.name) host \"\(backend.host)\""])
            return run(machine.serverConnectFailed(now: monotonicNow()))
        }
        guard let server = ServerConnection(id: proxy.nextID(), pool: self, backend: backend, address: address) else {
            lastError = ErrorFields(fields: [UInt8(ascii: "C"): SQLState.unableToConnect,
                                             UInt8(ascii: "M"): "switchyard could not connect to backend \(backend.name) (\(address.description))"])
            return run(machine.serverConnectFailed(now: monotonicNow()))
        }
        opening.insert(server)
    }
}
