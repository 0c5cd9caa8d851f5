// The process-wide pool_size cap shared by workers: counting, waiting and waking.
import ProxyCore
import XCTest

final class PoolSlotsTests: XCTestCase {
    func testCapHoldsAcrossWorkers() {
        var slots = PoolSlots()
        XCTAssertTrue(slots.acquire("db", limit: 2, worker: 0, wait: true))
        XCTAssertTrue(slots.acquire("db", limit: 2, worker: 1, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 2, worker: 1, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 2, worker: 0, wait: true))
        XCTAssertEqual(slots.used("db"), 2)
        // Another key has its own cap.
        XCTAssertTrue(slots.acquire("other", limit: 1, worker: 0, wait: true))
    }

    func testReleaseWakesWaitersInOrder() {
        var slots = PoolSlots()
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 0, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 1, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 2, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 1, wait: true), "a worker queues once")
        XCTAssertTrue(slots.othersWaiting("db", besides: 0))
        XCTAssertEqual(slots.waitingWorkers, 2)
        XCTAssertEqual(slots.release("db"), 1)
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 1, wait: true))
        XCTAssertEqual(slots.release("db"), 2)
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 2, wait: true))
        XCTAssertFalse(slots.othersWaiting("db", besides: 2))
        XCTAssertNil(slots.release("db"))
        XCTAssertEqual(slots.used("db"), 0)
        XCTAssertEqual(slots.waitingWorkers, 0)
    }

    func testNoWaitDoesNotQueue() {
        var slots = PoolSlots()
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 0, wait: false))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 1, wait: false))
        XCTAssertFalse(slots.othersWaiting("db", besides: 0))
        XCTAssertNil(slots.release("db"))
    }

    func testIdleServerMovesToAWaitingWorker() {
        var slots = PoolSlots()
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 0, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 0, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 1, wait: true))
        XCTAssertEqual(slots.takeWaiter("db", besides: 0), 1, "worker 0's own wait does not count")
        XCTAssertNil(slots.takeWaiter("db", besides: 0))
        XCTAssertEqual(slots.used("db"), 1, "the slot moved with the server")
        XCTAssertEqual(slots.release("db"), 0, "worker 0 still waits")
    }

    func testStopWaiting() {
        var slots = PoolSlots()
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 0, wait: true))
        XCTAssertFalse(slots.acquire("db", limit: 1, worker: 1, wait: true))
        slots.stopWaiting("db", worker: 1)
        XCTAssertFalse(slots.othersWaiting("db", besides: 0))
        XCTAssertNil(slots.release("db"))
    }

    func testReleaseNeverGoesNegative() {
        var slots = PoolSlots()
        XCTAssertNil(slots.release("db"))
        XCTAssertTrue(slots.acquire("db", limit: 1, worker: 0, wait: true))
        XCTAssertEqual(slots.used("db"), 1)
    }
}
