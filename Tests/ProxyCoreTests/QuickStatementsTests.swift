import XCTest
@testable import ProxyCore

final class QuickStatementsTests: XCTestCase {
    func testUnknownShapesAreNotQuick() {
        let q = QuickStatements(limitMicros: 5_000)
        XCTAssertFalse(q.isQuick(42))
    }

    func testOneQuickRunMakesAShapeQuick() {
        var q = QuickStatements(limitMicros: 5_000)
        q.observe(1, micros: 300)
        q.observe(2, micros: 5_000)
        XCTAssertTrue(q.isQuick(1))
        XCTAssertFalse(q.isQuick(2), "the limit itself is not quick")
    }

    func testTheMeanFollowsRecentDurations() {
        var q = QuickStatements(limitMicros: 5_000)
        q.observe(7, micros: 1_000)
        q.observe(7, micros: 21_000)
        XCTAssertEqual(q.mean(7)!, 6_000, accuracy: 0.5)   // 1,000 + (21,000 - 1,000) / 4
        XCTAssertFalse(q.isQuick(7))
        for _ in 0..<10 { q.observe(7, micros: 1_000) }
        XCTAssertTrue(q.isQuick(7), "quick again after quick runs")
    }

    func testALimitOfZeroMakesNothingQuick() {
        var q = QuickStatements(limitMicros: 0)
        q.observe(1, micros: 0)
        XCTAssertFalse(q.isQuick(1))
    }

    func testBoundedByCapacity() {
        var q = QuickStatements(limitMicros: 5_000, capacity: 3)
        for id in UInt64(1)...3 { q.observe(id, micros: 10) }
        XCTAssertEqual(q.count, 3)
        q.observe(4, micros: 10)
        XCTAssertEqual(q.count, 1, "starts over past the capacity")
        XCTAssertTrue(q.isQuick(4))
        XCTAssertFalse(q.isQuick(1))
    }
}
