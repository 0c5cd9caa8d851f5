// Latency distributions in microseconds on HdrHistogram (1 µs .. 1 h, 2 significant digits), their percentile
// summary, and the pool that recycles histograms between the slots of sliding windows.

import Histogram

/// Statement latencies in microseconds. HdrHistogram at 2 significant digits: a percentile is within 1 % of a
/// recorded value; values above 1 hour are recorded as 1 hour.
///
/// Memory: 3,328 UInt32 counters (25 power-of-two buckets, 128 counters each plus 128 for the first), 13,312 bytes;
/// StatsHistogramTests measures 13,430 bytes of heap per histogram with the array header and malloc's overhead, plus
/// about 80 bytes inline where it is stored. UInt32 counts halve that: a histogram holds at most `UInt32.max`
/// samples, and one that reaches it starts over empty (at 100,000 statements a second, every 12 hours). Exact
/// totals (calls, time) are kept beside it in UInt64.
///
/// Costs (release build): `record` a few ns; `merge` 0.3 µs; `reset` about 25 µs, because HdrHistogram's reset is
/// generic code this module cannot specialise: a window pays it once per slot it starts.
public struct LatencyHistogram: Sendable {
    /// The largest value told apart: 1 hour.
    public static let highestMicros: UInt64 = 3_600_000_000

    private var histogram = Histogram<UInt32>(lowestDiscernibleValue: 1, highestTrackableValue: highestMicros,
                                              numberOfSignificantValueDigits: .two)

    public init() {}

    /// Samples recorded (since the last reset).
    public var count: UInt64 { histogram.totalCount }
    /// The largest sample, exact; 0 when empty.
    public var max: UInt64 { histogram.maxRecorded }
    /// Mean from the buckets (each sample counted at its bucket's middle); 0 when empty.
    public var mean: Double { histogram.mean }

    /// The value `p` percent of the samples are at or below (within the histogram's resolution); 0 when empty.
    public func percentile(_ p: Double) -> UInt64 { histogram.valueAtPercentile(p) }

    /// Adds one sample. Does not allocate (the counts array is allocated by `init`).
    public mutating func record(micros: UInt64) {
        if histogram.totalCount == UInt64(UInt32.max) { histogram.reset() }
        histogram.record(Swift.min(micros, Self.highestMicros))
    }

    /// Adds `other`'s samples.
    public mutating func merge(_ other: LatencyHistogram) {
        if count + other.count > UInt64(UInt32.max) { histogram.reset() }
        histogram.add(other.histogram)
    }

    public mutating func reset() { histogram.reset() }

    /// The percentiles the admin console and logs show.
    public var summary: LatencySummary {
        LatencySummary(count: count, p50: percentile(50), p90: percentile(90), p95: percentile(95),
                       p99: percentile(99), p999: percentile(99.9), max: max)
    }
}

/// Percentiles of one histogram in microseconds (all 0 when it is empty).
public struct LatencySummary: Equatable, Sendable {
    public var count: UInt64
    public var p50: UInt64
    public var p90: UInt64
    public var p95: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var max: UInt64

    public init(count: UInt64, p50: UInt64, p90: UInt64, p95: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p95 = p95
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    /// p50, p90, p95, p99, p99.9 and max as milliseconds with 3 decimals, in that order.
    var millisCells: [String?] { [p50, p90, p95, p99, p999, max].map { StatsFormat.millis($0) } }
}

/// Spare histograms for window slots. A slot takes one when it starts a period and gives it back once it is
/// outside the window, so memory follows the windows that saw statements lately, not every window ever made.
/// The pool never shrinks: a take allocates only when more slots are live than ever before.
public struct LatencyPool: Sendable {
    private var spare: [LatencyHistogram] = []

    public init() {}

    /// Histograms waiting to be reused.
    public var spareCount: Int { spare.count }

    /// An empty histogram: a spare one, or a new one when none is left.
    mutating func take() -> LatencyHistogram {
        guard var histogram = spare.popLast() else { return LatencyHistogram() }
        histogram.reset()
        return histogram
    }

    mutating func give(_ histogram: LatencyHistogram) { spare.append(histogram) }
}
