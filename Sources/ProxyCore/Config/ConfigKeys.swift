// THE config key table: every proxy.conf key, its type, default, doc and setter, in one place.
// The parser, the README reference (`markdownReference`) and SHOW CONFIG (`currentValues`) all read it.

/// Which kind of section a key belongs to.
public enum ConfigSection: String, Sendable {
    /// `[proxy]`
    case proxy
    /// `[primary]` and `[replica.NAME]`
    case backend
    /// `[user.NAME]`
    case user
    /// `[database.NAME]`
    case database

    /// How the section is written in a file, for docs.
    public var heading: String {
        switch self {
        case .proxy: return "[proxy]"
        case .backend: return "[primary], [replica.NAME]"
        case .user: return "[user.NAME]"
        case .database: return "[database.NAME]"
        }
    }
}

/// One key: its name, type, default and doc, plus the closure that parses a raw value into its field.
public struct ConfigKey: Sendable {
    public let section: ConfigSection
    public let name: String
    /// "integer", "duration", "size", "string", "path", "enum: a|b", "list".
    public let kind: String
    /// The default as it would be written in the file; "(required)" for keys without one.
    public let defaultValue: String
    public let doc: String
    /// True when the key must be present in its section (backend `host`).
    public let isRequired: Bool
    /// Where the parsed value goes.
    let binding: Binding

    /// A setter for one section's struct; it throws when the raw value does not fit.
    enum Binding: Sendable {
        case proxy(
            apply: @Sendable (inout ProxySettings, String, ConfigValueContext) throws(ConfigValueMismatch) -> Void,
            render: @Sendable (ProxySettings) -> String)
        case backend(apply: @Sendable (inout BackendConfig, String, ConfigValueContext) throws(ConfigValueMismatch) -> Void)
        case user(apply: @Sendable (inout UserConfig, String, ConfigValueContext) throws(ConfigValueMismatch) -> Void)
        case database(apply: @Sendable (inout DatabaseConfig, String, ConfigValueContext) throws(ConfigValueMismatch) -> Void)
    }

    /// A `[proxy]` key stored at `field`; the default is read from `ProxySettings()`.
    static func proxy<T>(
        _ name: String, _ field: WritableKeyPath<ProxySettings, T> & Sendable, _ value: ConfigValue<T>, _ doc: String
    ) -> ConfigKey {
        ConfigKey(
            section: .proxy, name: name, kind: value.kind,
            defaultValue: value.render(ProxySettings()[keyPath: field]), doc: doc, isRequired: false,
            binding: .proxy(
                apply: { settings, raw, context throws(ConfigValueMismatch) in
                    settings[keyPath: field] = try value.parse(raw, context)
                },
                render: { value.render($0[keyPath: field]) }))
    }

    /// A `[primary]`/`[replica.NAME]` key stored at `field`; `defaultValue` nil marks it required.
    static func backend<T>(
        _ name: String, _ field: WritableKeyPath<BackendConfig, T> & Sendable, _ value: ConfigValue<T>,
        default defaultValue: T?, _ doc: String
    ) -> ConfigKey {
        ConfigKey(
            section: .backend, name: name, kind: value.kind,
            defaultValue: defaultValue.map(value.render) ?? "(required)", doc: doc, isRequired: defaultValue == nil,
            binding: .backend(apply: { backend, raw, context throws(ConfigValueMismatch) in
                backend[keyPath: field] = try value.parse(raw, context)
            }))
    }

    /// A `[user.NAME]` override stored at `field`; unset means the `[proxy]` key named `inherits` applies.
    static func user<T>(
        _ name: String, _ field: WritableKeyPath<UserConfig, T?> & Sendable, _ value: ConfigValue<T>,
        inherits: String, _ doc: String
    ) -> ConfigKey {
        ConfigKey(
            section: .user, name: name, kind: value.kind,
            defaultValue: "[proxy] \(inherits)", doc: doc, isRequired: false,
            binding: .user(apply: { user, raw, context throws(ConfigValueMismatch) in
                user[keyPath: field] = try value.parse(raw, context)
            }))
    }
}

