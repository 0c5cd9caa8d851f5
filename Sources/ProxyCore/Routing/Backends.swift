// The primary and its replicas as the router sees them, without sockets: role (configured or from
// pg_is_in_recovery()), a health circuit per backend, replication lag against the primary, and load balancing.

/// `role` of a `[primary]`/`[replica.NAME]` section: `auto` asks the backend (pg_is_in_recovery()).
public enum BackendRoleSetting: String, CaseIterable, Sendable {
    case primary
    case replica
    case auto
}

/// `load_balance`: how a read picks among the eligible replicas. Every strategy honours `weight`.
public enum LoadBalance: String, CaseIterable, Sendable {
    /// Smooth weighted round robin (weights 2 and 1 give A B A, A B A, ...).
    case roundRobin = "round_robin"
    /// Fewest server connections lent out per unit of weight; ties broken by weighted random.
    case leastOutstanding = "least_outstanding"
    /// Weighted random.
    case random
}

/// `replica_fallback`: what a read gets when no replica can take it.
public enum ReplicaFallback: String, CaseIterable, Sendable {
    case primary
    case error
}

/// Health circuit of one backend. Only `closed` takes traffic.
public enum CircuitState: String, Sendable {
    /// Up: probes run every health_check_interval.
    case closed
    /// Out after health_check_failures failed probes in a row; probed again after health_check_reset_timeout.
    case open
    /// A probe after the reset timeout succeeded; back to closed after health_check_successes good probes,
    /// back to open on the first failure.
    case halfOpen = "half_open"
}

/// Health and lag settings shared by all backends.
public struct HealthPolicy: Equatable, Sendable {
    /// health_check_failures
    public var failuresToOpen = 3
    /// health_check_reset_timeout, seconds
    public var resetTimeout = 10.0
    /// health_check_successes (the half-open probe counts as the first)
    public var successesToClose = 2
    /// max_replica_lag, seconds; 0 = off
    public var maxLagSeconds = 0.0
    /// max_replica_lag_bytes; 0 = off
    public var maxLagBytes: UInt64 = 0

    public init() {}
}

/// A circuit moved: returned by the probe events so the caller can log it (`from` -> `to`).
public struct CircuitChange: Equatable, Sendable {
    public let name: String
    public let from: CircuitState
    public let to: CircuitState

    public init(name: String, from: CircuitState, to: CircuitState) {
        self.name = name
        self.from = from
        self.to = to
    }
}

/// What is known about one backend. Only `BackendSet` changes it.
public struct BackendStatus: Equatable, Sendable {
    public let name: String
    public var roleSetting: BackendRoleSetting
    public var weight: Int
    public var circuit: CircuitState = .closed
    public var consecutiveFailures = 0
    public var consecutiveSuccesses = 0
    /// When the circuit last opened (or a probe failed while open); nil when closed.
    public var openedAt: Double?
    /// Last successful probe's pg_is_in_recovery(); nil before the first.
    public var inRecovery: Bool?
    /// Primary: pg_current_wal_lsn(); replica: pg_last_wal_replay_lsn().
    public var lsn: LSN?
    /// Primary's LSN minus this replica's replay LSN, as of the last `updateLag()`.
    public var lagBytes: UInt64?
    /// Replay delay the replica reported (seconds).
    public var lagSeconds: Double?
    /// Clients' work in flight on this backend: server connections lent to clients, plus the riders' reads
    /// queued behind another client's on one of them (shared pipeline).
    public var outstanding = 0
    public var lastError: String?
    /// With `role = auto`: when a probe first saw this backend out of recovery (the newest promotion wins).
    public var promotedAt: Double?
    /// Over max_replica_lag or max_replica_lag_bytes: gets no reads. Never true for the primary.
    public var laggingTooMuch = false

    public init(name: String, roleSetting: BackendRoleSetting, weight: Int) {
        self.name = name
        self.roleSetting = roleSetting
        self.weight = weight
    }

    /// Configured primary, or `auto` and the last probe said not in recovery.
    public var isPrimary: Bool {
        switch roleSetting {
        case .primary: return true
        case .replica: return false
        case .auto: return inRecovery == false
        }
    }

