// Router decisions against a BackendSet with a manual clock: writes, preferences, replica reads, read-your-writes
// waits and their fallback, a primary that is down, and both replica_fallback settings.
import XCTest
import ProxyCore

final class RouterTests: XCTestCase {
    private var rng = RoutingTestRNG(seed: 99)

    private func makeSet(loadBalance: LoadBalance = .roundRobin) -> BackendSet {
        BackendSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1)],
                   policy: HealthPolicy(), loadBalance: loadBalance)
    }

    private func takeDown(_ name: String, _ set: inout BackendSet) {
        for t in 0..<3 { set.probeFailed(name, now: Double(t), error: "connection refused") }
        XCTAssertFalse(set.isUp(name))
    }

    private func route(_ router: inout Router, _ set: inout BackendSet, _ request: RouteRequest,
                       preference: RoutePreference = .auto, minLSN: LSN? = nil, waitDeadline: Double? = nil,
                       now: Double = 100) -> RouteDecision {
        router.route(RouteContext(request: request, preference: preference, minLSN: minLSN,
                                  waitDeadline: waitDeadline, now: now),
                     backends: &set, random: &rng)
    }

    private func fail(_ message: String) -> RouteDecision { .fail(sqlState: "08006", message: message) }

    // MARK: Writes and preferences

    func testWritesGoToThePrimary() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        XCTAssertEqual(route(&router, &set, .write), .primary("main"))
        XCTAssertEqual(route(&router, &set, .write, preference: .replica), .primary("main"),
                       "a replica preference never moves a write")
        XCTAssertEqual(route(&router, &set, .write, preference: .primary), .primary("main"))
    }

    func testReadsRotateOverReplicas() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        XCTAssertEqual(route(&router, &set, .read), .replica("r1"))
        XCTAssertEqual(route(&router, &set, .read, preference: .replica), .replica("r2"))
        XCTAssertEqual(route(&router, &set, .read), .replica("r1"))
    }

    func testPreferencePrimarySendsReadsToThePrimary() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        XCTAssertEqual(route(&router, &set, .read, preference: .primary), .primary("main"))
        takeDown("main", &set)
        XCTAssertEqual(route(&router, &set, .read, preference: .primary), fail("primary backend main is down"))
    }

    // MARK: Primary down or unknown

    func testPrimaryDownFailsWritesButReadsStillGoToReplicas() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        takeDown("main", &set)
        XCTAssertEqual(route(&router, &set, .write), fail("primary backend main is down"))
        XCTAssertEqual(route(&router, &set, .read), .replica("r1"))
        XCTAssertEqual(route(&router, &set, .read), .replica("r2"))
    }

    func testPrimaryHalfOpenStillFailsWrites() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        takeDown("main", &set)
        set.probeSucceeded("main", now: 20, inRecovery: false, lsn: nil, replayDelaySeconds: nil)
        XCTAssertEqual(set.status("main")?.circuit, .halfOpen)
        XCTAssertEqual(route(&router, &set, .write), fail("primary backend main is down"))
        set.probeSucceeded("main", now: 21, inRecovery: false, lsn: nil, replayDelaySeconds: nil)
        XCTAssertEqual(route(&router, &set, .write), .primary("main"))
    }

    func testNoKnownPrimaryFailsWrites() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = BackendSet([("a", .auto, 1), ("b", .auto, 1)], policy: HealthPolicy(), loadBalance: .roundRobin)
        XCTAssertEqual(route(&router, &set, .write), fail("no primary backend"))
        set.probeSucceeded("a", now: 0, inRecovery: true, lsn: nil, replayDelaySeconds: nil)
        set.probeSucceeded("b", now: 0, inRecovery: true, lsn: nil, replayDelaySeconds: nil)
        XCTAssertEqual(route(&router, &set, .write), fail("no primary backend"))
        XCTAssertEqual(route(&router, &set, .read), .replica("a"), "reads still work")
        set.probeSucceeded("b", now: 1, inRecovery: false, lsn: nil, replayDelaySeconds: nil)
        XCTAssertEqual(route(&router, &set, .write), .primary("b"))
        XCTAssertEqual(route(&router, &set, .read), .replica("a"))
    }

    // MARK: No replica

    func testAllReplicasDownFallBackToThePrimary() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        takeDown("r1", &set)
        takeDown("r2", &set)
        XCTAssertEqual(route(&router, &set, .read), .primary("main"))
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN(5)), .primary("main"), "no wait when nothing is up")
        takeDown("main", &set)
        XCTAssertEqual(route(&router, &set, .read), fail("no replica available and primary backend main is down"))
    }

    func testAllReplicasDownWithFallbackErrorFails() {
        var router = Router(fallback: .error, readYourWritesTimeout: 2)
        var set = makeSet()
        takeDown("r1", &set)
        takeDown("r2", &set)
        XCTAssertEqual(route(&router, &set, .read), fail("no replica available"))
        XCTAssertEqual(route(&router, &set, .read, preference: .primary), .primary("main"))
        XCTAssertEqual(route(&router, &set, .write), .primary("main"))
    }

    func testLaggingAndZeroWeightReplicasCountAsUnavailable() {
        var policy = HealthPolicy()
        policy.maxLagBytes = 100
        var set = BackendSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 0)],
                             policy: policy, loadBalance: .random)
        set.probeSucceeded("main", now: 0, inRecovery: false, lsn: LSN(1000), replayDelaySeconds: nil)
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN(500), replayDelaySeconds: 1)
        set.updateLag()
        var toPrimary = Router(fallback: .primary, readYourWritesTimeout: 2)
        XCTAssertEqual(route(&toPrimary, &set, .read), .primary("main"))
        var toError = Router(fallback: .error, readYourWritesTimeout: 2)
        XCTAssertEqual(route(&toError, &set, .read), fail("no replica available"))
        set.probeSucceeded("r1", now: 1, inRecovery: true, lsn: LSN(950), replayDelaySeconds: 0)
        set.updateLag()
        XCTAssertEqual(route(&toError, &set, .read), .replica("r1"))
    }

    func testNoReplicaAndNoPrimary() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = BackendSet([("a", .auto, 1)], policy: HealthPolicy(), loadBalance: .roundRobin)
        XCTAssertEqual(route(&router, &set, .read), fail("no replica available"))
    }

    // MARK: Read-your-writes

    func testReadYourWritesGoesToACaughtUpReplica() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN("0/100")!, replayDelaySeconds: 0)
        set.probeSucceeded("r2", now: 0, inRecovery: true, lsn: LSN("0/300")!, replayDelaySeconds: 0)
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN("0/200")), .replica("r2"))
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN("0/200")), .replica("r2"))
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN("0/100")), .replica("r1"))
    }

    func testReadYourWritesWaitsThenFallsBackToThePrimary() {
        var router = Router(fallback: .error, readYourWritesTimeout: 2)
        var set = makeSet()
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN(100), replayDelaySeconds: 0)
        set.probeSucceeded("r2", now: 0, inRecovery: true, lsn: LSN(150), replayDelaySeconds: 0)
        let wrote = LSN(200)
        // First ask: wait up to now + timeout.
        XCTAssertEqual(route(&router, &set, .read, minLSN: wrote, now: 100), .waitForReplica(until: 102))
        // Asked again before the deadline with the same deadline: keep waiting, no new deadline.
        XCTAssertEqual(route(&router, &set, .read, minLSN: wrote, waitDeadline: 102, now: 101), .waitForReplica(until: 102))
        // Deadline passed: the primary answers (even with replica_fallback = error).
        XCTAssertEqual(route(&router, &set, .read, minLSN: wrote, waitDeadline: 102, now: 102), .primary("main"))
    }

    func testReadYourWritesWaitEndsWhenAReplicaCatchesUp() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN(100), replayDelaySeconds: 0)
        set.probeSucceeded("r2", now: 0, inRecovery: true, lsn: nil, replayDelaySeconds: nil)
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN(200), now: 100), .waitForReplica(until: 102))
        set.probeSucceeded("r1", now: 101, inRecovery: true, lsn: LSN(250), replayDelaySeconds: 0)
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN(200), waitDeadline: 102, now: 101), .replica("r1"))
    }

    func testReadYourWritesAfterDeadlineWithPrimaryDownFails() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet()
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN(100), replayDelaySeconds: 0)
        takeDown("main", &set)
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN(200), waitDeadline: 102, now: 103),
                       fail("primary backend main is down"))
    }

    func testReadYourWritesWithZeroTimeoutGoesStraightToThePrimary() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 0)
        var set = makeSet()
        set.probeSucceeded("r1", now: 0, inRecovery: true, lsn: LSN(100), replayDelaySeconds: 0)
        XCTAssertEqual(route(&router, &set, .read, minLSN: LSN(200)), .primary("main"))
    }

    func testReadsMoveLoadWithLeastOutstanding() {
        var router = Router(fallback: .primary, readYourWritesTimeout: 2)
        var set = makeSet(loadBalance: .leastOutstanding)
        set.adjustOutstanding("r1", by: 4)
        XCTAssertEqual(route(&router, &set, .read), .replica("r2"))
    }

    func testFailureMessagesAreFixed() {
        XCTAssertEqual(RouteFailure.noPrimary.decision, fail("no primary backend"))
        XCTAssertEqual(RouteFailure.primaryDown("p").message, "primary backend p is down")
        XCTAssertEqual(RouteFailure.noReplica.sqlState, "08006")
    }
}