extension ConfigKey {
    /// A `[database.NAME]` override stored at `field`; unset means the `[proxy]` key named `inherits` applies.
    static func database<T>(
        _ name: String, _ field: WritableKeyPath<DatabaseConfig, T?> & Sendable, _ value: ConfigValue<T>,
        inherits: String, _ doc: String
    ) -> ConfigKey {
        ConfigKey(
            section: .database, name: name, kind: value.kind,
            defaultValue: "[proxy] \(inherits)", doc: doc, isRequired: false,
            binding: .database(apply: { db, raw, context throws(ConfigValueMismatch) in
                db[keyPath: field] = try value.parse(raw, context)
            }))
    }
}

/// The key table and what is built from it.
public enum ConfigKeys {
    /// Every key, in the order docs and SHOW CONFIG list them. Adding a key is one entry here.
    public static let all: [ConfigKey] = [
        .proxy("listen_addr", \.listenAddr, .string(allowEmpty: false),
               "Address to accept client connections on; `0.0.0.0` for every IPv4 interface."),
        .proxy("listen_port", \.listenPort, .integer(min: 1, max: 65535),
               "TCP port to accept client connections on."),
        .proxy("pool_mode", \.poolMode, .choice(PoolMode.self),
               "When a server connection goes back to the pool: at client disconnect (session) or transaction end."),
        .proxy("auth_type", \.authType, .choice(AuthType.self),
               "How clients authenticate to the proxy; cert: a client certificate (TLS, client_tls_ca_file) whose CommonName equals the user name."),
        .proxy("auth_file", \.authFile, .path,
               "File of `\"user\" \"secret\"` lines; relative to the config file's folder."),
        .proxy("default_pool_size", \.defaultPoolSize, .integer(min: 1),
               "Server connections per user/database pair."),
        .proxy("min_pool_size", \.minPoolSize, .integer(min: 0),
               "Server connections kept open (warm) per user/database pair, even without clients."),
        .proxy("max_prepared_statements", \.maxPreparedStatements, .integer(min: 1),
               "Transaction mode: protocol-level prepared statements kept per server connection; the least recently used is closed beyond it."),
        .proxy("server_pipeline_depth", \.serverPipelineDepth, .integer(min: 1),
               "Transaction mode: a client's lone autocommit read may be sent behind another client's on a busy server connection (same backend and session settings), up to this many clients per connection; 1 turns it off."),
        .proxy("server_pipeline_max_latency", \.serverPipelineMaxLatency, .duration,
               "Only statements whose recent mean duration (per fingerprint, on this worker) is below this are sent behind another or have others sent behind them: nobody waits behind a long query."),
        .proxy("defer_begin", \.deferBegin, .choice(Toggle.self),
               "Transaction mode: a plain BEGIN (or START TRANSACTION) is answered by the proxy and sent with the client's next statement, so a transaction takes a server one round trip later (now() is then the time of that statement)."),
        .proxy("server_idle_timeout", \.serverIdleTimeout, .duration,
               "An idle server connection above min_pool_size is closed after this long; 0 keeps it."),
        .proxy("server_lifetime", \.serverLifetime, .duration,
               "A server connection older than this is closed when it is next idle; 0 keeps it."),
        .proxy("server_check_delay", \.serverCheckDelay, .duration,
               "A server connection idle longer than this is checked with server_check_query before a client gets it; 0 always checks."),
        .proxy("server_check_query", \.serverCheckQuery, .string(allowEmpty: true),
               "Health-check query for idle server connections; empty turns the check off."),
        .proxy("health_check_interval", \.healthCheckInterval, .duration,
               "How often each backend is probed (health, pg_is_in_recovery, WAL position for lag and read-your-writes)."),
        .proxy("health_check_timeout", \.healthCheckTimeout, .duration,
               "A probe that takes longer counts as failed."),
        .proxy("health_check_failures", \.healthCheckFailures, .integer(min: 1),
               "Failed probes in a row that take a backend out (circuit open)."),
        .proxy("health_check_reset_timeout", \.healthCheckResetTimeout, .duration,
               "How long a backend stays out before it is probed again."),
        .proxy("health_check_successes", \.healthCheckSuccesses, .integer(min: 1),
               "Good probes in a row that bring a backend back."),
        .proxy("health_check_user", \.healthCheckUser, .string(allowEmpty: true),
               "User (with a plaintext or md5 secret in auth_file) the probes log in as; empty turns probes off."),
        .proxy("health_check_database", \.healthCheckDatabase, .string(allowEmpty: false),
               "Database the probes connect to."),
        .proxy("replica_fallback", \.replicaFallback, .choice(ReplicaFallback.self),
               "Where reads go when no replica is available: the primary, or an error."),
        .proxy("max_replica_lag", \.maxReplicaLag, .duration,
               "A replica whose replay delay exceeds this gets no reads until it catches up; 0 turns it off."),
        .proxy("max_replica_lag_bytes", \.maxReplicaLagBytes, .size(min: 0),
               "A replica this many WAL bytes behind the primary gets no reads; 0 turns it off."),
        .proxy("load_balance", \.loadBalance, .choice(LoadBalance.self),
               "How reads are spread over healthy replicas (weighted by each replica's weight)."),
        .proxy("read_your_writes", \.readYourWrites, .choice(ReadYourWrites.self),
               "lsn: after a client's write, its reads go only to replicas that replayed it (costs one pg_current_wal_insert_lsn() per write transaction, sent with its COMMIT when there is one); off: no such guarantee."),
        .proxy("read_your_writes_timeout", \.readYourWritesTimeout, .duration,
               "How long such a read waits for a replica to catch up before it goes to the primary."),
        .proxy("max_client_conn", \.maxClientConn, .integer(min: 1),
               "Most client connections accepted at once."),
        .proxy("server_reset_query", \.serverResetQuery, .string(allowEmpty: true),
               "Sent before a server connection is reused by another client; empty sends nothing."),
        .proxy("admin_users", \.adminUsers, .list,
               "Comma-separated users allowed to run admin commands."),
        .proxy("stats_users", \.statsUsers, .list,
               "Comma-separated users allowed to run read-only SHOW commands."),
        .proxy("log_level", \.logLevel, .choice(LogLevel.self),
               "Least severe log messages written."),
        .proxy("server_connect_timeout", \.serverConnectTimeout, .duration,
               "How long to wait for a server connection and its login."),
        .proxy("client_login_timeout", \.clientLoginTimeout, .duration,
               "How long a client may take to log in before it is disconnected."),
        .proxy("server_login_retry", \.serverLoginRetry, .duration,
               "After a failed server connect or login, how long before the next try; clients arriving meanwhile to an empty pool get the error at once."),
        .proxy("query_wait_timeout", \.queryWaitTimeout, .duration,
               "How long a client may wait for a server connection; 0 waits forever."),
        .proxy("max_packet_size", \.maxPacketSize, .size(min: 16 << 10),
               "Largest protocol message accepted; larger ones close the connection."),
        .proxy("workers", \.workers, .integer(min: 0, max: 64),
               "Event-loop threads, each with its own clients and server connections; 0 means one per core. pool_size, max_client_conn, statistics and cancel requests hold across workers. Changes at restart."),
        .proxy("pid_file", \.pidFile, .path,
               "File to write the process id to; relative to the config file's folder."),
        .proxy("statement_timeout", \.statementTimeout, .duration,
               "A statement running longer is cancelled on its server by the proxy; the client gets 57014 and keeps its session. 0 turns it off. Overridable per user, per database, per route and per session (`SET switchyard.statement_timeout = '2s'`)."),
        .proxy("primary_statement_timeout", \.primaryStatementTimeout, .duration,
               "statement_timeout for statements on the primary; 0 means statement_timeout applies."),
        .proxy("replica_statement_timeout", \.replicaStatementTimeout, .duration,
               "statement_timeout for statements on replicas; 0 means statement_timeout applies."),
        .proxy("cancel_wait_timeout", \.cancelWaitTimeout, .duration,
               "After a statement timeout's cancel, how long the server may take to answer before its connection is closed."),
        .proxy("idle_transaction_timeout", \.idleTransactionTimeout, .duration,
               "A client idle inside a transaction this long is disconnected with 25P03 and its transaction rolled back; 0 turns it off."),
        .proxy("client_idle_timeout", \.clientIdleTimeout, .duration,
               "A client idle outside a transaction this long is disconnected; 0 turns it off."),
        .proxy("shutdown_timeout", \.shutdownTimeout, .duration,
               "On SIGTERM, how long open transactions may take to finish before every connection is closed."),
        .proxy("slow_query_threshold", \.slowQueryThreshold, .duration,
               "Statements at least this slow write one query-log line (normalised text, no literals); 0 turns the slow log off."),
        .proxy("log_queries", \.logQueries, .choice(LogQueries.self),
               "slow: log statements past slow_query_threshold; all: log every statement (sampled by log_sample_rate); off: none."),
        .proxy("log_sample_rate", \.logSampleRate, .fraction,
               "With log_queries = all, the share of statements logged (slow ones are always logged)."),
        .proxy("log_format", \.logFormat, .choice(LogFormat.self),
               "Format of query-log lines."),
        .proxy("stats_window", \.statsWindow, .duration,
               "Sliding window of the latency percentiles (SHOW QUERIES, SHOW LATENCY, /metrics)."),
        .proxy("stats_period", \.statsPeriod, .duration,
               "Seconds between stats summary lines in the log (per backend qps, p50, p99, errors), and SHOW STATS' averaging period; 0 writes no summary lines."),
        .proxy("stats_max_fingerprints", \.statsMaxFingerprints, .integer(min: 1),
               "Query fingerprints that keep their own latency percentiles."),
        .proxy("metrics_listen", \.metricsListen, .string(allowEmpty: true),
               "`host:port` of the HTTP endpoint serving /metrics (Prometheus), /health and /ready; empty turns it off."),

        .proxy("client_tls_sslmode", \.clientTLSSSLMode, .choice(ClientTLSMode.self),
               "TLS for clients. disable: SSLRequest is answered 'N'. allow, prefer: TLS when the client asks. require: plaintext logins are refused with 28000. verify-ca, verify-full: TLS with a client certificate that verifies against client_tls_ca_file."),
        .proxy("client_tls_cert_file", \.clientTLSCertFile, .path,
               "Certificate (PEM, chain allowed) the proxy shows clients; required unless client_tls_sslmode = disable. Re-read on RELOAD."),
        .proxy("client_tls_key_file", \.clientTLSKeyFile, .path,
               "Private key (PEM) of client_tls_cert_file. Re-read on RELOAD."),
        .proxy("client_tls_ca_file", \.clientTLSCAFile, .path,
               "CA bundle (PEM) that client certificates must verify against; when set, clients are asked for a certificate. Required by verify-ca, verify-full and auth_type = cert."),
        .proxy("client_tls_protocols", \.clientTLSProtocols, .tlsProtocols,
               "TLS versions accepted from clients: tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure (1.2 and 1.3) or all; a contiguous range."),
        .proxy("client_tls_ciphers", \.clientTLSCiphers, .string(allowEmpty: false),
               "OpenSSL cipher list for clients (TLS 1.2 and below; TLS_* names set the TLS 1.3 suites); default keeps OpenSSL's."),
        .proxy("server_tls_sslmode", \.serverTLSSSLMode, .choice(ServerTLSMode.self),
               "TLS towards servers, as libpq's sslmode: disable, prefer (TLS if the server offers it), require, verify-ca (certificate chain checked), verify-full (and the backend's host name). Overridable per backend."),
        .proxy("server_tls_ca_file", \.serverTLSCAFile, .path,
               "CA bundle (PEM) server certificates must verify against (verify-ca, verify-full); unset uses the system's trust store. Overridable per backend."),
        .proxy("server_tls_cert_file", \.serverTLSCertFile, .path,
               "Client certificate (PEM) the proxy presents to servers (for cert authentication there). Overridable per backend."),
        .proxy("server_tls_key_file", \.serverTLSKeyFile, .path,
               "Private key (PEM) of server_tls_cert_file. Overridable per backend."),
        .proxy("server_tls_protocols", \.serverTLSProtocols, .tlsProtocols,
               "TLS versions offered to servers (as client_tls_protocols)."),
        .proxy("server_tls_ciphers", \.serverTLSCiphers, .string(allowEmpty: false),
               "OpenSSL cipher list towards servers (as client_tls_ciphers)."),

        .backend("host", \.host, .string(allowEmpty: false), default: nil,
                 "Server host name, IP address or Unix socket folder."),
        .backend("port", \.port, .integer(min: 1, max: 65535), default: 5432,
                 "Server port."),
        .backend("role", \.roleSetting, .optionalChoice(BackendRoleSetting.self), default: .some(nil),
                 "primary, replica, or auto (follow pg_is_in_recovery(), so writes follow a failover); defaults to the section's role."),
        .backend("weight", \.weight, .integer(min: 0), default: 1,
                 "Share of read traffic sent to this backend; 0 sends none."),

        .backend("server_tls_sslmode", \.tlsMode, .optionalChoice(ServerTLSMode.self, unset: "[proxy] server_tls_sslmode"), default: .some(nil),
                 "This backend's server_tls_sslmode; verify-full checks the certificate against this section's host."),
        .backend("server_tls_ca_file", \.tlsCAFile, .path, default: .some(nil),
                 "This backend's server_tls_ca_file; unset means the [proxy] value."),
        .backend("server_tls_cert_file", \.tlsCertFile, .path, default: .some(nil),
                 "This backend's server_tls_cert_file; unset means the [proxy] value."),
        .backend("server_tls_key_file", \.tlsKeyFile, .path, default: .some(nil),
                 "This backend's server_tls_key_file; unset means the [proxy] value."),

        .user("pool_mode", \.poolMode, .choice(PoolMode.self), inherits: "pool_mode",
              "This user's pool mode."),
        .user("pool_size", \.poolSize, .integer(min: 1), inherits: "default_pool_size",
              "This user's server connections per database."),
        .user("statement_timeout", \.statementTimeout, .duration, inherits: "statement_timeout",
              "This user's statement timeout (over the database's and the route's)."),

        .database("statement_timeout", \.statementTimeout, .duration, inherits: "statement_timeout",
                  "This database's statement timeout (over the route's)."),
    ]

