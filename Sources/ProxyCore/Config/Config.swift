// The parsed proxy.conf: settings for [proxy], the backends ([primary], [replica.NAME]) and per-user overrides.
// Defaults live here; keys, parsing and docs live in the one table in ConfigKeys.swift.

/// How long a server connection stays bound to a client.
public enum PoolMode: String, CaseIterable, Sendable {
    case session
    case transaction
}

/// How clients authenticate to the proxy.
public enum AuthType: String, CaseIterable, Sendable {
    case trust
    case md5
    case scramSHA256 = "scram-sha-256"
    /// A client certificate (verified against client_tls_ca_file) whose CommonName is the user name.
    case cert
}

/// Minimum severity that is logged.
public enum LogLevel: String, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical
}

/// `log_queries`: which statements write a query-log line.
public enum LogQueries: String, CaseIterable, Sendable {
    /// Statements slower than slow_query_threshold.
    case slow
    /// Every statement (sampled by log_sample_rate), and every slow one.
    case all
    case off
}

/// `log_format` of query-log lines.
public enum LogFormat: String, CaseIterable, Sendable {
    case logfmt
    case json
}

/// `client_tls_sslmode`: whether clients may, must, or must not use TLS (PgBouncer's meanings).
public enum ClientTLSMode: String, CaseIterable, Sendable {
    /// SSLRequest is answered 'N'.
    case disable
    /// TLS when the client asks for it, plaintext otherwise.
    case allow
    /// As allow (the client decides).
    case prefer
    /// Plaintext logins are refused with 28000.
    case require
    /// TLS with a client certificate that verifies against client_tls_ca_file.
    case verifyCA = "verify-ca"
    /// As verify-ca (a client has no host name to check).
    case verifyFull = "verify-full"

    /// A plaintext startup packet is refused.
    public var requiresTLS: Bool {
        switch self {
        case .disable, .allow, .prefer: return false
        case .require, .verifyCA, .verifyFull: return true
        }
    }

    /// The client must present a certificate that verifies against client_tls_ca_file.
    public var requiresCertificate: Bool {
        switch self {
        case .disable, .allow, .prefer, .require: return false
        case .verifyCA, .verifyFull: return true
        }
    }
}

/// `server_tls_sslmode`: TLS towards Postgres servers (libpq's meanings).
public enum ServerTLSMode: String, CaseIterable, Sendable {
    /// Plaintext; no SSLRequest.
    case disable
    /// TLS if the server accepts it, else plaintext; the certificate is not checked.
    case prefer
    /// TLS or fail; the certificate is not checked.
    case require
    /// TLS with a certificate chain that verifies against server_tls_ca_file.
    case verifyCA = "verify-ca"
    /// As verify-ca, and the certificate must name the backend's host.
    case verifyFull = "verify-full"

    /// The server's certificate chain is verified.
    public var verifiesCertificate: Bool {
        switch self {
        case .disable, .prefer, .require: return false
        case .verifyCA, .verifyFull: return true
        }
    }

    /// The server's certificate must name the host the proxy connected to.
    public var verifiesHostName: Bool { self == .verifyFull }
}

/// A TLS protocol version, as written in `client_tls_protocols` / `server_tls_protocols`.
public enum TLSVersion: String, CaseIterable, Comparable, Sendable {
    case tls1_0 = "tlsv1.0"
    case tls1_1 = "tlsv1.1"
    case tls1_2 = "tlsv1.2"
    case tls1_3 = "tlsv1.3"

    public static func < (a: TLSVersion, b: TLSVersion) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The TLS versions allowed: a contiguous range (OpenSSL takes a minimum and a maximum).
public struct TLSProtocols: Hashable, Sendable {
    public var lowest: TLSVersion
    public var highest: TLSVersion

    public init(lowest: TLSVersion, highest: TLSVersion) {
        self.lowest = lowest
        self.highest = highest
    }

    /// TLS 1.2 and 1.3 (PgBouncer's "secure").
    public static let secure = TLSProtocols(lowest: .tls1_2, highest: .tls1_3)

