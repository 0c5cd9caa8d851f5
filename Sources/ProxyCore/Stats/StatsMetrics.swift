// The Prometheus side of the stats: every exported metric in one table, the per-backend and per-route series the
// registry records into, and the /metrics text (the per-statement series from SharedSeries.swift, the rest rendered
// by swift-prometheus; gauges are set at scrape time).

import Prometheus

/// Every metric Switchyard exports: name, unit and help, in one place.
enum SwitchyardMetric {
    static let backendDuration = make("backend_query_duration", "seconds", "Statement duration per backend.")
    static let routeDuration = make("route_query_duration", "seconds", "Statement duration per route.")
    static let backendQueries = make("backend_queries", "total", "Statements finished per backend.")
    static let backendErrors = make("backend_errors", "total", "Statements that failed per backend (errors and timeouts).")
    static let backendTimeouts = make("backend_statement_timeouts", "total", "Statements cancelled by the proxy's statement timeout.")
    static let backendMisroutes = make("backend_misroutes", "total", "Statements sent to a backend that had to run elsewhere.")
    static let backendPipelined = make("backend_pipelined_queries", "total", "Lone reads sent behind another client's statement on a busy server connection (server_pipeline_depth).")
    static let fingerprintEvictions = make("stats_fingerprints_evicted", "total", "Query fingerprints dropped from the stats because stats_max_fingerprints was reached.")
    static let clientConnections = make("client_connections", "", "Client connections by state.")
    static let serverConnections = make("server_connections", "", "Server connections by backend and state.")
    static let replicaLagBytes = make("replica_lag", "bytes", "WAL bytes a replica's replay is behind the primary.")
    static let replicaLagSeconds = make("replica_lag", "seconds", "Seconds a replica's replay is behind the primary.")

    /// Buckets of the duration histograms, in seconds: 0.5 ms .. 10 s (recorded in microseconds, SeriesCells).
    static let durationBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]

    private static func make(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "switchyard", metricName: name, unitName: unit, helpText: help)
    }
}

/// One backend's series: `backend` and `role` labels. The duration histogram and the statement and failure
/// counters are this registry's cells in the shared series, made on the first statement it records (a registry
/// that only displays merged statistics never makes any); the rare counters are swift-prometheus's.
struct BackendMetrics: Sendable {
    private let labels: [(String, String)]
    private(set) var cells: SeriesCells?
    let timeouts: Counter
    let misroutes: Counter
    let pipelined: Counter

    init(collector: MetricsCollector, name: String, role: BackendRole) {
        labels = [("backend", name), ("role", role.rawValue)]
        timeouts = collector.prometheus.makeCounter(descriptor: SwitchyardMetric.backendTimeouts, labels: labels)
        misroutes = collector.prometheus.makeCounter(descriptor: SwitchyardMetric.backendMisroutes, labels: labels)
        pipelined = collector.prometheus.makeCounter(descriptor: SwitchyardMetric.backendPipelined, labels: labels)
    }

    mutating func record(micros: UInt64, outcome: StatementSample.Outcome, collector: MetricsCollector) {
        if cells == nil { cells = collector.cells(.backend, labels: labels) }
        cells!.record(micros: micros, failed: outcome.failed)
        if case .timeout = outcome { timeouts.increment() }
    }
}

/// The collector, this registry's route series (made on the first statement of each route) and the evictions.
struct StatsMetrics: Sendable {
    let collector: MetricsCollector
    private var primaryRoute: SeriesCells?
    private var replicaRoute: SeriesCells?
    let evictions: Counter

    init(collector: MetricsCollector) {
        self.collector = collector
        evictions = collector.prometheus.makeCounter(descriptor: SwitchyardMetric.fingerprintEvictions)
    }

    mutating func recordRoute(_ role: BackendRole, micros: UInt64, failed: Bool) {
        switch role {
        case .primary:
            if primaryRoute == nil { primaryRoute = collector.cells(.route, labels: [("route", role.rawValue)]) }
            primaryRoute!.record(micros: micros, failed: failed)
        case .replica:
            if replicaRoute == nil { replicaRoute = collector.cells(.route, labels: [("route", role.rawValue)]) }
            replicaRoute!.record(micros: micros, failed: failed)
        }
    }
}

/// Gauges the I/O layer knows at scrape time. Report every state and backend each time (zeros too): a series
/// left out keeps its last value; a nil lag removes that backend's lag series.
public struct ScrapeInputs: Sendable {
    /// Server connections of one backend in one state.
    public struct Servers: Sendable {
        public var backend: String
        public var role: BackendRole
        public var state: String
        public var count: Int

        public init(backend: String, role: BackendRole, state: String, count: Int) {
            self.backend = backend
            self.role = role
            self.state = state
            self.count = count
        }
    }

    /// A replica's replay lag, nil while unknown.
    public struct Lag: Sendable {
        public var backend: String
        public var bytes: UInt64?
        public var seconds: Double?

        public init(backend: String, bytes: UInt64?, seconds: Double?) {
            self.backend = backend
            self.bytes = bytes
            self.seconds = seconds
        }
    }

    /// Client connections by state ("active", "waiting", "idle").
    public var clientConnections: [String: Int]
    public var serverConnections: [Servers]
    public var replicaLag: [Lag]

    public init(clientConnections: [String: Int] = [:], serverConnections: [Servers] = [], replicaLag: [Lag] = []) {
        self.clientConnections = clientConnections
        self.serverConnections = serverConnections
        self.replicaLag = replicaLag
    }
}

extension StatsRegistry {
    /// The Prometheus text exposition of the shared collector (every worker's series), after setting the gauges.
    public func prometheusText(_ inputs: ScrapeInputs = ScrapeInputs()) -> String {
        for (state, count) in inputs.clientConnections {
            setGauge(SwitchyardMetric.clientConnections, [("state", state)], Double(count))
        }
        for s in inputs.serverConnections {
            setGauge(SwitchyardMetric.serverConnections,
                     [("backend", s.backend), ("role", s.role.rawValue), ("state", s.state)], Double(s.count))
        }
        for lag in inputs.replicaLag {
            setGauge(SwitchyardMetric.replicaLagBytes, [("backend", lag.backend)], lag.bytes.map { Double($0) })
            setGauge(SwitchyardMetric.replicaLagSeconds, [("backend", lag.backend)], lag.seconds)
        }
        var text = ""
        metrics.collector.emitSeries(into: &text)
        var buffer: [UInt8] = []
        metrics.collector.prometheus.emit(into: &buffer)
        return text + String(decoding: buffer, as: UTF8.self)
    }

    /// Sets a gauge, or removes its series when the value is unknown.
    private func setGauge(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)], _ value: Double?) {
        let gauge = metrics.collector.prometheus.makeGauge(descriptor: descriptor, labels: labels)
        if let value {
            gauge.set(value)
        } else {
            metrics.collector.prometheus.unregisterGauge(gauge)
        }
    }
}
