// Transcripts of one pool (PoolStateMachine) with Int clients and String servers: connect on demand,
// the size cap, FIFO waiters, LIFO idle reuse, connect failures, closed servers, and `total` at each step.
import XCTest
import ProxyCore

final class PoolStateMachineTests: XCTestCase {
    typealias Pool = PoolStateMachine<Int, String>

    private func assertCounts(_ p: Pool, idle: [String], active: Set<String>, connecting: Int, waiting: [Int],
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(p.idle, idle, "idle", file: file, line: line)
        XCTAssertEqual(Set(p.active), active, "active", file: file, line: line)
        XCTAssertEqual(p.connecting, connecting, "connecting", file: file, line: line)
        XCTAssertEqual(p.waiting, waiting, "waiting", file: file, line: line)
        XCTAssertEqual(p.total, idle.count + active.count + connecting, "total", file: file, line: line)
    }

    func testFirstRequestConnectsThenAttaches() {
        var p = Pool(maxSize: 5)
        XCTAssertEqual(p.total, 0)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        assertCounts(p, idle: [], active: [], connecting: 1, waiting: [1])
        XCTAssertEqual(p.total, 1)
        XCTAssertEqual(p.serverConnected("s1"), [.attach(1, "s1")])
        assertCounts(p, idle: [], active: ["s1"], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 1)
    }

    func testDeferredConnectIsRetriedOnTick() {
        var p = Pool(maxSize: 5)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        // Another worker holds the process-wide cap: the connect does not happen and no longer counts.
        p.connectDeferred()
        assertCounts(p, idle: [], active: [], connecting: 0, waiting: [1])
        // A slot freed up: the tick asks again, with no retry delay in between.
        XCTAssertEqual(p.tick(now: 0), [.connect])
        XCTAssertEqual(p.serverConnected("s1"), [.attach(1, "s1")])
        p.connectDeferred()
        assertCounts(p, idle: [], active: ["s1"], connecting: 0, waiting: [])
    }

    func testResizeGrowsForWaitersAndShrinksAsServersComeBack() {
        var p = Pool(maxSize: 1)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        XCTAssertEqual(p.serverConnected("s1"), [.attach(1, "s1")])
        XCTAssertEqual(p.clientRequests(2), [])
        // RELOAD: size 2 opens a server for the waiting client at once.
        XCTAssertEqual(p.resize(2), [.connect])
        XCTAssertEqual(p.serverConnected("s2"), [.attach(2, "s2")])
        XCTAssertEqual(p.serverReleased("s2"), [])
        assertCounts(p, idle: ["s2"], active: ["s1"], connecting: 0, waiting: [])
        // Back to 1: the idle one closes now, the busy one stays until it comes back within the size.
        XCTAssertEqual(p.resize(1), [.close("s2")])
        XCTAssertEqual(p.serverClosed("s2"), [])
        assertCounts(p, idle: [], active: ["s1"], connecting: 0, waiting: [])
        XCTAssertEqual(p.serverReleased("s1"), [])
        assertCounts(p, idle: ["s1"], active: [], connecting: 0, waiting: [])
        // Size 0 (a retired pool): servers close as they come back.
        XCTAssertEqual(p.clientRequests(3), [.attach(3, "s1")])
        XCTAssertEqual(p.resize(0), [])
        XCTAssertEqual(p.serverReleased("s1"), [.close("s1")])
    }

    func testReleasedServerGoesIdleAndIsReusedWithoutConnecting() {
        var p = Pool(maxSize: 5)
        _ = p.clientRequests(1)
        _ = p.serverConnected("s1")
        XCTAssertEqual(p.serverReleased("s1"), [])
        assertCounts(p, idle: ["s1"], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 1)
        XCTAssertEqual(p.clientRequests(2), [.attach(2, "s1")])
        assertCounts(p, idle: [], active: ["s1"], connecting: 0, waiting: [])
    }