    /// Configured replica, or `auto` and the last probe said in recovery. An `auto` backend never probed is neither.
    public var isReplica: Bool {
        switch roleSetting {
        case .primary: return false
        case .replica: return true
        case .auto: return inRecovery == true
        }
    }
}

/// All backends of the proxy, in config order, with health, lag and load-balancing state.
public struct BackendSet: Sendable {
    public private(set) var statuses: [BackendStatus]
    public var policy: HealthPolicy {
        didSet { recomputeLagging() }
    }
    public var loadBalance: LoadBalance
    /// Smooth weighted round robin: current weight per backend name.
    private var roundRobinWeights: [String: Int] = [:]

    public init(_ backends: [(name: String, role: BackendRoleSetting, weight: Int)], policy: HealthPolicy,
                loadBalance: LoadBalance) {
        statuses = backends.map { BackendStatus(name: $0.name, roleSetting: $0.role, weight: $0.weight) }
        self.policy = policy
        self.loadBalance = loadBalance
    }

    /// RELOAD: backends keep their health and lag by name; new ones start closed (healthy until probed),
    /// removed ones are dropped, roles and weights take the new values.
    public mutating func reconfigure(_ backends: [(name: String, role: BackendRoleSetting, weight: Int)]) {
        statuses = backends.map { b in
            var s = status(b.name) ?? BackendStatus(name: b.name, roleSetting: b.role, weight: b.weight)
            s.roleSetting = b.role
            s.weight = b.weight
            return s
        }
        roundRobinWeights = roundRobinWeights.filter { name, _ in statuses.contains { $0.name == name } }
        recomputeLagging()
    }

    public func status(_ name: String) -> BackendStatus? {
        statuses.first { $0.name == name }
    }

    // MARK: Health

    /// A probe answered. `lsn` is pg_current_wal_lsn() on a primary, pg_last_wal_replay_lsn() on a replica;
    /// `replayDelaySeconds` is the replica's replay delay (nil on a primary).
    @discardableResult
    public mutating func probeSucceeded(_ name: String, now: Double, inRecovery: Bool, lsn: LSN?,
                                        replayDelaySeconds: Double?) -> CircuitChange? {
        guard let i = index(name) else { return nil }
        var s = statuses[i]
        let before = s.circuit
        if inRecovery == false && s.inRecovery != false { s.promotedAt = now }
        s.inRecovery = inRecovery
        s.lsn = lsn
        s.lagSeconds = replayDelaySeconds
        s.lastError = nil
        switch s.circuit {
        case .closed:
            s.consecutiveFailures = 0
            s.consecutiveSuccesses += 1
        case .open:
            // A probe before the reset timeout (shouldProbe said no) does not move the circuit.
            if let openedAt = s.openedAt, now < openedAt + policy.resetTimeout { break }
            s.consecutiveFailures = 0
            s.consecutiveSuccesses = 1
            s.circuit = .halfOpen
            closeIfEnough(&s)
        case .halfOpen:
            s.consecutiveFailures = 0
            s.consecutiveSuccesses += 1
            closeIfEnough(&s)
        }
        statuses[i] = s
        recomputeLagging()
        return change(name, before, s.circuit)
    }

    /// A probe failed (connect error, timeout, query error).
    @discardableResult
    public mutating func probeFailed(_ name: String, now: Double, error: String) -> CircuitChange? {
        guard let i = index(name) else { return nil }
        var s = statuses[i]
        let before = s.circuit
        s.lastError = error
        s.consecutiveSuccesses = 0
        s.consecutiveFailures += 1
        switch s.circuit {
        case .closed:
            if s.consecutiveFailures >= max(1, policy.failuresToOpen) {
                s.circuit = .open
                s.openedAt = now
            }
        case .open:
            s.openedAt = now
        case .halfOpen:
            s.circuit = .open
            s.openedAt = now
        }
        statuses[i] = s
        return change(name, before, s.circuit)
    }

    /// A connection to `name` failed outside the probes (a pool could not connect): take it out at once,
    /// without waiting for `failuresToOpen` probes; the probes bring it back as usual.
    @discardableResult
    public mutating func markDown(_ name: String, now: Double, error: String) -> CircuitChange? {
        guard let i = index(name) else { return nil }
        let before = statuses[i].circuit
        statuses[i].lastError = error
        statuses[i].consecutiveSuccesses = 0
        statuses[i].consecutiveFailures = max(statuses[i].consecutiveFailures, policy.failuresToOpen)
        statuses[i].circuit = .open
        statuses[i].openedAt = now
        return change(name, before, .open)
    }

