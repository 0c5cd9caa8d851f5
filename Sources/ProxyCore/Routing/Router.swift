// Where one statement goes: writes to the primary, reads to a replica picked by BackendSet, with
// read-your-writes waits and replica_fallback. A plain function of the request, the backends and the clock.

/// What a statement needs.
public enum RouteRequest: Equatable, Sendable {
    /// A write, or anything else that must go to the primary (transaction state, locks, unknown statements).
    case write
    /// A read a replica may answer.
    case read
}

/// `SET switchyard.route` or a comment hint. `replica` never moves a write off the primary.
public enum RoutePreference: String, Sendable {
    case auto
    case primary
    case replica
}

/// One routing question.
public struct RouteContext: Sendable {
    public var request: RouteRequest
    public var preference: RoutePreference
    /// Read-your-writes: the primary's LSN after this client's last write; reads need a replica at or past it.
    public var minLSN: LSN?
    /// Set when this read already got `waitForReplica(until:)`: the same deadline, so waits do not stack.
    public var waitDeadline: Double?
    public var now: Double

    public init(request: RouteRequest, preference: RoutePreference = .auto, minLSN: LSN? = nil,
                waitDeadline: Double? = nil, now: Double) {
        self.request = request
        self.preference = preference
        self.minLSN = minLSN
        self.waitDeadline = waitDeadline
        self.now = now
    }
}

/// The answer. `fail` carries an SQLSTATE and message for the ErrorResponse the client gets.
public enum RouteDecision: Equatable, Sendable {
    case primary(String)
    case replica(String)
    /// Read-your-writes: replicas are up but none has replayed `minLSN` yet. Ask again when a probe round
    /// updates LSNs, and at `until` at the latest (passing it back as `waitDeadline`).
    case waitForReplica(until: Double)
    case fail(sqlState: String, message: String)
}

/// Why a route failed. The messages are fixed strings (logs and tests match them).
public enum RouteFailure: Equatable, Sendable {
    case noPrimary
    case primaryDown(String)
    case noReplica
    case noReplicaPrimaryDown(String)

    /// connection_failure: the client may retry elsewhere or later.
    public var sqlState: String { "08006" }

    public var message: String {
        switch self {
        case .noPrimary: return "no primary backend"
        case .primaryDown(let name): return "primary backend \(name) is down"
        case .noReplica: return "no replica available"
        case .noReplicaPrimaryDown(let name): return "no replica available and primary backend \(name) is down"
        }
    }

    public var decision: RouteDecision { .fail(sqlState: sqlState, message: message) }
}

public struct Router: Sendable {
    public var fallback: ReplicaFallback
    /// read_your_writes_timeout, seconds: how long a read waits for a replica to catch up before using the primary.
    public var readYourWritesTimeout: Double

    public init(fallback: ReplicaFallback, readYourWritesTimeout: Double) {
        self.fallback = fallback
        self.readYourWritesTimeout = readYourWritesTimeout
    }

    /// Writes and `preference = primary` go to the primary, or fail at once if it is down or unknown.
    /// Reads go to a replica from `pickReplica(minLSN:)`. With none: if replicas are up but behind `minLSN`,
    /// wait until `waitDeadline ?? now + readYourWritesTimeout`, then use the primary; if no replica can take
    /// reads at all, use the primary (`replica_fallback = primary`) or fail (`error`).
    public mutating func route(_ context: RouteContext, backends: inout BackendSet,
                               random: inout some RandomNumberGenerator) -> RouteDecision {
        switch (context.request, context.preference) {
        case (.write, _), (.read, .primary):
            return primary(backends)
        case (.read, .auto), (.read, .replica):
            return read(context, backends: &backends, random: &random)
        }
    }

    private func read(_ context: RouteContext, backends: inout BackendSet,
                      random: inout some RandomNumberGenerator) -> RouteDecision {
        if let name = backends.pickReplica(minLSN: context.minLSN, random: &random) { return .replica(name) }
        if context.minLSN != nil && !backends.eligibleReplicas(minLSN: nil).isEmpty {
            let deadline = context.waitDeadline ?? context.now + readYourWritesTimeout
            if context.now < deadline { return .waitForReplica(until: deadline) }
            return primary(backends)
        }
        switch fallback {
        case .primary:
            return primary(backends, none: .noReplica, down: RouteFailure.noReplicaPrimaryDown)
        case .error:
            return RouteFailure.noReplica.decision
        }
    }

    /// The primary, or the failure for no primary known (`none`) or one whose circuit is open (`down`): a read
    /// falling back to the primary names the missing replica in its errors.
    private func primary(_ backends: BackendSet, none: RouteFailure = .noPrimary,
                         down: (String) -> RouteFailure = RouteFailure.primaryDown) -> RouteDecision {
        guard let i = backends.primaryIndex else { return none.decision }
        let name = backends.statuses[i].name
        guard backends.isUp(at: i) else { return down(name).decision }
        return .primary(name)
    }
}