    /// Every version in the range, lowest first.
    public var versions: [TLSVersion] { TLSVersion.allCases.filter { $0 >= lowest && $0 <= highest } }
}

/// Effective TLS settings for the proxy's connections to one backend ([proxy] values, overridden per backend).
public struct ServerTLSSettings: Hashable, Sendable {
    public var mode: ServerTLSMode
    /// CA bundle for verify-ca/verify-full; nil uses the system's trust store.
    public var caFile: String?
    /// Client certificate and key the proxy presents to the server (for `cert` authentication there).
    public var certFile: String?
    public var keyFile: String?
    public var protocols: TLSProtocols
    /// OpenSSL cipher string; "default" keeps OpenSSL's.
    public var ciphers: String

    public init(mode: ServerTLSMode, caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil,
                protocols: TLSProtocols = .secure, ciphers: String = "default") {
        self.mode = mode
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.protocols = protocols
        self.ciphers = ciphers
    }
}

/// Whether a backend takes writes (primary) or only reads (replica).
public enum BackendRole: String, Sendable {
    case primary
    case replica
}

/// A feature switch.
public enum Toggle: String, CaseIterable, Sendable {
    case on
    case off
}

/// `read_your_writes`: after a client's write commits, its reads go only to replicas that replayed it.
public enum ReadYourWrites: String, CaseIterable, Sendable {
    case lsn
    case off
}

/// One Postgres server the proxy connects to.
public struct BackendConfig: Equatable, Sendable {
    /// "primary" for the primary; NAME for `[replica.NAME]`.
    public var name: String
    public var role: BackendRole
    /// `role = primary | replica | auto`: auto follows `pg_is_in_recovery()` (failover-aware). Defaults to the section's role.
    public var roleSetting: BackendRoleSetting?
    public var host: String
    public var port: Int
    /// Relative share of read traffic; 0 takes none.
    public var weight: Int
    /// TLS overrides for this backend; nil means the [proxy] server_tls_* value.
    public var tlsMode: ServerTLSMode?
    public var tlsCAFile: String?
    public var tlsCertFile: String?
    public var tlsKeyFile: String?

    public init(name: String, role: BackendRole, host: String = "127.0.0.1", port: Int = 5432, weight: Int = 1) {
        self.name = name
        self.role = role
        self.host = host
        self.port = port
        self.weight = weight
    }
}

/// Per-user overrides from `[user.NAME]`; nil means "use the [proxy] value".
public struct UserConfig: Equatable, Sendable {
    public var name: String
    public var poolMode: PoolMode?
    public var poolSize: Int?
    /// Seconds; 0 turns the proxy's statement timeout off for this user.
    public var statementTimeout: Double?

    public init(name: String, poolMode: PoolMode? = nil, poolSize: Int? = nil) {
        self.name = name
        self.poolMode = poolMode
        self.poolSize = poolSize
    }
}

/// Per-database overrides from `[database.NAME]`; nil means "use the [proxy] value".
public struct DatabaseConfig: Equatable, Sendable {
    public var name: String
    /// Seconds; 0 turns the proxy's statement timeout off for this database.
    public var statementTimeout: Double?

    public init(name: String, statementTimeout: Double? = nil) {
        self.name = name
        self.statementTimeout = statementTimeout
    }
}

/// Everything in the `[proxy]` section, with its defaults.
public struct ProxySettings: Equatable, Sendable {
    public var listenAddr: String = "127.0.0.1"
    public var listenPort: Int = 6432
    public var poolMode: PoolMode = .session
    public var authType: AuthType = .scramSHA256
    /// Absolute path (resolved against the config file's folder).
    public var authFile: String? = nil
    public var defaultPoolSize: Int = 20
    /// Server connections kept open per pool even without clients.
    public var minPoolSize: Int = 0
    /// Protocol-level prepared statements kept per server connection (transaction mode), least recently used evicted.
    public var maxPreparedStatements: Int = 200
    /// Transaction mode: clients whose lone autocommit reads may be in flight on one server connection at once
    /// (the first one's and the ones sent behind it); 1 gives each statement a server of its own.
    public var serverPipelineDepth: Int = 4
    /// Only statement shapes whose recent mean duration is below this (seconds) ride or are ridden.
    public var serverPipelineMaxLatency: Double = 0.005
    /// Transaction mode: a plain BEGIN is answered by the proxy and sent to the server with the next statement.
    public var deferBegin: Toggle = .on
    /// Seconds an idle server connection may stay open (above min_pool_size); 0 keeps it.
    public var serverIdleTimeout: Double = 600
    /// Seconds after which a server connection is closed when next idle; 0 keeps it.
    public var serverLifetime: Double = 3600
    /// Seconds of idleness after which a server connection is checked with server_check_query before reuse; 0 always checks.
    public var serverCheckDelay: Double = 30
    /// The health-check query; "" turns the check off.
    public var serverCheckQuery: String = "SELECT 1"

