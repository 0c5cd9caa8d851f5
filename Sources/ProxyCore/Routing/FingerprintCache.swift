// Fingerprints on the hot path: the text key (Fingerprint.textKey) finds a text's fingerprint without lexing it
// into tokens or building its normalised text; the full Fingerprint is made once per distinct text key.

/// A map holding at most `capacity` entries in two generations: when `current` is full it becomes `previous`
/// and the old `previous` is dropped; a hit in `previous` moves back to `current`. A cheap LRU.
public struct GenerationalCache<Key: Hashable, Value> {
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]
    private let generationSize: Int

    /// `capacity` 0 holds nothing.
    public init(capacity: Int) {
        generationSize = max(0, capacity / 2)
    }

    public var isEnabled: Bool { generationSize > 0 }
    public var count: Int { current.count + previous.count }

    public mutating func get(_ key: Key) -> Value? {
        if let hit = current[key] { return hit }
        guard let hit = previous[key] else { return nil }
        set(key, hit)
        return hit
    }

    public mutating func set(_ key: Key, _ value: Value) {
        guard generationSize > 0 else { return }
        if current.count >= generationSize {
            previous = current
            current = [:]
            current.reserveCapacity(generationSize)
        }
        current[key] = value
    }

    public mutating func removeAll() {
        current = [:]
        previous = [:]
    }
}

/// Fingerprints by text key (and its keyed check hash): a text seen before up to its literals and comments gets
/// the same Fingerprint value back (its normalised text shared, so comparing it with a stats row's key is a
/// pointer check). Not thread-safe: one per event loop.
public struct FingerprintCache {
    /// A text key: its fingerprint, and whether the first of its texts without a string literal that was asked
    /// about has session effects (such texts differ only in numbers, parameters and comments, none of which
    /// makes or unmakes an effect).
    private struct Entry {
        var fingerprint: Fingerprint
        var mayHaveEffects: Bool?
    }
    /// The text key's id and its keyed check: an entry is found only when both match.
    private struct Key: Hashable {
        var id: UInt64
        var check: UInt64

        func hash(into hasher: inout Hasher) { hasher.combine(check) }
        /// `check` is a keyed hash already.
        func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: check) ^ seed }
    }
    private var byID: GenerationalCache<Key, Entry>
    /// How many fingerprints were built in full (misses).
    public private(set) var built = 0

    public init(capacity: Int = 10_000) {
        byID = GenerationalCache(capacity: capacity)
    }

    public var count: Int { byID.count }

    public mutating func of(utf8 bytes: UnsafeRawBufferPointer) -> Fingerprint {
        entry(utf8: bytes).fingerprint
    }

    /// The fingerprint, and whether the text may have session effects. For keys without string literals the
    /// answer is exact and cached: the raw scan (SessionAnalyzer.mayHaveEffects), and when it says maybe, the
    /// full analysis (SessionAnalyzer.effects) once per key; a text of several statements such as pgbench's
    /// `UPDATE ... SET ...;` is then not analysed again for every statement. Texts with strings get the raw
    /// scan every time (callers analyse those that may).
    public mutating func withEffects(utf8 bytes: UnsafeRawBufferPointer) -> (Fingerprint, mayHaveEffects: Bool) {
        let (id, check, hasStrings) = Fingerprint.textKey(utf8: bytes)
        let key = Key(id: id, check: check)
        var e = entry(key, utf8: bytes)
        // A string literal is a placeholder in the shape but may hold anything: this text is scanned.
        if hasStrings { return (e.fingerprint, SessionAnalyzer.mayHaveEffects(bytes)) }
        if let known = e.mayHaveEffects { return (e.fingerprint, known) }
        let scanned = SessionAnalyzer.mayHaveEffects(bytes)
            && !SessionAnalyzer.effects(of: String(decoding: bytes, as: UTF8.self)).isEmpty
        e.mayHaveEffects = scanned
        byID.set(key, e)
        return (e.fingerprint, scanned)
    }

    private mutating func entry(utf8 bytes: UnsafeRawBufferPointer) -> Entry {
        let (id, check, _) = Fingerprint.textKey(utf8: bytes)
        return entry(Key(id: id, check: check), utf8: bytes)
    }

    private mutating func entry(_ key: Key, utf8 bytes: UnsafeRawBufferPointer) -> Entry {
        if let hit = byID.get(key) { return hit }
        built += 1
        let fresh = Entry(fingerprint: Fingerprint.of(utf8: bytes))
        byID.set(key, fresh)
        return fresh
    }

    public mutating func of(_ sql: String) -> Fingerprint {
        var sql = sql
        return sql.withUTF8 { of(utf8: UnsafeRawBufferPointer($0)) }
    }
}
