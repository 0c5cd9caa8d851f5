// Named prepared statements under transaction pooling: a global id per distinct statement, each client's
// names for them, and per server connection an LRU of the statements prepared there (`sy_<id>`).

/// What makes two statements the same: query text and parameter type OIDs.
public struct StatementKey: Hashable, Sendable {
    public var query: String
    public var parameterTypes: [Int32]

    public init(query: String, parameterTypes: [Int32] = []) {
        self.query = query
        self.parameterTypes = parameterTypes
    }
}

/// Global (one per proxy; later shared across worker threads behind a lock): statement key -> id.
/// Ids start at 1 and are never reused, so a server name always means one statement.
public struct StatementRegistry: Sendable {
    private var ids: [StatementKey: Int] = [:]
    /// keys[id - 1] is the key of `id`.
    private var keys: [StatementKey] = []

    public init() {}

    /// The id of `key`, assigning the next one if it is new.
    public mutating func id(for key: StatementKey) -> Int {
        if let id = ids[key] { return id }
        keys.append(key)
        ids[key] = keys.count
        return keys.count
    }

    /// The id of `key` if it was registered, without registering it.
    public func existingID(for key: StatementKey) -> Int? { ids[key] }

    public func key(for id: Int) -> StatementKey? {
        guard id >= 1, id <= keys.count else { return nil }
        return keys[id - 1]
    }

    /// The name the statement has on every server: "sy_<id>".
    public static func serverName(_ id: Int) -> String { "sy_\(id)" }

    public var count: Int { keys.count }
}

/// One client's named statements: client name -> statement id. The unnamed statement "" is never stored:
/// unnamed statements are passed through untouched.
public struct ClientStatements: Sendable {
    private var ids: [String: Int] = [:]

    public init() {}

    /// Defines or redefines `name`; defining "" does nothing.
    public mutating func define(_ name: String, id: Int) {
        guard !name.isEmpty else { return }
        ids[name] = id
    }

    public func id(for name: String) -> Int? { ids[name] }

    /// Forgets `name`, returning the id it had.
    @discardableResult
    public mutating func remove(_ name: String) -> Int? { ids.removeValue(forKey: name) }

    public mutating func removeAll() { ids.removeAll() }

    public var count: Int { ids.count }

    /// The defined names, sorted.
    public var names: [String] { ids.keys.sorted() }
}

/// The statements prepared on one server connection, least recently used first out: a dictionary into a
/// doubly-linked list kept in arrays (slots are reused; no allocation per use once warm).
public struct ServerStatementCache: Sendable {
    /// At most this many statements stay prepared (max_prepared_statements); at least 1.
    public let capacity: Int
    private var slotOf: [Int: Int] = [:]
    private var ids: [Int] = []
    private var prev: [Int] = []
    private var next: [Int] = []
    private var freeSlots: [Int] = []
    /// Least recently used slot, -1 when empty.
    private var lru = -1
    /// Most recently used slot, -1 when empty.
    private var mru = -1

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public func contains(_ id: Int) -> Bool { slotOf[id] != nil }

    /// Marks `id` used (most recent); returns false if absent. O(1).
    @discardableResult
    public mutating func touch(_ id: Int) -> Bool {
        guard let slot = slotOf[id] else { return false }
        if slot != mru {
            unlink(slot)
            linkAsMRU(slot)
        }
        return true
    }

    /// Adds `id` as most recently used (the caller is about to prepare it); returns the ids evicted to stay
    /// within capacity, least recently used first (the caller sends a Close for each). An id already present
    /// is only touched.
    public mutating func insert(_ id: Int) -> [Int] {
        if touch(id) { return [] }
        var evicted: [Int] = []
        while slotOf.count >= capacity, lru >= 0 {
            let victim = ids[lru]
            evicted.append(victim)
            remove(victim)
        }
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
            ids[slot] = id
        } else {
            slot = ids.count
            ids.append(id)
            prev.append(-1)
            next.append(-1)
        }
        slotOf[id] = slot
        linkAsMRU(slot)
        return evicted
    }

    public mutating func remove(_ id: Int) {
        guard let slot = slotOf.removeValue(forKey: id) else { return }
        unlink(slot)
        freeSlots.append(slot)
    }

    /// Forgets everything (the server connection was closed or DISCARD ALL ran).
    public mutating func removeAll() {
        slotOf.removeAll(keepingCapacity: true)
        ids.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        freeSlots.removeAll(keepingCapacity: true)
        lru = -1
        mru = -1
    }

    public var count: Int { slotOf.count }

    /// The ids, least recently used first (admin output and tests).
    public var idsLeastRecentFirst: [Int] {
        var out: [Int] = []
        out.reserveCapacity(slotOf.count)
        var s = lru
        while s >= 0 {
            out.append(ids[s])
            s = next[s]
        }
        return out
    }

    private mutating func unlink(_ slot: Int) {
        let p = prev[slot], n = next[slot]
        if p >= 0 { next[p] = n } else { lru = n }
        if n >= 0 { prev[n] = p } else { mru = p }
        prev[slot] = -1
        next[slot] = -1
    }

    private mutating func linkAsMRU(_ slot: Int) {
        prev[slot] = mru
        next[slot] = -1
        if mru >= 0 { next[mru] = slot } else { lru = slot }
        mru = slot
    }
}