    /// The key named `name` in `section`, if there is one.
    public static func key(_ section: ConfigSection, _ name: String) -> ConfigKey? {
        index[section]?[name]
    }

    /// The keys of one section, in table order.
    public static func keys(in section: ConfigSection) -> [ConfigKey] {
        all.filter { $0.section == section }
    }

    /// `all` by section, then by name.
    private static let index: [ConfigSection: [String: ConfigKey]] = {
        var index: [ConfigSection: [String: ConfigKey]] = [:]
        for key in all {
            precondition(index[key.section]?[key.name] == nil, "config key listed twice: \(key.name)")
            index[key.section, default: [:]][key.name] = key
        }
        return index
    }()

    /// A Markdown table of every key (section | key | type | default | description), for the README.
    public static func markdownReference() -> String {
        var lines = [
            "| section | key | type | default | description |",
            "|---|---|---|---|---|",
        ]
        for key in all {
            let cells = [
                key.section.heading, "`\(key.name)`", key.kind,
                key.defaultValue.isEmpty ? "" : "`\(key.defaultValue)`", key.doc,
            ]
            lines.append("| " + cells.map(escape).joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Every `[proxy]` key with its effective value, for SHOW CONFIG; durations as "15s"/"500ms", sizes as "1GB".
    public static func currentValues(_ config: Config) -> [(key: String, value: String)] {
        all.compactMap { key in
            switch key.binding {
            case .proxy(_, let render): return (key: key.name, value: render(config.proxy))
            case .backend, .user, .database: return nil
            }
        }
    }

    /// A table cell with `|` escaped.
    private static func escape(_ cell: String) -> String {
        cell.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
    }
}
