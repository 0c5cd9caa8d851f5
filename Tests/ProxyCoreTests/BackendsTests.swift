// BackendSet transcripts with a manual clock: the health circuit, lag exclusion, auto roles across a switchover,
// weighted load balancing with a seeded generator, and reload; plus LSN parse/format/subtract.
import XCTest
import ProxyCore

final class BackendsTests: XCTestCase {
    private func makeSet(_ backends: [(name: String, role: BackendRoleSetting, weight: Int)] = [
        ("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1),
    ], policy: HealthPolicy = HealthPolicy(), loadBalance: LoadBalance = .roundRobin) -> BackendSet {
        BackendSet(backends, policy: policy, loadBalance: loadBalance)
    }

    private func ok(_ set: inout BackendSet, _ name: String, at now: Double, inRecovery: Bool = true,
                    lsn: LSN? = nil, delay: Double? = nil) {
        set.probeSucceeded(name, now: now, inRecovery: inRecovery, lsn: lsn, replayDelaySeconds: delay)
    }

    // MARK: LSN

    func testLSNParsesAndFormatsLikePostgres() {
        XCTAssertEqual(LSN("16/B374D848")?.value, 0x16_B374_D848)
        XCTAssertEqual(LSN("16/b374d848")?.description, "16/B374D848")
        XCTAssertEqual(LSN("0/0"), LSN(0))
        XCTAssertEqual(LSN(0).description, "0/0")
        XCTAssertEqual(LSN("FFFFFFFF/FFFFFFFF")?.value, UInt64.max)
        XCTAssertEqual(LSN(UInt64.max).description, "FFFFFFFF/FFFFFFFF")
        XCTAssertEqual(LSN(0x1_0000_0000).description, "1/0")
        XCTAssertEqual(LSN("0/1000000")?.value, 0x100_0000)
        for bad in ["", "/", "0/", "/0", "0", "0/0/0", "100000000/0", "0/100000000", "G/0", " 0/0", "0/0 ", "+1/0", "-1/0", "0x1/0"] {
            XCTAssertNil(LSN(bad), bad)
        }
    }

    func testLSNSubtractsAndCompares() {
        let a = LSN("1/0")!, b = LSN("0/FFFFFF00")!
        XCTAssertEqual(a - b, 0x100)
        XCTAssertEqual(b - a, 0, "behind gives 0, not a wrap")
        XCTAssertEqual(a - a, 0)
        XCTAssertEqual(LSN("FFFFFFFF/FFFFFFFF")! - LSN("0/0")!, UInt64.max)
        XCTAssertLessThan(b, a)
        XCTAssertGreaterThan(LSN("16/B374D848")!, LSN("16/B374D847")!)
    }

    // MARK: Circuit

    func testReconfigureKeepsHealthByNameAndTakesNewWeights() {
        var set = makeSet()
        for t in [1.0, 2.0, 3.0] { set.probeFailed("r1", now: t, error: "down") }
        XCTAssertEqual(set.status("r1")?.circuit, .open)
        set.reconfigure([("main", .primary, 1), ("r1", .replica, 5), ("r3", .replica, 2)])
        XCTAssertEqual(set.statuses.map(\.name), ["main", "r1", "r3"])
        XCTAssertEqual(set.status("r1")?.circuit, .open, "health survives a reload")
        XCTAssertEqual(set.status("r1")?.weight, 5)
        XCTAssertEqual(set.status("r3")?.circuit, .closed)
        XCTAssertNil(set.status("r2"))
    }

    func testThreeFailuresOpenTheCircuit() {
        var set = makeSet()
        XCTAssertTrue(set.isUp("r1"), "starts closed")
        XCTAssertNil(set.probeFailed("r1", now: 0, error: "connection refused"))
        XCTAssertNil(set.probeFailed("r1", now: 1, error: "connection refused"))
        XCTAssertTrue(set.isUp("r1"))
        XCTAssertEqual(set.probeFailed("r1", now: 2, error: "timeout"), CircuitChange(name: "r1", from: .closed, to: .open))
        let s = set.status("r1")!
        XCTAssertEqual(s.circuit, .open)
        XCTAssertEqual(s.openedAt, 2)
        XCTAssertEqual(s.consecutiveFailures, 3)
        XCTAssertEqual(s.lastError, "timeout")
        XCTAssertFalse(set.isUp("r1"))
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r2"])
    }

    func testSuccessResetsTheFailureCount() {
        var set = makeSet()
        set.probeFailed("r1", now: 0, error: "x")
        set.probeFailed("r1", now: 1, error: "x")
        ok(&set, "r1", at: 2)
        XCTAssertEqual(set.status("r1")?.consecutiveFailures, 0)
        XCTAssertNil(set.status("r1")?.lastError)
        set.probeFailed("r1", now: 3, error: "x")
        set.probeFailed("r1", now: 4, error: "x")
        XCTAssertTrue(set.isUp("r1"))
    }

    func testOpenCircuitSuppressesProbesUntilResetTimeout() {
        var set = makeSet()
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        XCTAssertTrue(set.shouldProbe("r2", now: 3), "closed: always probe")
        XCTAssertFalse(set.shouldProbe("r1", now: 3))
        XCTAssertFalse(set.shouldProbe("r1", now: 11.9))
        XCTAssertTrue(set.shouldProbe("r1", now: 12))
        XCTAssertFalse(set.shouldProbe("nope", now: 12))
        // A probe that ran early anyway does not move the circuit.
        ok(&set, "r1", at: 5)
        XCTAssertEqual(set.status("r1")?.circuit, .open)
    }

    func testHalfOpenSuccessPathClosesAfterTwoSuccesses() {
        var set = makeSet()
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        XCTAssertEqual(set.probeSucceeded("r1", now: 12, inRecovery: true, lsn: nil, replayDelaySeconds: 0),
                       CircuitChange(name: "r1", from: .open, to: .halfOpen))
        XCTAssertEqual(set.status("r1")?.consecutiveSuccesses, 1)
        XCTAssertFalse(set.isUp("r1"), "half-open takes no reads")
        XCTAssertTrue(set.shouldProbe("r1", now: 13))
        XCTAssertEqual(set.probeSucceeded("r1", now: 13, inRecovery: true, lsn: nil, replayDelaySeconds: 0),
                       CircuitChange(name: "r1", from: .halfOpen, to: .closed))
        XCTAssertTrue(set.isUp("r1"))
        XCTAssertNil(set.status("r1")?.openedAt)
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"])
    }

    func testSuccessesToCloseOneClosesOnTheFirstProbe() {
        var policy = HealthPolicy()
        policy.successesToClose = 1
        var set = makeSet(policy: policy)
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        XCTAssertEqual(set.probeSucceeded("r1", now: 12, inRecovery: true, lsn: nil, replayDelaySeconds: nil),
                       CircuitChange(name: "r1", from: .open, to: .closed))
    }

    func testHalfOpenFailureReopens() {
        var set = makeSet()
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        ok(&set, "r1", at: 12)
        XCTAssertEqual(set.status("r1")?.circuit, .halfOpen)
        XCTAssertEqual(set.probeFailed("r1", now: 13, error: "reset"), CircuitChange(name: "r1", from: .halfOpen, to: .open))
        XCTAssertEqual(set.status("r1")?.openedAt, 13)
        XCTAssertFalse(set.shouldProbe("r1", now: 22.9))
        XCTAssertTrue(set.shouldProbe("r1", now: 23))
        // A failed retry from open restarts the wait.
        XCTAssertNil(set.probeFailed("r1", now: 23, error: "x"))
        XCTAssertFalse(set.shouldProbe("r1", now: 30))
        XCTAssertTrue(set.shouldProbe("r1", now: 33))
    }

    // MARK: Lag

    func testLagInBytesExcludesAndReadmits() {
        var policy = HealthPolicy()
        policy.maxLagBytes = 1000
        var set = makeSet(policy: policy)
        ok(&set, "main", at: 0, inRecovery: false, lsn: LSN(10_000))
        ok(&set, "r1", at: 0, lsn: LSN(8_000), delay: 0.1)
        ok(&set, "r2", at: 0, lsn: LSN(9_500), delay: 0.1)
        set.updateLag()
        XCTAssertEqual(set.status("r1")?.lagBytes, 2000)
        XCTAssertEqual(set.status("r2")?.lagBytes, 500)
        XCTAssertNil(set.status("main")?.lagBytes)
        XCTAssertEqual(set.status("r1")?.laggingTooMuch, true)
        XCTAssertEqual(set.status("main")?.laggingTooMuch, false)
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r2"])
        XCTAssertTrue(set.isUp("r1"), "lag is not a health failure")

        ok(&set, "main", at: 1, inRecovery: false, lsn: LSN(10_100))
        ok(&set, "r1", at: 1, lsn: LSN(9_100), delay: 0.1)
        set.updateLag()
        XCTAssertEqual(set.status("r1")?.lagBytes, 1000)
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"], "exactly at the limit is within it")

        policy.maxLagBytes = 0
        set.policy = policy
        ok(&set, "r1", at: 2, lsn: LSN(0), delay: 0)
        set.updateLag()
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"], "0 = off")
    }

    func testLagInSecondsExcludesAndReadmits() {
        var policy = HealthPolicy()
        policy.maxLagSeconds = 5
        var set = makeSet(policy: policy)
        ok(&set, "main", at: 0, inRecovery: false, lsn: LSN(10_000))
        ok(&set, "r1", at: 0, lsn: LSN(9_000), delay: 7.5)
        ok(&set, "r2", at: 0, lsn: LSN(9_000), delay: 1)
        set.updateLag()
        XCTAssertEqual(set.status("r1")?.lagSeconds, 7.5)
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r2"])

        ok(&set, "r1", at: 1, lsn: LSN(9_900), delay: 4)
        set.updateLag()
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"])

        // Caught up with an idle primary: the replay delay grows but nothing is missing.
        ok(&set, "r1", at: 2, lsn: LSN(10_000), delay: 60)
        set.updateLag()
        XCTAssertEqual(set.status("r1")?.lagBytes, 0)
        XCTAssertEqual(set.status("r1")?.laggingTooMuch, false)

        policy.maxLagSeconds = 0
        set.policy = policy
        ok(&set, "r2", at: 3, lsn: LSN(1), delay: 1000)
        set.updateLag()
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"], "0 = off")
    }

    func testMinLSNFiltersReplicas() {
        var set = makeSet()
        ok(&set, "r1", at: 0, lsn: LSN(100))
        ok(&set, "r2", at: 0, lsn: nil)
        XCTAssertEqual(set.eligibleReplicas(minLSN: LSN(100)), ["r1"], "unknown LSN does not satisfy a minLSN")
        XCTAssertEqual(set.eligibleReplicas(minLSN: LSN(101)), [])
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"])
    }

    // MARK: Roles

    func testAutoRoleFollowsASwitchover() {
        var set = makeSet([("a", .auto, 1), ("b", .auto, 1), ("c", .auto, 1)])
        XCTAssertNil(set.primaryName, "nothing probed yet")
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), [], "unknown roles take no reads")
        ok(&set, "a", at: 0, inRecovery: false, lsn: LSN(500))
        ok(&set, "b", at: 0, inRecovery: true, lsn: LSN(500))
        ok(&set, "c", at: 0, inRecovery: true, lsn: LSN(500))
        XCTAssertEqual(set.primaryName, "a")
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["b", "c"])

        // Switchover: a is demoted, b promoted; the next round sees both.
        ok(&set, "a", at: 10, inRecovery: true, lsn: LSN(600))
        ok(&set, "b", at: 10, inRecovery: false, lsn: LSN(700))
        set.updateLag()
        XCTAssertEqual(set.primaryName, "b")
        XCTAssertTrue(set.status("b")!.isPrimary)
        XCTAssertFalse(set.status("a")!.isPrimary)
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["a", "c"])
        XCTAssertEqual(set.status("a")?.lagBytes, 100, "lag is now measured against b")
    }

    func testAutoRolePrefersTheReachableNewestPrimary() {
        var set = makeSet([("a", .auto, 1), ("b", .auto, 1)])
        ok(&set, "a", at: 0, inRecovery: false)
        ok(&set, "b", at: 0, inRecovery: true)
        // Failover: a dies, b is promoted.
        for t in 1...3 { set.probeFailed("a", now: Double(t), error: "x") }
        ok(&set, "b", at: 4, inRecovery: false)
        XCTAssertEqual(set.primaryName, "b")
        // a comes back still out of recovery (not rewound): b's promotion is newer.
        ok(&set, "a", at: 20, inRecovery: false)
        ok(&set, "a", at: 21, inRecovery: false)
        XCTAssertTrue(set.isUp("a"))
        XCTAssertEqual(set.primaryName, "b")
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), [], "neither is a replica")
    }

    func testExplicitRolesIgnoreRecoveryAnswers() {
        var set = makeSet()
        ok(&set, "r1", at: 0, inRecovery: false)
        ok(&set, "main", at: 0, inRecovery: true)
        XCTAssertEqual(set.primaryName, "main")
        XCTAssertEqual(set.eligibleReplicas(minLSN: nil), ["r1", "r2"])
    }

    // MARK: Load balancing

    func testWeightsSplitRandomPicksAboutTwoToOne() {
        var set = makeSet([("main", .primary, 1), ("heavy", .replica, 2), ("light", .replica, 1), ("off", .replica, 0)],
                          loadBalance: .random)
        var rng = RoutingTestRNG(seed: 42)
        var counts: [String: Int] = [:]
        for _ in 0..<3000 { counts[set.pickReplica(minLSN: nil, random: &rng)!, default: 0] += 1 }
        XCTAssertNil(counts["off"], "weight 0 never gets reads")
        XCTAssertNil(counts["main"])
        XCTAssertEqual(counts["heavy", default: 0] + counts["light", default: 0], 3000)
        XCTAssertEqual(Double(counts["heavy", default: 0]), 2000, accuracy: 100)
    }

    func testWeightsSplitRoundRobinExactlyTwoToOne() {
        var set = makeSet([("main", .primary, 1), ("heavy", .replica, 2), ("light", .replica, 1), ("off", .replica, 0)])
        var rng = RoutingTestRNG(seed: 1)
        var counts: [String: Int] = [:]
        for _ in 0..<3000 { counts[set.pickReplica(minLSN: nil, random: &rng)!, default: 0] += 1 }
        XCTAssertEqual(counts, ["heavy": 2000, "light": 1000])
        // Smooth: the heavy one is never picked three times in a row.
        let picks = (0..<6).map { _ in set.pickReplica(minLSN: nil, random: &rng)! }
        XCTAssertEqual(picks, ["heavy", "light", "heavy", "heavy", "light", "heavy"])
    }

    func testRoundRobinCyclesInConfigOrder() {
        var set = makeSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1), ("r3", .replica, 1)])
        var rng = RoutingTestRNG(seed: 1)
        let picks = (0..<7).map { _ in set.pickReplica(minLSN: nil, random: &rng)! }
        XCTAssertEqual(picks, ["r1", "r2", "r3", "r1", "r2", "r3", "r1"])
        for t in 0..<3 { set.probeFailed("r2", now: Double(t), error: "x") }
        let after = (0..<4).map { _ in set.pickReplica(minLSN: nil, random: &rng)! }
        XCTAssertFalse(after.contains("r2"))
        XCTAssertEqual(Set(after), ["r1", "r3"])
    }

    func testLeastOutstandingPicksTheLeastLoaded() {
        var set = makeSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1), ("r3", .replica, 1)],
                          loadBalance: .leastOutstanding)
        var rng = RoutingTestRNG(seed: 7)
        set.adjustOutstanding("r1", by: 3)
        set.adjustOutstanding("r2", by: 1)
        set.adjustOutstanding("r3", by: 2)
        XCTAssertEqual(set.pickReplica(minLSN: nil, random: &rng), "r2")
        set.adjustOutstanding("r2", by: 2)
        XCTAssertEqual(set.pickReplica(minLSN: nil, random: &rng), "r3")
        set.adjustOutstanding("r1", by: -10)
        XCTAssertEqual(set.status("r1")?.outstanding, 0, "never below zero")
        XCTAssertEqual(set.pickReplica(minLSN: nil, random: &rng), "r1")
        // Ties are spread, not always the first.
        var tied = makeSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1)], loadBalance: .leastOutstanding)
        let picks = Set((0..<50).map { _ in tied.pickReplica(minLSN: nil, random: &rng)! })
        XCTAssertEqual(picks, ["r1", "r2"])
    }

    func testLeastOutstandingHonoursWeight() {
        var set = makeSet([("main", .primary, 1), ("big", .replica, 3), ("small", .replica, 1)],
                          loadBalance: .leastOutstanding)
        var rng = RoutingTestRNG(seed: 3)
        // (2+1)/3 = 1 < (1+1)/1 = 2
        set.adjustOutstanding("big", by: 2)
        set.adjustOutstanding("small", by: 1)
        XCTAssertEqual(set.pickReplica(minLSN: nil, random: &rng), "big")
    }

    func testAdjustOutstandingSlotFollowsAReload() {
        var set = makeSet([("main", .primary, 1), ("r1", .replica, 1), ("r2", .replica, 1)])
        var slot = -1
        set.adjustOutstanding("r2", by: 2, slot: &slot)
        XCTAssertEqual(slot, 2)
        // A reload drops r1: r2 moves to index 1; the stale slot points past the end, then at another name.
        set.replaceConfig([("main", .primary, 1), ("r2", .replica, 1)])
        set.adjustOutstanding("r2", by: 1, slot: &slot)
        XCTAssertEqual(slot, 1)
        XCTAssertEqual(set.status("r2")?.outstanding, 3)
        set.replaceConfig([("r2", .replica, 1), ("main", .primary, 1)])
        set.adjustOutstanding("r2", by: -1, slot: &slot)
        XCTAssertEqual(slot, 0)
        XCTAssertEqual(set.status("r2")?.outstanding, 2)
        XCTAssertEqual(set.status("main")?.outstanding, 0, "a stale slot never counts on another backend")
        var gone = 0
        set.adjustOutstanding("r9", by: 1, slot: &gone)
        XCTAssertEqual(gone, 0, "an unknown name changes nothing")
        XCTAssertEqual(set.statuses.map(\.outstanding), [2, 0])
    }

    func testPickReturnsNilWithoutEligibleReplicas() {
        var set = makeSet([("main", .primary, 1), ("r1", .replica, 0)])
        var rng = RoutingTestRNG(seed: 1)
        for lb in LoadBalance.allCases {
            set.loadBalance = lb
            XCTAssertNil(set.pickReplica(minLSN: nil, random: &rng), lb.rawValue)
        }
    }

    // MARK: Reload

    func testReplaceConfigKeepsStateOfRemainingNames() {
        var set = makeSet()
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        ok(&set, "r2", at: 0, lsn: LSN(42))
        set.adjustOutstanding("r2", by: 2)
        set.replaceConfig([("main", .primary, 1), ("r2", .replica, 5), ("r4", .replica, 1)])
        XCTAssertEqual(set.statuses.map(\.name), ["main", "r2", "r4"])
        XCTAssertNil(set.status("r1"))
        let r2 = set.status("r2")!
        XCTAssertEqual(r2.weight, 5)
        XCTAssertEqual(r2.lsn, LSN(42))
        XCTAssertEqual(r2.outstanding, 2)
        XCTAssertEqual(r2.consecutiveSuccesses, 1)
        XCTAssertEqual(set.status("r4")?.circuit, .closed)
        XCTAssertEqual(set.status("r4")?.consecutiveSuccesses, 0)
        // Re-adding a removed name starts fresh.
        set.replaceConfig([("main", .primary, 1), ("r1", .replica, 1)])
        XCTAssertEqual(set.status("r1")?.circuit, .closed)
        XCTAssertEqual(set.status("r1")?.consecutiveFailures, 0)
    }

    func testReplaceConfigKeepsAnOpenCircuit() {
        var set = makeSet()
        for t in 0..<3 { set.probeFailed("r1", now: Double(t), error: "x") }
        set.replaceConfig([("main", .primary, 1), ("r1", .replica, 2)])
        XCTAssertEqual(set.status("r1")?.circuit, .open)
        XCTAssertEqual(set.status("r1")?.openedAt, 2)
        XCTAssertFalse(set.shouldProbe("r1", now: 5))
    }
}

/// SplitMix64: a seeded generator so weighted picks are reproducible.
struct RoutingTestRNG: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
