// LatencyHistogram and WindowedLatency: percentiles of known distributions, merge/reset, the heap one histogram
// takes, and a sliding window moved by a manual clock.
import Glibc
@testable import ProxyCore
import XCTest

/// Bytes malloc has handed out and not taken back: glibc's mallinfo2() uordblks + hblkhd (all arenas, mmapped
/// blocks included). malloc.h is not in the Glibc module, so mallinfo2 is found with dlsym and called as returning a
/// `struct stat`: any C struct over 16 bytes comes back through a buffer the caller provides (x86-64 and arm64), and
/// stat's 144 bytes hold mallinfo2's ten size_t fields.
func heapInUse() -> Int {
    typealias MallInfo2 = @convention(c) () -> stat
    guard let symbol = dlsym(nil, "mallinfo2") else { fatalError("glibc without mallinfo2") }   // nil: RTLD_DEFAULT
    let info = unsafeBitCast(symbol, to: MallInfo2.self)()
    return withUnsafeBytes(of: info) { words in
        let fields = words.bindMemory(to: Int.self)
        return fields[7] + fields[4]   // uordblks, hblkhd
    }
}

final class StatsHistogramTests: XCTestCase {
    func testPercentilesOfAUniformDistribution() {
        var h = LatencyHistogram()
        for v in 1...10_000 { h.record(micros: UInt64(v)) }
        XCTAssertEqual(h.count, 10_000)
        XCTAssertEqual(h.max, 10_000)
        for (p, expected) in [(50.0, 5000.0), (90, 9000), (95, 9500), (99, 9900), (99.9, 9990)] {
            let value = Double(h.percentile(p))
            XCTAssertEqual(value, expected, accuracy: expected * 0.01, "p\(p)")
        }
        XCTAssertEqual(h.mean, 5000.5, accuracy: 50)
        let s = h.summary
        XCTAssertEqual(s.count, 10_000)
        XCTAssertEqual(s.p50, h.percentile(50))
        XCTAssertEqual(s.max, 10_000)
    }

    func testSkewedDistributionAndClamping() {
        var h = LatencyHistogram()
        for _ in 0..<990 { h.record(micros: 200) }
        for _ in 0..<10 { h.record(micros: 50_000) }
        XCTAssertEqual(h.percentile(50), 200)
        XCTAssertEqual(h.percentile(99), 200)
        XCTAssertEqual(Double(h.percentile(99.9)), 50_000, accuracy: 500)
        h.record(micros: 10 * LatencyHistogram.highestMicros)   // above 1 h: counted as 1 h
        XCTAssertEqual(h.count, 1001)
        XCTAssertEqual(h.max, LatencyHistogram.highestMicros)
    }

