// Which statement shapes run quickly, for the shared pipeline (server_pipeline_depth): a client's read is sent
// behind another client's only when both are known to be quick, so no client waits behind a long query while
// other servers are idle. Pure bookkeeping, one per event loop.

/// Recent duration per fingerprint id: an exponentially weighted mean of what the server took (request sent to
/// ReadyForQuery). A shape never seen, or whose mean is `limitMicros` or more, is not quick. Bounded: past
/// `capacity` shapes it starts over.
public struct QuickStatements {
    /// Shapes whose mean is below this are quick; 0 makes none quick.
    public var limitMicros: Double
    private let capacity: Int
    private var means: [UInt64: Float] = [:]
    /// Weight of the newest duration in the mean.
    static let weight: Float = 0.25

    public init(limitMicros: Double, capacity: Int = 10_000) {
        self.limitMicros = limitMicros
        self.capacity = max(1, capacity)
    }

    public var count: Int { means.count }

    /// A statement of shape `id` took `micros`.
    public mutating func observe(_ id: UInt64, micros: UInt64) {
        let x = Float(micros)
        if let i = means.index(forKey: id) {
            means.values[i] += (x - means.values[i]) * Self.weight
            return
        }
        if means.count >= capacity { means.removeAll(keepingCapacity: true) }
        means[id] = x
    }

    public func isQuick(_ id: UInt64) -> Bool {
        guard let mean = means[id] else { return false }
        return Double(mean) < limitMicros
    }

    /// The current mean of shape `id` (nil when never seen).
    public func mean(_ id: UInt64) -> Double? { means[id].map(Double.init) }
}
