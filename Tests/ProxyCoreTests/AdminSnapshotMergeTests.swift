// Workers' admin views merged into one: rows by id, one pool's rows across workers added up.
import ProxyCore
import XCTest

final class AdminSnapshotMergeTests: XCTestCase {
    private func client(_ id: Int) -> AdminClientRow {
        AdminClientRow(user: "u", database: "db", state: "idle", addr: "127.0.0.1", port: 1, connectTime: "t", requestTime: "t", id: id)
    }

    func testWorkersAddUp() {
        var a = AdminSnapshot(clients: [client(2), client(4)], version: "v")
        a.pools = [AdminPoolRow(database: "db", user: "u", clActive: 1, svActive: 1, svIdle: 2, maxWaitSeconds: 1, poolMode: "transaction", backend: "primary")]
        var b = AdminSnapshot(clients: [client(1), client(3)], version: "v")
        b.pools = [AdminPoolRow(database: "db", user: "u", clActive: 2, clWaiting: 3, svActive: 1, svLogin: 1, maxWaitSeconds: 2, maxWaitMicros: 5, poolMode: "transaction", backend: "primary"),
                   AdminPoolRow(database: "app", user: "u", svIdle: 1, poolMode: "transaction", backend: "primary")]
        a.absorb(b)
        XCTAssertEqual(a.clients.map(\.id), [1, 2, 3, 4])
        XCTAssertEqual(a.pools.map(\.database), ["app", "db"])
        let db = a.pools[1]
        XCTAssertEqual([db.clActive, db.clWaiting, db.svActive, db.svIdle, db.svLogin], [3, 3, 2, 2, 1])
        XCTAssertEqual([db.maxWaitSeconds, db.maxWaitMicros], [2, 5])
    }
}