    func testCapIsRespectedAndWaitersAreServedFirstComeFirstServed() {
        var p = Pool(maxSize: 2)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        XCTAssertEqual(p.clientRequests(2), [.connect])
        XCTAssertEqual(p.clientRequests(3), [])
        XCTAssertEqual(p.clientRequests(4), [])
        assertCounts(p, idle: [], active: [], connecting: 2, waiting: [1, 2, 3, 4])
        XCTAssertEqual(p.total, 2)

        XCTAssertEqual(p.serverConnected("a"), [.attach(1, "a")])
        XCTAssertEqual(p.serverConnected("b"), [.attach(2, "b")])
        assertCounts(p, idle: [], active: ["a", "b"], connecting: 0, waiting: [3, 4])
        XCTAssertEqual(p.total, 2)

        // A release hands the server straight to the first waiter.
        XCTAssertEqual(p.serverReleased("b"), [.attach(3, "b")])
        assertCounts(p, idle: [], active: ["a", "b"], connecting: 0, waiting: [4])
        XCTAssertEqual(p.serverReleased("a"), [.attach(4, "a")])
        assertCounts(p, idle: [], active: ["a", "b"], connecting: 0, waiting: [])
        XCTAssertEqual(p.serverReleased("a"), [])
        XCTAssertEqual(p.serverReleased("b"), [])
        assertCounts(p, idle: ["a", "b"], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 2)
    }

    func testRequestsBurstOpensOneConnectionPerWaiterUpToTheCap() {
        var p = Pool(maxSize: 3)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        // "a" is busy; two more clients need two more servers, the cap allows them.
        XCTAssertEqual(p.clientRequests(2), [.connect])
        XCTAssertEqual(p.clientRequests(3), [.connect])
        XCTAssertEqual(p.clientRequests(4), [])
        assertCounts(p, idle: [], active: ["a"], connecting: 2, waiting: [2, 3, 4])
        XCTAssertEqual(p.total, 3)
    }

    func testIdleReuseIsLastInFirstOut() {
        var p = Pool(maxSize: 3)
        for c in 1...3 { _ = p.clientRequests(c) }
        _ = p.serverConnected("a")
        _ = p.serverConnected("b")
        _ = p.serverConnected("c")
        XCTAssertEqual(p.serverReleased("b"), [])
        XCTAssertEqual(p.serverReleased("a"), [])
        XCTAssertEqual(p.serverReleased("c"), [])
        assertCounts(p, idle: ["b", "a", "c"], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.clientRequests(10), [.attach(10, "c")])
        XCTAssertEqual(p.clientRequests(11), [.attach(11, "a")])
        XCTAssertEqual(p.serverReleased("c"), [])
        XCTAssertEqual(p.clientRequests(12), [.attach(12, "c")])
        XCTAssertEqual(p.clientRequests(13), [.attach(13, "b")])
        assertCounts(p, idle: [], active: ["a", "b", "c"], connecting: 0, waiting: [])
    }

