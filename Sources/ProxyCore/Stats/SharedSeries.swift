// The per-statement Prometheus series (duration histograms per backend and per route, statements and failures per
// backend) without a lock per statement: every worker's registry records into cells of its own, and a scrape adds
// all workers' cells up. Everything else exported (rare counters, scrape-time gauges) stays in swift-prometheus.

import Prometheus
import Synchronization

/// One series' counts as one registry records them: a non-cumulative count per duration bucket (plus one past the
/// last), statements, their microseconds and failures. Only the owning worker writes (a relaxed load and store, no
/// read-modify-write, no lock); a scrape on another worker reads with relaxed loads and may miss the statement
/// being recorded, never part of a count.
final class SeriesCells: @unchecked Sendable {
    /// Bucket bounds in microseconds (`SwitchyardMetric.durationBuckets` in seconds): a value counts in the first
    /// bucket it is at or below.
    static let boundsMicros: [UInt64] = SwitchyardMetric.durationBuckets.map { UInt64(($0 * 1_000_000).rounded()) }
    static let countSlot = boundsMicros.count + 1
    static let microsSlot = countSlot + 1
    static let failedSlot = microsSlot + 1
    static let slotCount = failedSlot + 1

    private let base: UnsafeMutablePointer<Atomic<UInt64>>

    init() {
        base = .allocate(capacity: Self.slotCount)
        for i in 0..<Self.slotCount { (base + i).initialize(to: Atomic(0)) }
    }

    deinit {
        base.deinitialize(count: Self.slotCount)
        base.deallocate()
    }

    /// `boundsMicros`, held by each instance: the statics are read on every statement otherwise, each read a
    /// swift_once check.
    private let bounds = SeriesCells.boundsMicros

    func record(micros: UInt64, failed: Bool) {
        var bucket = 0
        bounds.withUnsafeBufferPointer { bounds in
            while bucket < bounds.count, micros > bounds[bucket] { bucket += 1 }
        }
        // The slots after the buckets, as `countSlot`, `microsSlot` and `failedSlot` lay them out.
        let countSlot = bounds.count + 1
        add(bucket, 1)
        add(countSlot, 1)
        add(countSlot + 1, micros)
        if failed { add(countSlot + 2, 1) }
    }

    subscript(slot: Int) -> UInt64 { base[slot].load(ordering: .relaxed) }

    private func add(_ slot: Int, _ n: UInt64) {
        let cell = base + slot
        cell.pointee.store(cell.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }
}

/// What every worker's stats registry exports to: the lock-free per-statement series and a swift-prometheus
/// collector for the rest. One per process, shared by all workers.
public final class MetricsCollector: Sendable {
    /// Counters recorded rarely (timeouts, misroutes, pipelined reads, evictions) and the gauges set at scrape time.
    public let prometheus: PrometheusCollectorRegistry

    /// A series of the histogram families: which family, its labels rendered once, every registry's cells.
    private struct Series {
        var family: Family
        var labels: String
        var cells: [SeriesCells]
    }

    enum Family: CaseIterable {
        case backend
        case route
    }

    private let series = Mutex<[Series]>([])

    public init(prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.prometheus = prometheus
    }

    /// New cells for one registry in the series of `family` with `labels` (added to what other registries record
    /// there). Called once per registry and series, the first time it records one.
    func cells(_ family: Family, labels: [(String, String)]) -> SeriesCells {
        let rendered = labels.map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",")
        let cells = SeriesCells()
        series.withLock { all in
            if let i = all.firstIndex(where: { $0.family == family && $0.labels == rendered }) {
                all[i].cells.append(cells)
            } else {
                all.append(Series(family: family, labels: rendered, cells: [cells]))
            }
        }
        return cells
    }

    /// The histogram families and the per-backend statement and failure counters, as Prometheus text.
    func emitSeries(into text: inout String) {
        let snapshot: [(Family, String, [UInt64])] = series.withLock { all in
            all.map { s in
                (s.family, s.labels, (0..<SeriesCells.slotCount).map { slot in s.cells.reduce(0) { $0 &+ $1[slot] } })
            }
        }
        for family in Family.allCases {
            let rows = snapshot.filter { $0.0 == family }
            guard !rows.isEmpty else { continue }
            let name = family == .backend ? SwitchyardMetric.backendDuration.name : SwitchyardMetric.routeDuration.name
            Self.header(name, family == .backend ? SwitchyardMetric.backendDuration : SwitchyardMetric.routeDuration,
                        "histogram", into: &text)
            for (_, labels, counts) in rows {
                var cumulative: UInt64 = 0
                for (i, bound) in SwitchyardMetric.durationBuckets.enumerated() {
                    cumulative &+= counts[i]
                    text += "\(name)_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
                }
                text += "\(name)_bucket{\(labels),le=\"+Inf\"} \(counts[SeriesCells.countSlot])\n"
                text += "\(name)_sum{\(labels)} \(Double(counts[SeriesCells.microsSlot]) / 1_000_000)\n"
                text += "\(name)_count{\(labels)} \(counts[SeriesCells.countSlot])\n"
            }
        }
        let backends = snapshot.filter { $0.0 == .backend }
        guard !backends.isEmpty else { return }
        for (descriptor, slot) in [(SwitchyardMetric.backendQueries, SeriesCells.countSlot),
                                   (SwitchyardMetric.backendErrors, SeriesCells.failedSlot)] {
            Self.header(descriptor.name, descriptor, "counter", into: &text)
            for (_, labels, counts) in backends { text += "\(descriptor.name){\(labels)} \(counts[slot])\n" }
        }
    }

    private static func header(_ name: String, _ descriptor: MetricNameDescriptor, _ type: String,
                               into text: inout String) {
        if let help = descriptor.helpText, !help.isEmpty { text += "# HELP \(name) \(help)\n" }
        text += "# TYPE \(name) \(type)\n"
    }

    /// A label value in the exposition format: backslash, double quote and newline escaped.
    static func escaped(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
