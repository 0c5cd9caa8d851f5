// The statement registry (stable ids per query + types), one client's names, and a server's LRU of
// prepared statements: order, eviction at capacity, touch, remove.
import XCTest
@testable import ProxyCore

final class PreparedStatementsTests: XCTestCase {
    // MARK: Registry

    func testRegistryIdsAreStableAndDistinct() {
        var r = StatementRegistry()
        let a = StatementKey(query: "SELECT $1", parameterTypes: [23])
        let b = StatementKey(query: "SELECT $1", parameterTypes: [25])
        let c = StatementKey(query: "SELECT $1", parameterTypes: [])
        let d = StatementKey(query: "SELECT $1 ", parameterTypes: [23])
        let ids = [a, b, c, d].map { r.id(for: $0) }
        XCTAssertEqual(Set(ids).count, 4)
        XCTAssertEqual(ids, [1, 2, 3, 4])
        XCTAssertEqual(r.id(for: StatementKey(query: "SELECT $1", parameterTypes: [23])), ids[0])
        XCTAssertEqual(r.id(for: b), ids[1])
        XCTAssertEqual(r.count, 4)
        XCTAssertEqual(r.key(for: ids[3]), d)
        XCTAssertEqual(r.key(for: ids[1]), b)
        XCTAssertNil(r.key(for: 0))
        XCTAssertNil(r.key(for: 5))
        XCTAssertEqual(StatementRegistry.serverName(ids[2]), "sy_3")
        XCTAssertEqual(StatementRegistry.serverName(120), "sy_120")
    }

    // MARK: Client names

    func testClientStatementsDefineRedefineRemove() {
        var c = ClientStatements()
        c.define("s1", id: 1)
        c.define("s2", id: 2)
        c.define("", id: 9)
        XCTAssertEqual(c.count, 2)
        XCTAssertNil(c.id(for: ""))
        XCTAssertEqual(c.id(for: "s1"), 1)
        XCTAssertEqual(c.names, ["s1", "s2"])

        c.define("s1", id: 3)
        XCTAssertEqual(c.id(for: "s1"), 3)
        XCTAssertEqual(c.count, 2)

        XCTAssertEqual(c.remove("s1"), 3)
        XCTAssertNil(c.remove("s1"))
        XCTAssertNil(c.id(for: "s1"))
        XCTAssertEqual(c.names, ["s2"])

        c.removeAll()
        XCTAssertEqual(c.count, 0)
        XCTAssertEqual(c.names, [])
    }

    // MARK: Server LRU

    func testCacheEvictsLeastRecentlyUsedAtCapacity() {
        var s = ServerStatementCache(capacity: 3)
        XCTAssertEqual(s.insert(1), [])
        XCTAssertEqual(s.insert(2), [])
        XCTAssertEqual(s.insert(3), [])
        XCTAssertEqual(s.idsLeastRecentFirst, [1, 2, 3])
        XCTAssertEqual(s.insert(4), [1])
        XCTAssertFalse(s.contains(1))
        XCTAssertEqual(s.idsLeastRecentFirst, [2, 3, 4])
        XCTAssertEqual(s.count, 3)
        // Inserting an id already there only touches it.
        XCTAssertEqual(s.insert(2), [])
        XCTAssertEqual(s.idsLeastRecentFirst, [3, 4, 2])
    }

    func testTouchMovesToMostRecent() {
        var s = ServerStatementCache(capacity: 3)
        _ = s.insert(1); _ = s.insert(2); _ = s.insert(3)
        XCTAssertTrue(s.touch(1))
        XCTAssertEqual(s.idsLeastRecentFirst, [2, 3, 1])
        XCTAssertTrue(s.touch(3))
        XCTAssertEqual(s.idsLeastRecentFirst, [2, 1, 3])
        XCTAssertTrue(s.touch(3))
        XCTAssertEqual(s.idsLeastRecentFirst, [2, 1, 3])
        XCTAssertFalse(s.touch(9))
        XCTAssertEqual(s.insert(4), [2])
        XCTAssertEqual(s.insert(5), [1])
        XCTAssertEqual(s.idsLeastRecentFirst, [3, 4, 5])
    }

    func testRemoveAndRemoveAll() {
        var s = ServerStatementCache(capacity: 3)
        _ = s.insert(1); _ = s.insert(2); _ = s.insert(3)
        s.remove(2)
        s.remove(7)
        XCTAssertFalse(s.contains(2))
        XCTAssertEqual(s.idsLeastRecentFirst, [1, 3])
        // The freed slot is reused; no eviction below capacity.
        XCTAssertEqual(s.insert(4), [])
        XCTAssertEqual(s.idsLeastRecentFirst, [1, 3, 4])
        s.remove(1)
        s.remove(4)
        XCTAssertEqual(s.idsLeastRecentFirst, [3])
        s.removeAll()
        XCTAssertEqual(s.count, 0)
        XCTAssertEqual(s.idsLeastRecentFirst, [])
        XCTAssertFalse(s.contains(3))
        XCTAssertEqual(s.insert(5), [])
        XCTAssertEqual(s.idsLeastRecentFirst, [5])
    }

    func testCapacityOneAndClamping() {
        var s = ServerStatementCache(capacity: 0)
        XCTAssertEqual(s.capacity, 1)
        XCTAssertEqual(s.insert(1), [])
        XCTAssertEqual(s.insert(2), [1])
        XCTAssertEqual(s.idsLeastRecentFirst, [2])
    }

    /// Against a naive model: a long random sequence of operations at the default capacity.
    func testMatchesNaiveModel() {
        var s = ServerStatementCache(capacity: 200)
        var model: [Int] = []  // least recent first
        var rng = RoutingTestRNG(seed: 7)   // SplitMix64, from BackendsTests
        for step in 0..<20_000 {
            let id = Int(rng.next() % 300)
            switch rng.next() % 4 {
            case 0, 1:
                var expected: [Int] = []
                if let i = model.firstIndex(of: id) { model.remove(at: i) } else if model.count == 200 {
                    expected = [model.removeFirst()]
                }
                model.append(id)
                XCTAssertEqual(s.insert(id), expected, "step \(step)")
            case 2:
                let present = model.contains(id)
                if let i = model.firstIndex(of: id) { model.append(model.remove(at: i)) }
                XCTAssertEqual(s.touch(id), present)
            default:
                model.removeAll { $0 == id }
                s.remove(id)
            }
        }
        XCTAssertEqual(s.idsLeastRecentFirst, model)
        XCTAssertEqual(s.count, model.count)
    }
}
