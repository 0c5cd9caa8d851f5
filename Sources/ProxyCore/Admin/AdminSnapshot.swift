// A copy of the proxy's state taken by the I/O layer for one admin command: clients, servers, pools,
// config. Plain values, so the console can build result sets without touching live objects.

/// One client connection, as SHOW CLIENTS lists it.
public struct AdminClientRow: Sendable, Equatable {
    /// Always "C".
    public var type: String
    public var user: String
    public var database: String
    /// "active", "idle", "waiting" or "login".
    public var state: String
    public var addr: String
    public var port: Int
    /// The proxy's own address and port of this connection.
    public var localAddr: String
    public var localPort: Int
    /// Already formatted ("2024-05-01 12:00:00 UTC").
    public var connectTime: String
    public var requestTime: String
    /// How long the client has waited for a server: whole seconds, plus microseconds.
    public var wait: Int
    public var waitMicros: Int
    /// Backend PID of the server connection this client holds, if any.
    public var linkedServerPID: Int?
    public var applicationName: String
    public var preparedStatements: Int
    /// Why the client holds its server beyond a transaction (e.g. "listen"); nil when not pinned.
    public var pinned: String?
    /// TLS description ("TLSv1.3/TLS_AES_256_GCM_SHA384/..."); empty for plain connections.
    public var tls: String
    /// Unique across clients and servers (one counter, as in PgBouncer); `ptr` and `link` are built from it.
    public var id: Int

    public init(type: String = "C", user: String, database: String, state: String, addr: String, port: Int,
                localAddr: String = "", localPort: Int = 0, connectTime: String, requestTime: String,
                wait: Int = 0, waitMicros: Int = 0, linkedServerPID: Int? = nil, applicationName: String = "",
                preparedStatements: Int = 0, pinned: String? = nil, tls: String = "", id: Int) {
        self.type = type
        self.user = user
        self.database = database
        self.state = state
        self.addr = addr
        self.port = port
        self.localAddr = localAddr
        self.localPort = localPort
        self.connectTime = connectTime
        self.requestTime = requestTime
        self.wait = wait
        self.waitMicros = waitMicros
        self.linkedServerPID = linkedServerPID
        self.applicationName = applicationName
        self.preparedStatements = preparedStatements
        self.pinned = pinned
        self.tls = tls
        self.id = id
    }
}

/// One server connection, as SHOW SERVERS lists it.
public struct AdminServerRow: Sendable, Equatable {
    /// Always "S".
    public var type: String
    public var user: String
    public var database: String
    /// "active", "idle", "used", "login" or "tested".
    public var state: String
    public var addr: String
    public var port: Int
    public var localAddr: String
    public var localPort: Int
    public var connectTime: String
    public var requestTime: String
    /// The backend's process id (from BackendKeyData).
    public var remotePID: Int
    /// `id` of the client holding this server, if any.
    public var linkedClientID: Int?
    public var applicationName: String
    public var preparedStatements: Int
    public var tls: String
    /// Unique across clients and servers.
    public var id: Int
    /// "primary" or the replica's name.
    public var backend: String

    public init(type: String = "S", user: String, database: String, state: String, addr: String, port: Int,
                localAddr: String = "", localPort: Int = 0, connectTime: String, requestTime: String,
                remotePID: Int, linkedClientID: Int? = nil, applicationName: String = "", preparedStatements: Int = 0,
                tls: String = "", id: Int, backend: String) {
        self.type = type
        self.user = user
        self.database = database
        self.state = state
        self.addr = addr
        self.port = port
        self.localAddr = localAddr
        self.localPort = localPort
        self.connectTime = connectTime
        self.requestTime = requestTime
        self.remotePID = remotePID
        self.linkedClientID = linkedClientID
        self.applicationName = applicationName
        self.preparedStatements = preparedStatements
        self.tls = tls
        self.id = id
        self.backend = backend
    }
}

/// One pool (database, user, backend), as SHOW POOLS lists it.
public struct AdminPoolRow: Sendable, Equatable {
    public var database: String
    public var user: String
    public var clActive: Int
    public var clWaiting: Int
    public var svActive: Int
    public var svIdle: Int
    public var svUsed: Int
    public var svTested: Int
    public var svLogin: Int
    /// How long the oldest waiting client has waited: whole seconds, plus microseconds.
    public var maxWaitSeconds: Int
    public var maxWaitMicros: Int
    /// "session" or "transaction".
    public var poolMode: String
    /// "primary" or the replica's name.
    public var backend: String