    func testMergeAndReset() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        for _ in 0..<100 { a.record(micros: 1000) }
        for _ in 0..<300 { b.record(micros: 4000) }
        a.merge(b)
        XCTAssertEqual(a.count, 400)
        XCTAssertEqual(Double(a.percentile(20)), 1000, accuracy: 10)
        XCTAssertEqual(Double(a.percentile(50)), 4000, accuracy: 40)
        XCTAssertEqual(a.max, 4000)
        XCTAssertEqual(b.count, 300, "merge leaves the other histogram alone")
        a.reset()
        XCTAssertEqual(a.count, 0)
        XCTAssertEqual(a.percentile(99), 0)
        XCTAssertEqual(a.max, 0)
    }

    /// The number quoted in LatencyHistogram's doc comment.
    func testOneHistogramTakesAbout13KB() {
        let before = heapInUse()
        let histograms = (0..<200).map { _ in LatencyHistogram() }
        let perHistogram = (heapInUse() - before) / histograms.count
        print("LatencyHistogram heap bytes: \(perHistogram)")
        XCTAssertGreaterThanOrEqual(perHistogram, 13_312)
        XCTAssertLessThan(perHistogram, 13_600)
    }

    // MARK: WindowedLatency

    func testOldSamplesLeaveTheWindow() {
        var pool = LatencyPool()
        var w = WindowedLatency(window: 60, slotCount: 6)
        for i in 0..<100 { w.record(micros: 1000, failed: i < 5, now: Double(i) * 0.09, pool: &pool) }   // slot [0, 10)
        for _ in 0..<100 { w.record(micros: 2000, failed: false, now: 30, pool: &pool) }             // slot [30, 40)

        XCTAssertEqual(w.windowTotals(now: 35), LatencyTotals(calls: 200, errors: 5, micros: 300_000))
        XCTAssertEqual(w.windowHistogram(now: 59.9).count, 200)
        // At 60 the window is the slots [10, 70): the first 100 samples are out.
        XCTAssertEqual(w.windowTotals(now: 60), LatencyTotals(calls: 100, errors: 0, micros: 200_000))
        XCTAssertEqual(Double(w.windowHistogram(now: 65).percentile(50)), 2000, accuracy: 20)
        // At 90 the slot [30, 40) is out too; since start still has everything.
        XCTAssertEqual(w.windowTotals(now: 90), .zero)
        XCTAssertEqual(w.windowHistogram(now: 90).count, 0)
        XCTAssertEqual(w.totals, LatencyTotals(calls: 200, errors: 5, micros: 300_000))
        XCTAssertEqual(w.sinceStart.count, 200)
        XCTAssertEqual(Double(w.sinceStart.percentile(50)), 1000, accuracy: 10)
    }

    func testAReusedSlotStartsEmptyAndExpiredSlotsGoBackToThePool() {
        var pool = LatencyPool()
        var w = WindowedLatency(window: 60, slotCount: 6)
        w.record(micros: 500, failed: false, now: 1, pool: &pool)
        w.record(micros: 700, failed: false, now: 21, pool: &pool)
        // 61 falls in slot 0 again (period [60, 70)): the sample from 1 s must not be counted in it.
        w.record(micros: 900, failed: true, now: 61, pool: &pool)
        XCTAssertEqual(w.windowTotals(now: 61), LatencyTotals(calls: 2, errors: 1, micros: 1600))
        XCTAssertEqual(w.windowHistogram(now: 61).count, 2)

        XCTAssertEqual(pool.spareCount, 0)
        w.releaseSlots(expiredAt: 75, pool: &pool)   // slot [20, 30) left the window at 80: still live at 75
        XCTAssertEqual(pool.spareCount, 0)
        w.releaseSlots(expiredAt: 85, pool: &pool)
        XCTAssertEqual(pool.spareCount, 1)
        w.record(micros: 100, failed: false, now: 90, pool: &pool)   // a new slot takes the spare
        XCTAssertEqual(pool.spareCount, 0)
        XCTAssertEqual(w.windowTotals(now: 90), LatencyTotals(calls: 2, errors: 1, micros: 1000))
        w.releaseSlots(expiredAt: nil, pool: &pool)
        XCTAssertEqual(pool.spareCount, 2)
        XCTAssertEqual(w.windowTotals(now: 90).calls, 2, "totals stay; only the histograms went back")
    }

    func testMergingWindowsOfTwoWorkers() {
        var pool = LatencyPool()
        var a = WindowedLatency()
        var b = WindowedLatency()
        for _ in 0..<10 { a.record(micros: 1000, failed: false, now: 5, pool: &pool) }
        for _ in 0..<30 { b.record(micros: 3000, failed: false, now: 8, pool: &pool) }   // same slot as a's
        for _ in 0..<20 { b.record(micros: 5000, failed: true, now: 70, pool: &pool) }   // a newer slot
        a.merge(b, pool: &pool)
        XCTAssertEqual(a.totals, LatencyTotals(calls: 60, errors: 20, micros: 200_000))
        XCTAssertEqual(a.windowTotals(now: 9), LatencyTotals(calls: 40, errors: 0, micros: 100_000))
        XCTAssertEqual(a.windowTotals(now: 70), LatencyTotals(calls: 20, errors: 20, micros: 100_000))
        XCTAssertEqual(Double(a.windowHistogram(now: 9).percentile(50)), 3000, accuracy: 30)
        XCTAssertEqual(a.sinceStart.count, 60)
    }
}