    // Routing (read/write splitting).
    /// Seconds between backend health probes (which also sample WAL positions for lag and read-your-writes).
    public var healthCheckInterval: Double = 1
    public var healthCheckTimeout: Double = 3
    public var healthCheckFailures: Int = 3
    public var healthCheckResetTimeout: Double = 10
    public var healthCheckSuccesses: Int = 2
    /// User (from auth_file) the probes log in as; "" turns probes off (every backend is assumed up, lag unknown).
    public var healthCheckUser: String = ""
    public var healthCheckDatabase: String = "postgres"
    public var replicaFallback: ReplicaFallback = .primary
    /// Seconds of replay delay beyond which a replica gets no reads; 0 turns the check off.
    public var maxReplicaLag: Double = 10
    /// Bytes of WAL a replica may be behind before it gets no reads; 0 turns the check off.
    public var maxReplicaLagBytes: Int = 0
    public var loadBalance: LoadBalance = .roundRobin
    public var readYourWrites: ReadYourWrites = .lsn
    /// Seconds a read waits for a replica to replay the client's own write before it goes to the primary.
    public var readYourWritesTimeout: Double = 1
    public var maxClientConn: Int = 10000
    /// Sent to a server connection before it goes back to the pool; "" sends nothing.
    public var serverResetQuery: String = "DISCARD ALL"
    public var adminUsers: [String] = []
    public var statsUsers: [String] = []
    public var logLevel: LogLevel = .info
    /// Seconds.
    public var serverConnectTimeout: Double = 15
    /// Seconds.
    public var clientLoginTimeout: Double = 60
    /// Seconds; 0 turns it off.
    public var queryWaitTimeout: Double = 120
    /// server_login_retry, seconds: after a failed server connect or login, wait this long before trying again.
    public var serverLoginRetry: Double = 1
    /// Bytes.
    public var maxPacketSize: Int = 1 << 30
    /// Event-loop threads; 0: one per core.
    public var workers: Int = 0

    // TLS (absolute paths, resolved against the config file's folder).
    public var clientTLSSSLMode: ClientTLSMode = .disable
    public var clientTLSCertFile: String? = nil
    public var clientTLSKeyFile: String? = nil
    /// CA bundle that client certificates must verify against; when set, clients are asked for one.
    public var clientTLSCAFile: String? = nil
    public var clientTLSProtocols: TLSProtocols = .secure
    /// OpenSSL cipher string ("default" keeps OpenSSL's); TLS_* names set TLS 1.3 suites.
    public var clientTLSCiphers: String = "default"
    public var serverTLSSSLMode: ServerTLSMode = .disable
    public var serverTLSCAFile: String? = nil
    public var serverTLSCertFile: String? = nil
    public var serverTLSKeyFile: String? = nil
    public var serverTLSProtocols: TLSProtocols = .secure
    public var serverTLSCiphers: String = "default"

    // Timeouts enforced by the proxy (seconds; 0 turns each off).
    public var statementTimeout: Double = 0
    /// Statements on the primary / on replicas: 0 means statement_timeout applies.
    public var primaryStatementTimeout: Double = 0
    public var replicaStatementTimeout: Double = 0
    /// After a timeout's CancelRequest, how long the server may take to answer before it is closed.
    public var cancelWaitTimeout: Double = 5
    /// A client idle inside a transaction this long is disconnected (25P03) and its transaction rolled back.
    public var idleTransactionTimeout: Double = 0
    /// A client idle (no transaction open) this long is disconnected.
    public var clientIdleTimeout: Double = 0
    /// SIGTERM: how long open transactions may take to finish before every connection is closed.
    public var shutdownTimeout: Double = 30

