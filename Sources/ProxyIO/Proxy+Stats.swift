// Statistics of one worker: each finished statement into the stats registry and the query log, the
// /metrics text with every worker's counts, and every worker's statistics merged for SHOW and the summary line.
import Foundation
import PGWire
import ProxyCore

extension Proxy {
    /// One statement (a Query, or an extended batch up to Sync) finished on `server`: stats and the query log.
    func statementFinished(on server: ServerConnection, fingerprint: Fingerprint?, seconds: Double, rows: Int,
                           outcome: StatementOutcome, transactionSeconds: Double?, bytesIn: Int, bytesOut: Int) {
        let micros = UInt64(max(0, seconds) * 1_000_000)
        let role = role(of: server.backend)
        let sampleOutcome: StatementSample.Outcome
        switch outcome {
        case .ok: sampleOutcome = .ok
        case .error(let code): sampleOutcome = .error(sqlstate: code)
        case .timeout: sampleOutcome = .timeout
        }
        let sample = StatementSample(
            fingerprint: fingerprint?.id ?? 0, database: server.pool.database, backend: server.backend.name, role: role,
            micros: micros, rows: UInt64(rows), outcome: sampleOutcome, bytesReceived: UInt64(bytesIn),
            bytesSent: UInt64(bytesOut), waitMicros: UInt64(server.waitMicros),
            transactionMicros: transactionSeconds.map { UInt64(max(0, $0) * 1_000_000) })
        stats.record(sample, now: loop.now) { fingerprint?.normalized ?? "(not inspected)" }
        guard querySampler.shouldLog(micros: micros, random: &random) else { return }
        let client = server.client
        let line = QueryLogLine(
            durationMicros: micros, fingerprint: fingerprint?.id ?? 0, query: fingerprint?.normalized ?? "(not inspected)",
            backend: server.backend.name, role: role, user: server.pool.user, database: server.pool.database,
            client: client?.peer ?? "", applicationName: client?.applicationName ?? "", rows: UInt64(rows),
            outcome: sampleOutcome)
        writeQueryLog(line, slow: config.proxy.slowQueryThreshold > 0 && seconds >= config.proxy.slowQueryThreshold)
    }

    /// One query-log line on stderr, with a timestamp and a message name in the line's own format.
    func writeQueryLog(_ line: QueryLogLine, slow: Bool) {
        let ts = Self.timestamp(Date().timeIntervalSince1970)
        let msg = slow ? "slow_query" : "query"
        var text = line.formatted(config.proxy.logFormat)
        switch config.proxy.logFormat {
        case .logfmt: text = "ts=\"\(ts)\" msg=\(msg) " + text
        case .json: text = "{\"ts\":\"\(ts)\",\"msg\":\"\(msg)\"," + text.dropFirst()
        }
        text += "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A read that reached `backend` had to run on the primary (25006, or the replica was lost before replying).
    func recordMisroute(backend: String) {
        let role = backendConfig(named: backend).map { self.role(of: $0) } ?? .replica
        stats.recordMisroute(backend: backend, role: role, now: monotonicNow())
    }

    /// This worker's connection counts, for /metrics.
    func gauges() -> WorkerGauges {
        var g = WorkerGauges()
        for client in clients { g.clientsByState[client.adminState, default: 0] += 1 }
        for pool in pools.values {
            let backend = pool.backend.name
            g.servers[backend + "/idle", default: 0] += pool.machine.idle.count
            g.servers[backend + "/active", default: 0] += pool.machine.active.count
            g.servers[backend + "/connecting", default: 0] += pool.machine.connecting
        }
        return g
    }

    /// /metrics: the Prometheus text exposition (latency histograms and counters of all workers, plus gauges:
    /// this worker's counted now, the others' as their janitors last published them).
    func metricsText() -> String {
        var byState: [String: Int] = ["login": 0, "idle": 0, "waiting": 0, "active": 0]
        var servers: [String: (backend: String, role: BackendRole, state: String, count: Int)] = [:]
        for backend in config.backends {
            for state in ["idle", "active", "connecting"] {
                servers[backend.name + "/" + state] = (backend.name, role(of: backend), state, 0)
            }
        }
        for g in [gauges()] + workers.gaugesOfOthers(than: index) {
            for (state, n) in g.clientsByState { byState[state, default: 0] += n }
            for (key, n) in g.servers { servers[key]?.count += n }
        }
        let lag = backends.statuses.filter { !$0.isPrimary }.map {
            ScrapeInputs.Lag(backend: $0.name, bytes: $0.lagBytes, seconds: $0.lagSeconds)
        }
        return stats.prometheusText(ScrapeInputs(
            clientConnections: byState,
            serverConnections: servers.values.sorted { ($0.backend, $0.state) < ($1.backend, $1.state) }
                .map { ScrapeInputs.Servers(backend: $0.backend, role: $0.role, state: $0.state, count: $0.count) },
            replicaLag: lag))
    }

    /// Every worker's statistics merged (each worker copies its own on its loop), delivered on this worker's loop.
    func gatherStats(then done: @escaping (StatsRegistry) -> Void) {
        workers.gather(for: index, { $0.statsCopy() }, then: { [unowned self] parts in done(mergedStats(parts)) })
    }

    /// A copy of this worker's statistics that shares no buffers with it (taken on this worker's loop).
    func statsCopy() -> StatsRegistry {
        var copy = StatsRegistry(settings: stats.settings, now: stats.startedAt, collector: workers.collector)
        copy.merge(stats)
        return copy
    }

    /// Workers' copies as one registry (a copy taken while a RELOAD changed the settings is left out).
    func mergedStats(_ parts: [StatsRegistry]) -> StatsRegistry {
        let settings = stats.settings
        var merged = StatsRegistry(settings: settings, now: parts.map(\.startedAt).min() ?? stats.startedAt,
                                   collector: workers.collector)
        for part in parts where part.settings == settings { merged.merge(part) }
        return merged
    }
}