    /// Whether a probe should run for `name` now (open circuit: only after resetTimeout; then half-open).
    public func shouldProbe(_ name: String, now: Double) -> Bool {
        guard let s = status(name) else { return false }
        switch s.circuit {
        case .closed, .halfOpen:
            return true
        case .open:
            guard let openedAt = s.openedAt else { return true }
            return now >= openedAt + policy.resetTimeout
        }
    }

    /// Circuit closed.
    public func isUp(_ name: String) -> Bool {
        // By index: no copy of the status (it runs for every routed transaction).
        guard let i = index(name) else { return false }
        return statuses[i].circuit == .closed
    }

    // MARK: Roles and lag

    /// The configured primary; with `role = auto`, the backend out of recovery (preferring one whose circuit is
    /// not open, then the newest promotion). Nil if none is known.
    public var primaryName: String? { primaryIndex.map { statuses[$0].name } }

    /// The position of `primaryName` in `statuses` (routing every write asks: a configured primary is found
    /// without copying any status).
    public var primaryIndex: Int? {
        for i in statuses.indices where statuses[i].roleSetting == .primary { return i }
        var best: Int?
        // The newest promotion wins; config order breaks ties; a primary whose circuit is open only when no other is.
        for i in statuses.indices where statuses[i].isPrimary {
            guard let b = best else { best = i; continue }
            let (candidate, current) = (statuses[i], statuses[b])
            if (candidate.circuit != .open) != (current.circuit != .open) {
                if candidate.circuit != .open { best = i }
            } else if (candidate.promotedAt ?? -.infinity) > (current.promotedAt ?? -.infinity) {
                best = i
            }
        }
        return best
    }

    /// Whether the backend at `index` (of `statuses`) has its circuit closed.
    public func isUp(at index: Int) -> Bool { statuses[index].circuit == .closed }

    /// Recomputes lag of every replica against the primary's latest LSN (called after each probe round).
    public mutating func updateLag() {
        let primaryLSN = primaryName.flatMap { status($0)?.lsn }
        for i in statuses.indices {
            if statuses[i].isPrimary {
                statuses[i].lagBytes = nil
            } else if let p = primaryLSN, let r = statuses[i].lsn {
                statuses[i].lagBytes = p - r
            } else {
                statuses[i].lagBytes = nil
            }
        }
        recomputeLagging()
    }

    /// Up, not lagging, weight > 0, a replica (never the primary), replay LSN >= minLSN when given (an unknown
    /// LSN does not satisfy a minLSN). Config order.
    public func eligibleReplicas(minLSN: LSN?) -> [String] {
        statuses.indices.filter { isEligible($0, minLSN: minLSN) }.map { statuses[$0].name }
    }

    /// Whether the backend at `i` may take a read that needs `minLSN`: a replica, circuit closed, not lagging
    /// too much, weight above 0, and (with `minLSN`) replayed at least that far. Reads fields in place (every
    /// routed read asks: no copy of the status).
    private func isEligible(_ i: Int, minLSN: LSN?) -> Bool {
        guard statuses[i].isReplica, statuses[i].circuit == .closed, !statuses[i].laggingTooMuch, statuses[i].weight > 0
        else { return false }
        guard let minLSN else { return true }
        guard let lsn = statuses[i].lsn else { return false }
        return lsn >= minLSN
    }

    // MARK: Load balancing