    // Observability.
    /// Statements at least this slow write a query-log line; 0 logs none as slow.
    public var slowQueryThreshold: Double = 1
    public var logQueries: LogQueries = .slow
    /// With log_queries = all: the share of statements logged.
    public var logSampleRate: Double = 1
    public var logFormat: LogFormat = .logfmt
    /// The sliding window of the latency percentiles (SHOW QUERIES, SHOW LATENCY).
    public var statsWindow: Double = 60
    /// Seconds between periodic stats summary lines in the log, and the SHOW STATS averaging period; 0: no summary lines.
    public var statsPeriod: Double = 60
    /// Query fingerprints with their own percentiles.
    public var statsMaxFingerprints: Int = 1000
    /// `host:port` of the HTTP endpoint (/metrics, /health, /ready); empty turns it off.
    public var metricsListen: String = ""
    /// Absolute path (resolved against the config file's folder).
    public var pidFile: String? = nil

    public init() {}
}

/// The whole configuration.
public struct Config: Equatable, Sendable {
    public var proxy: ProxySettings
    public var primary: BackendConfig
    /// In file order.
    public var replicas: [BackendConfig]
    /// Keyed by user name.
    public var users: [String: UserConfig]
    /// Keyed by database name.
    public var databases: [String: DatabaseConfig]
    /// The file it came from (set by `ConfigParser.load`).
    public var path: String?

    /// All defaults, primary at 127.0.0.1:5432, no replicas.
    public init() {
        proxy = ProxySettings()
        primary = BackendConfig(name: "primary", role: .primary)
        replicas = []
        users = [:]
        databases = [:]
        path = nil
    }

    /// The pool mode for `user`: its `[user.NAME]` override or the `[proxy]` value.
    public func poolMode(forUser user: String) -> PoolMode {
        users[user]?.poolMode ?? proxy.poolMode
    }

    /// The pool size for `user`: its `[user.NAME]` override or `default_pool_size`.
    public func poolSize(forUser user: String) -> Int {
        users[user]?.poolSize ?? proxy.defaultPoolSize
    }

    /// The statement timeout (seconds, 0 = none) for `user` on `database` when the statement runs on a backend
    /// of `role`: the user's override, else the database's, else the route's, else statement_timeout.
    public func statementTimeout(user: String, database: String, role: BackendRole) -> Double {
        if let t = users[user]?.statementTimeout { return t }
        if let t = databases[database]?.statementTimeout { return t }
        let route = role == .primary ? proxy.primaryStatementTimeout : proxy.replicaStatementTimeout
        return route > 0 ? route : proxy.statementTimeout
    }

    /// TLS towards `backend`: its own server_tls_* keys over the [proxy] ones.
    public func serverTLS(for backend: BackendConfig) -> ServerTLSSettings {
        ServerTLSSettings(mode: backend.tlsMode ?? proxy.serverTLSSSLMode,
                          caFile: backend.tlsCAFile ?? proxy.serverTLSCAFile,
                          certFile: backend.tlsCertFile ?? proxy.serverTLSCertFile,
                          keyFile: backend.tlsKeyFile ?? proxy.serverTLSKeyFile,
                          protocols: proxy.serverTLSProtocols, ciphers: proxy.serverTLSCiphers)
    }

    /// The primary followed by the replicas.
    public var backends: [BackendConfig] { [primary] + replicas }
}

/// One problem in a config file, e.g. `proxy.conf:12: [proxy] listen_port: expected an integer from 1 to 65535, got 'abc'`.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    /// 1-based; nil when the problem is not on one line (missing file, missing section).
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Every problem found in a config file, in line order.
public struct ConfigErrors: Error, Equatable, CustomStringConvertible, Sendable {
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) {
        self.errors = errors
    }

    /// One error per line.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
