// Bytes a connection keeps for later in storage it reuses (ServerConnection: a query that may be retried on
// the primary, a RowDescription held back meanwhile).

/// Bytes kept for later (a query that may be retried, a held RowDescription) in storage that is reused:
/// keeping the next ones allocates nothing once it is large enough.
struct KeptBytes {
    private var storage: [UInt8] = []
    private(set) var isSet = false

    /// The kept bytes (sharing the storage), nil when none.
    var bytes: [UInt8]? { isSet ? storage : nil }

    mutating func clear() { isSet = false }

    /// Cleared, and its storage given up if it grew past `limit` bytes (a rare large query is not kept).
    mutating func clear(keepingUpTo limit: Int) {
        isSet = false
        if storage.capacity > limit { storage = [] }
    }

    /// Keeps the first `count` bytes buffered in `stream`'s input.
    mutating func fill(_ count: Int, from stream: Stream) {
        stream.copyInput(count, into: &storage)
        isSet = true
    }
}