    /// One eligible replica, weighted per `loadBalance`; nil if none.
    public mutating func pickReplica(minLSN: LSN?, random: inout some RandomNumberGenerator) -> String? {
        // One eligible replica (the common case) is answered without building the list.
        var first: Int?
        var eligible = 0
        for i in statuses.indices where isEligible(i, minLSN: minLSN) {
            eligible += 1
            if first == nil { first = i }
        }
        guard let first else { return nil }
        if eligible == 1 { return statuses[first].name }
        let candidates = statuses.indices.filter { isEligible($0, minLSN: minLSN) }.map { statuses[$0] }
        switch loadBalance {
        case .roundRobin:
            let total = candidates.reduce(0) { $0 + $1.weight }
            var best: String?
            var bestWeight = Int.min
            for c in candidates {
                let w = roundRobinWeights[c.name, default: 0] + c.weight
                roundRobinWeights[c.name] = w
                if w > bestWeight {
                    best = c.name
                    bestWeight = w
                }
            }
            roundRobinWeights[best!, default: 0] -= total
            return best
        case .leastOutstanding:
            // Compare (outstanding + 1) / weight without division.
            var least: [BackendStatus] = []
            for c in candidates {
                guard let first = least.first else {
                    least = [c]
                    continue
                }
                let lhs = (c.outstanding + 1) * first.weight
                let rhs = (first.outstanding + 1) * c.weight
                if lhs < rhs {
                    least = [c]
                } else if lhs == rhs {
                    least.append(c)
                }
            }
            if least.count == 1 { return least[0].name }
            return BackendSet.weightedRandom(least, random: &random)
        case .random:
            return BackendSet.weightedRandom(candidates, random: &random)
        }
    }

    /// A server connection on `name` was lent or a rider boarded one (+1), or that ended (-1). Never below zero.
    public mutating func adjustOutstanding(_ name: String, by delta: Int) {
        var slot = -1
        adjustOutstanding(name, by: delta, slot: &slot)
    }

    /// The same, looking first at `slot` (where `name` was last time, kept by the caller): no search by name on
    /// the hot path; a reload that moved the name is found by the search, which updates `slot`.
    public mutating func adjustOutstanding(_ name: String, by delta: Int, slot: inout Int) {
        if !(slot >= 0 && slot < statuses.count && statuses[slot].name == name) {
            guard let i = index(name) else { return }
            slot = i
        }
        statuses[slot].outstanding = max(0, statuses[slot].outstanding + delta)
    }

    // MARK: Reload

    /// Reload: names that remain keep their health, role answers, lag and outstanding count (role setting and
    /// weight take the new values); new names start closed and unprobed; removed names are dropped.
    public mutating func replaceConfig(_ backends: [(name: String, role: BackendRoleSetting, weight: Int)]) {
        statuses = backends.map { b in
            if var kept = status(b.name) {
                kept.roleSetting = b.role
                kept.weight = b.weight
                return kept
            }
            return BackendStatus(name: b.name, roleSetting: b.role, weight: b.weight)
        }
        let names = Set(backends.map(\.name))
        roundRobinWeights = roundRobinWeights.filter { names.contains($0.key) }
        recomputeLagging()
    }

    // MARK: Private

    private func index(_ name: String) -> Int? {
        statuses.firstIndex { $0.name == name }
    }

    private func closeIfEnough(_ s: inout BackendStatus) {
        if s.consecutiveSuccesses >= max(1, policy.successesToClose) {
            s.circuit = .closed
            s.openedAt = nil
        }
    }

    private func change(_ name: String, _ from: CircuitState, _ to: CircuitState) -> CircuitChange? {
        from == to ? nil : CircuitChange(name: name, from: from, to: to)
    }

    /// Bytes over max_replica_lag_bytes, or seconds over max_replica_lag. Replay delay is ignored once the replica
    /// has replayed everything the primary had (lagBytes == 0): on an idle primary the delay keeps growing.
    private mutating func recomputeLagging() {
        for i in statuses.indices {
            let s = statuses[i]
            let overBytes = policy.maxLagBytes > 0 && (s.lagBytes ?? 0) > policy.maxLagBytes
            let overSeconds = policy.maxLagSeconds > 0 && s.lagBytes != 0 && (s.lagSeconds ?? 0) > policy.maxLagSeconds
            statuses[i].laggingTooMuch = !s.isPrimary && (overBytes || overSeconds)
        }
    }

    private static func weightedRandom(_ candidates: [BackendStatus], random: inout some RandomNumberGenerator) -> String {
        let total = candidates.reduce(0) { $0 + $1.weight }
        var r = Int.random(in: 0..<total, using: &random)
        for c in candidates {
            if r < c.weight { return c.name }
            r -= c.weight
        }
        return candidates[candidates.count - 1].name
    }
}
