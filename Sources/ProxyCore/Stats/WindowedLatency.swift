// Latency since start plus a sliding window (a ring of slot histograms rotated by an injected monotonic clock),
// and PgBouncer's stats-period snapshots of totals that only grow. No timers: both advance when `now` passes them.

/// Statement count, failures and time of one window, slot or since start.
public struct LatencyTotals: AdditiveArithmetic, Sendable {
    public var calls: UInt64
    /// Statements that failed: errors and timeouts.
    public var errors: UInt64
    public var micros: UInt64

    public init(calls: UInt64 = 0, errors: UInt64 = 0, micros: UInt64 = 0) {
        self.calls = calls
        self.errors = errors
        self.micros = micros
    }

    public static var zero: LatencyTotals { LatencyTotals() }

    public static func + (a: LatencyTotals, b: LatencyTotals) -> LatencyTotals {
        LatencyTotals(calls: a.calls &+ b.calls, errors: a.errors &+ b.errors, micros: a.micros &+ b.micros)
    }

    public static func - (a: LatencyTotals, b: LatencyTotals) -> LatencyTotals {
        LatencyTotals(calls: a.calls &- b.calls, errors: a.errors &- b.errors, micros: a.micros &- b.micros)
    }

    mutating func add(micros: UInt64, failed: Bool) {
        calls &+= 1
        errors &+= failed ? 1 : 0
        self.micros &+= micros
    }
}

/// Latencies since start and over the last `window` seconds. The window is a ring of `slotCount` slots of
/// window / slotCount seconds each, aligned to multiples of the slot length on the monotonic clock; a read merges
/// the current slot and the slotCount - 1 before it, so it covers the last (window - slot length) to window seconds.
/// Slots borrow their histograms from a `LatencyPool` (one per registry), which keeps idle windows small.
public struct WindowedLatency: Sendable {
    private struct Slot: Sendable {
        /// `now / slotSeconds` rounded down, of the period the slot holds; .min: never used.
        var epoch: Int64 = .min
        var totals = LatencyTotals.zero
        var histogram: LatencyHistogram?
    }

    /// Samples of slots that were started again or given back to the pool: with the slots' own samples, every
    /// sample since start. A statement is recorded once (into its slot), not twice (slot and a since-start
    /// histogram); a slot's samples move here when the slot is reused, once per slot length at most.
    private var archive = LatencyHistogram()
    public private(set) var totals = LatencyTotals.zero
    private var slots: [Slot]
    public let slotSeconds: Double

    public init(window: Double = 60, slotCount: Int = 6) {
        precondition(window > 0 && slotCount > 0, "a window needs a length and at least one slot")
        slotSeconds = window / Double(slotCount)
        slots = Array(repeating: Slot(), count: slotCount)
    }

    public var window: Double { slotSeconds * Double(slots.count) }

    /// Every sample since start in one histogram (built for display: the archive and every slot merged).
    public var sinceStart: LatencyHistogram {
        var all = archive
        for slot in slots {
            if let histogram = slot.histogram { all.merge(histogram) }
        }
        return all
    }

    /// Records one statement. Allocates only when the slot that starts has no histogram and the pool is empty.
    public mutating func record(micros: UInt64, failed: Bool, now: Double, pool: inout LatencyPool) {
        let epoch = epoch(now)
        let i = index(epoch)
        if slots[i].epoch < epoch { start(i, epoch: epoch, pool: &pool) }
        slots[i].totals.add(micros: micros, failed: failed)
        slots[i].histogram!.record(micros: micros)
        totals.add(micros: micros, failed: failed)
    }

    /// Calls, failures and time in the window ending at `now`.
    public func windowTotals(now: Double) -> LatencyTotals {
        let current = epoch(now)
        return slots.reduce(.zero) { sum, slot in isLive(slot, current: current) ? sum + slot.totals : sum }
    }