    public init(database: String, user: String, clActive: Int = 0, clWaiting: Int = 0, svActive: Int = 0,
                svIdle: Int = 0, svUsed: Int = 0, svTested: Int = 0, svLogin: Int = 0, maxWaitSeconds: Int = 0,
                maxWaitMicros: Int = 0, poolMode: String, backend: String) {
        self.database = database
        self.user = user
        self.clActive = clActive
        self.clWaiting = clWaiting
        self.svActive = svActive
        self.svIdle = svIdle
        self.svUsed = svUsed
        self.svTested = svTested
        self.svLogin = svLogin
        self.maxWaitSeconds = maxWaitSeconds
        self.maxWaitMicros = maxWaitMicros
        self.poolMode = poolMode
        self.backend = backend
    }
}

/// One row of SHOW BACKENDS.
public struct AdminBackendRow: Sendable, Equatable {
    public var name: String
    public var host: String
    public var port: Int
    /// "primary" or "replica" as routing sees it now (auto backends by their last probe), "unknown" before it.
    public var role: String
    public var inRecovery: Bool?
    public var circuit: String
    public var consecutiveFailures: Int
    public var lsn: String?
    public var lagBytes: UInt64?
    public var lagSeconds: Double?
    public var outstanding: Int
    public var weight: Int
    public var lastError: String?

    public init(name: String, host: String, port: Int, role: String, inRecovery: Bool?, circuit: String,
                consecutiveFailures: Int, lsn: String?, lagBytes: UInt64?, lagSeconds: Double?, outstanding: Int,
                weight: Int, lastError: String?) {
        self.name = name
        self.host = host
        self.port = port
        self.role = role
        self.inRecovery = inRecovery
        self.circuit = circuit
        self.consecutiveFailures = consecutiveFailures
        self.lsn = lsn
        self.lagBytes = lagBytes
        self.lagSeconds = lagSeconds
        self.outstanding = outstanding
        self.weight = weight
        self.lastError = lastError
    }

    /// The row's cells in AdminConsole.backendColumns order.
    public var cells: [String?] {
        var row: [String?] = [name, host, String(port), role]
        let recovery: String? = inRecovery.map { $0 ? "t" : "f" }
        row.append(recovery)
        row.append(circuit)
        row.append(String(consecutiveFailures))
        row.append(lsn)
        row.append(lagBytes.map { String($0) })
        row.append(lagSeconds.map { String(Double(Int(($0 * 1000).rounded())) / 1000) })
        row.append(String(outstanding))
        row.append(String(weight))
        row.append(lastError)
        return row
    }
}

/// Everything the SHOW commands read.
public struct AdminSnapshot: Sendable {
    public var backends: [AdminBackendRow] = []
    public var stats: [DatabaseStatsRow] = []
    public var queries: [QueryStatsRow] = []
    public var latency: [LatencyStatsRow] = []
    public var clients: [AdminClientRow]
    public var servers: [AdminServerRow]
    public var pools: [AdminPoolRow]
    /// `ConfigKeys.currentValues(config)`.
    public var config: [(key: String, value: String)]
    /// What SHOW VERSION prints, e.g. "Switchyard 0.3.0".
    public var version: String
    public var startTime: String

    public init(clients: [AdminClientRow] = [], servers: [AdminServerRow] = [], pools: [AdminPoolRow] = [],
                config: [(key: String, value: String)] = [], version: String, startTime: String = "") {
        self.clients = clients
        self.servers = servers
        self.pools = pools
        self.config = config
        self.version = version
        self.startTime = startTime
    }
}

extension AdminSnapshot {
    /// Adds another worker's clients, servers and pools to this view: clients and servers stay ordered by id, and
    /// the rows of one pool (database, user, backend) held by several workers add up (the longest wait wins).
    public mutating func absorb(_ other: AdminSnapshot) {
        clients = (clients + other.clients).sorted { $0.id < $1.id }
        servers = (servers + other.servers).sorted { $0.id < $1.id }
        for row in other.pools {
            guard let i = pools.firstIndex(where: { $0.database == row.database && $0.user == row.user && $0.backend == row.backend }) else {
                pools.append(row)
                continue
            }
            pools[i].clActive += row.clActive
            pools[i].clWaiting += row.clWaiting
            pools[i].svActive += row.svActive
            pools[i].svIdle += row.svIdle
            pools[i].svUsed += row.svUsed
            pools[i].svTested += row.svTested
            pools[i].svLogin += row.svLogin
            if (row.maxWaitSeconds, row.maxWaitMicros) > (pools[i].maxWaitSeconds, pools[i].maxWaitMicros) {
                pools[i].maxWaitSeconds = row.maxWaitSeconds
                pools[i].maxWaitMicros = row.maxWaitMicros
            }
        }
        pools.sort { ($0.database, $0.user, $0.backend) < ($1.database, $1.user, $1.backend) }
    }
}