    func testAWaiterServedElsewhereLeavesByPosition() {
        var p = Pool(maxSize: 1)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        for c in 2...5 { _ = p.clientRequests(c) }
        p.clientLeftQueue(at: 1)
        p.clientLeftQueue(at: 0)
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [4, 5])
        XCTAssertEqual(p.serverReleased("a"), [.attach(4, "a")])
    }

    func testClientLeftQueueRemovesOnlyThatWaiter() {
        var p = Pool(maxSize: 1)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        _ = p.clientRequests(2)
        _ = p.clientRequests(3)
        _ = p.clientRequests(4)
        p.clientLeftQueue(3)
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [2, 4])
        p.clientLeftQueue(99)
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [2, 4])
        XCTAssertEqual(p.serverReleased("a"), [.attach(2, "a")])
        XCTAssertEqual(p.serverReleased("a"), [.attach(4, "a")])
        XCTAssertEqual(p.serverReleased("a"), [])
        assertCounts(p, idle: ["a"], active: [], connecting: 0, waiting: [])
    }

    func testServerConnectedAfterItsClientLeftGoesIdle() {
        var p = Pool(maxSize: 2)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        p.clientLeftQueue(1)
        XCTAssertEqual(p.total, 1)
        XCTAssertEqual(p.serverConnected("a"), [])
        assertCounts(p, idle: ["a"], active: [], connecting: 0, waiting: [])
    }

    func testConnectFailureWhileAnotherAttemptIsInFlightRetriesWithinTheCap() {
        var p = Pool(maxSize: 2)
        _ = p.clientRequests(1)
        _ = p.clientRequests(2)
        _ = p.clientRequests(3)
        assertCounts(p, idle: [], active: [], connecting: 2, waiting: [1, 2, 3])
        // One attempt is still in flight, so nobody fails; the freed slot is used for a new attempt.
        XCTAssertEqual(p.serverConnectFailed(), [.connect])
        assertCounts(p, idle: [], active: [], connecting: 2, waiting: [1, 2, 3])
        XCTAssertEqual(p.serverConnected("a"), [.attach(1, "a")])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [2, 3])
    }

    func testLastConnectFailureWithEmptyPoolFailsAllWaitersInOrder() {
        var p = Pool(maxSize: 1)
        _ = p.clientRequests(1)
        _ = p.clientRequests(2)
        _ = p.clientRequests(3)
        assertCounts(p, idle: [], active: [], connecting: 1, waiting: [1, 2, 3])
        XCTAssertEqual(p.serverConnectFailed(), [.fail([1, 2, 3])])
        assertCounts(p, idle: [], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 0)
        // The pool recovers: the next client triggers a new attempt.
        XCTAssertEqual(p.clientRequests(4), [.connect])
        XCTAssertEqual(p.total, 1)
    }

    func testConnectFailureWithNoWaitersDoesNothing() {
        var p = Pool(maxSize: 2)
        _ = p.clientRequests(1)
        p.clientLeftQueue(1)
        XCTAssertEqual(p.serverConnectFailed(), [])
        assertCounts(p, idle: [], active: [], connecting: 0, waiting: [])
    }

    func testConnectFailureWithOtherServersAliveKeepsWaitersWaiting() {
        var p = Pool(maxSize: 2)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        XCTAssertEqual(p.clientRequests(2), [.connect])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [2])
        XCTAssertEqual(p.total, 2)
        // "a" is alive, so client 2 is not failed; the slot is retried at once.
        XCTAssertEqual(p.serverConnectFailed(), [.connect])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [2])
        XCTAssertEqual(p.serverConnectFailed(), [.connect])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [2])
        // The waiter is served when "a" comes back; the attempt still in flight then lands idle.
        XCTAssertEqual(p.serverReleased("a"), [.attach(2, "a")])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [])
        XCTAssertEqual(p.serverConnected("b"), [])
        assertCounts(p, idle: ["b"], active: ["a"], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 2)
    }

    func testConnectFailureAfterTheWaiterWasServedAffectsNobody() {
        var p = Pool(maxSize: 3)
        XCTAssertEqual(p.clientRequests(1), [.connect])
        XCTAssertEqual(p.clientRequests(2), [.connect])
        XCTAssertEqual(p.serverConnected("a"), [.attach(1, "a")])
        // "a" goes straight to client 2, who was waiting for the second attempt.
        XCTAssertEqual(p.serverReleased("a"), [.attach(2, "a")])
        assertCounts(p, idle: [], active: ["a"], connecting: 1, waiting: [])
        XCTAssertEqual(p.serverConnectFailed(), [])
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 1)
    }

    func testServerClosedWhileClientsWaitConnectsAgain() {
        var p = Pool(maxSize: 1)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        XCTAssertEqual(p.clientRequests(2), [])
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [2])
        XCTAssertEqual(p.serverClosed("a"), [.connect])
        assertCounts(p, idle: [], active: [], connecting: 1, waiting: [2])
        XCTAssertEqual(p.total, 1)
        XCTAssertEqual(p.serverConnected("b"), [.attach(2, "b")])
        assertCounts(p, idle: [], active: ["b"], connecting: 0, waiting: [])
    }

    func testServerClosedWithoutWaitersJustShrinks() {
        var p = Pool(maxSize: 2)
        _ = p.clientRequests(1)
        _ = p.clientRequests(2)
        _ = p.serverConnected("a")
        _ = p.serverConnected("b")
        _ = p.serverReleased("a")
        XCTAssertEqual(p.total, 2)
        XCTAssertEqual(p.serverClosed("a"), [])
        assertCounts(p, idle: [], active: ["b"], connecting: 0, waiting: [])
        XCTAssertEqual(p.serverClosed("b"), [])
        assertCounts(p, idle: [], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 0)
    }

    func testServerClosedForAnUnknownServerChangesNothing() {
        var p = Pool(maxSize: 2)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        XCTAssertEqual(p.serverClosed("zzz"), [])
        assertCounts(p, idle: [], active: ["a"], connecting: 0, waiting: [])
    }

    func testRaisingMaxSizeLetsTheNextRequestConnect() {
        var p = Pool(maxSize: 1)
        _ = p.clientRequests(1)
        _ = p.serverConnected("a")
        XCTAssertEqual(p.clientRequests(2), [])
        p.maxSize = 3
        XCTAssertEqual(p.clientRequests(3), [.connect, .connect])
        assertCounts(p, idle: [], active: ["a"], connecting: 2, waiting: [2, 3])
        XCTAssertEqual(p.total, 3)
    }

    func testFailedConnectWaitsForTheRetryDelayWithAManualClock() {
        var p = Pool(maxSize: 2, retryDelay: 5)
        XCTAssertEqual(p.clientRequests(1, now: 100), [.connect])
        XCTAssertEqual(p.serverConnected("a"), [.attach(1, "a")])
        XCTAssertEqual(p.clientRequests(2, now: 101), [.connect])
        // "a" is alive: client 2 keeps waiting, and no reconnect storm before the delay has passed.
        XCTAssertEqual(p.serverConnectFailed(now: 102), [])
        XCTAssertEqual(p.tick(now: 106.9), [])
        XCTAssertEqual(p.tick(now: 107), [.connect])
        XCTAssertEqual(p.tick(now: 108), [], "one attempt in flight is enough for one waiter")
        XCTAssertEqual(p.serverConnected("b"), [.attach(2, "b")])
    }

    func testEmptyPoolInsideTheRetryWindowFailsNewClientsAtOnce() {
        var p = Pool(maxSize: 2, retryDelay: 5)
        XCTAssertEqual(p.clientRequests(1, now: 10), [.connect])
        XCTAssertEqual(p.serverConnectFailed(now: 11), [.fail([1])])
        XCTAssertEqual(p.clientRequests(2, now: 12), [.fail([2])])
        XCTAssertEqual(p.clientRequests(3, now: 16), [.connect])
        XCTAssertEqual(p.total, 1)
    }

    func testServersReleasedInAnyOrderLeaveExactlyTheOthersActive() {
        var p = Pool(maxSize: 4)
        for (client, server) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
            _ = p.clientRequests(client)
            XCTAssertEqual(p.serverConnected(server), [.attach(client, server)])
        }
        XCTAssertEqual(p.serverReleased("b"), [])
        assertCounts(p, idle: ["b"], active: ["a", "c", "d"], connecting: 0, waiting: [])
        XCTAssertEqual(p.serverReleased("b"), [], "a server released twice is ignored the second time")
        XCTAssertEqual(p.serverClosed("a"), [])
        assertCounts(p, idle: ["b"], active: ["c", "d"], connecting: 0, waiting: [])
        XCTAssertEqual(p.serverReleased("d"), [])
        XCTAssertEqual(p.serverReleased("c"), [])
        assertCounts(p, idle: ["b", "d", "c"], active: [], connecting: 0, waiting: [])
        XCTAssertEqual(p.total, 3)
    }

    func testUnexpectedEventsDoNotCorruptCounts() {
        var p = Pool(maxSize: 2)
        XCTAssertEqual(p.serverConnected("x"), [])
        XCTAssertEqual(p.serverConnectFailed(), [])
        XCTAssertEqual(p.serverReleased("x"), [])
        XCTAssertEqual(p.total, 0)
        XCTAssertEqual(p.idle, [])
    }
}

final class PoolMinimumTests: XCTestCase {
    func testTickKeepsMinPoolSizeOpenWithinTheCap() {
        var p = PoolStateMachine<Int, String>(maxSize: 3, retryDelay: 5)
        XCTAssertEqual(p.tick(now: 0, minimum: 2), [.connect, .connect])
        XCTAssertEqual(p.tick(now: 1, minimum: 2), [], "already opening two")
        XCTAssertEqual(p.serverConnected("a"), [])
        XCTAssertEqual(p.idle, ["a"])
        XCTAssertEqual(p.serverConnectFailed(now: 2), [])
        XCTAssertEqual(p.tick(now: 3, minimum: 2), [], "inside the retry delay")
        XCTAssertEqual(p.tick(now: 7, minimum: 2), [.connect])
        XCTAssertEqual(p.tick(now: 8, minimum: 10), [.connect], "never above max_size")
        XCTAssertEqual(p.total, 3)
    }
}