    /// The window's samples in one histogram.
    public func windowHistogram(now: Double) -> LatencyHistogram {
        let current = epoch(now)
        var merged = LatencyHistogram()
        for slot in slots where isLive(slot, current: current) {
            if let histogram = slot.histogram { merged.merge(histogram) }
        }
        return merged
    }

    /// Gives slot histograms back to the pool: those of slots outside the window ending at `now`, or all with nil.
    mutating func releaseSlots(expiredAt now: Double?, pool: inout LatencyPool) {
        let current = now.map { epoch($0) }
        for i in slots.indices {
            guard let histogram = slots[i].histogram else { continue }
            if let current, isLive(slots[i], current: current) { continue }
            archive.merge(histogram)
            pool.give(histogram)
            slots[i].histogram = nil
        }
    }

    /// Adds `other`'s samples (another worker's window over the same clock). Copies counts into this window's own
    /// histograms, never shares `other`'s buffers (sharing would make `other`'s next record copy them).
    public mutating func merge(_ other: WindowedLatency, pool: inout LatencyPool) {
        precondition(other.slots.count == slots.count && other.slotSeconds == slotSeconds, "windows differ")
        archive.merge(other.archive)
        totals = totals + other.totals
        for theirs in other.slots {
            guard let histogram = theirs.histogram else { continue }
            let i = index(theirs.epoch)
            // Older than this window's slot there: outside the window, still since start.
            if slots[i].epoch > theirs.epoch {
                archive.merge(histogram)
                continue
            }
            if slots[i].epoch < theirs.epoch { start(i, epoch: theirs.epoch, pool: &pool) }
            slots[i].totals = slots[i].totals + theirs.totals
            slots[i].histogram!.merge(histogram)
        }
    }

    /// Empties slot `i` for the period `epoch`, with a histogram.
    private mutating func start(_ i: Int, epoch: Int64, pool: inout LatencyPool) {
        slots[i].epoch = epoch
        slots[i].totals = .zero
        if slots[i].histogram == nil {
            slots[i].histogram = pool.take()
        } else {
            archive.merge(slots[i].histogram!)
            slots[i].histogram!.reset()
        }
    }

    private func epoch(_ now: Double) -> Int64 { Int64((now / slotSeconds).rounded(.down)) }

    private func index(_ epoch: Int64) -> Int {
        let n = Int64(slots.count)
        return Int((epoch % n + n) % n)
    }

    private func isLive(_ slot: Slot, current: Int64) -> Bool {
        slot.epoch <= current && slot.epoch > current - Int64(slots.count)
    }
}

/// PgBouncer's stats period for totals that only grow: the totals at the last two period boundaries. Kept lazily:
/// the totals at a boundary are the totals before the first change after it, so `advance` runs before each change
/// (and on a copy before each read) and no timer is needed.
struct PeriodSnapshots<Totals: AdditiveArithmetic & Sendable>: Sendable {
    /// Totals at the boundary before `newer`'s.
    private(set) var older: Totals = .zero
    private(set) var newer: Totals = .zero
    /// The boundary of `newer`, in periods (`now / period` rounded down).
    private(set) var newerEpoch: Int64

    init(epoch: Int64) { newerEpoch = epoch }

    /// Moves to the period `epoch`, with `current` the totals before anything recorded in it.
    mutating func advance(to epoch: Int64, current: Totals) {
        guard epoch > newerEpoch else { return }
        older = epoch == newerEpoch + 1 ? newer : current
        newer = current
        newerEpoch = epoch
    }

    /// Adds `other` (another worker's snapshots over the same clock), after both moved to the later boundary.
    mutating func merge(_ other: PeriodSnapshots, current: Totals, otherCurrent: Totals) {
        var theirs = other
        let epoch = Swift.max(newerEpoch, other.newerEpoch)
        advance(to: epoch, current: current)
        theirs.advance(to: epoch, current: otherCurrent)
        older = older + theirs.older
        newer = newer + theirs.newer
    }
}
