// ResponseTracker transcripts, no socket: requests queued as the proxy sends them, server message types fed
// in, and what the client sees written as one character per message (synthesized ones included, in order).
import XCTest
import PGWire
@testable import ProxyCore

final class ResponseTrackerTests: XCTestCase {
    typealias T = ResponseTracker
    let parseComplete = T.Disposition.synthesize(ProxyMessages.parseComplete())
    let closeComplete = T.Disposition.synthesize(ProxyMessages.closeComplete())

    /// The type bytes of the whole messages in `bytes`, as characters.
    func types(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i + 5 <= bytes.count {
            out.append(Character(Unicode.Scalar(bytes[i])))
            i += 1 + Int(Int32(bigEndianBytes: bytes, at: i + 1))
        }
        XCTAssertEqual(i, bytes.count, "synthesized bytes are whole messages")
        return out
    }

    /// Feeds server messages (one type character each); returns what the client sees and every step.
    @discardableResult
    func run(_ t: inout T, _ server: String, file: StaticString = #filePath, line: UInt = #line) -> (client: String, steps: [T.Step]) {
        var client = ""
        var steps: [T.Step] = []
        for c in server.utf8 {
            let step = t.received(type: c)
            client += types(step.emitBefore)
            if step.forward { client.append(Character(Unicode.Scalar(c))) }
            steps.append(step)
        }
        return (client, steps)
    }

    // (1)
    func testPlainPipelineIsForwarded() {
        var t = T()
        t.sent(.parse(statement: nil))
        t.sent(.bind(statement: nil))
        t.sent(.describePortal)
        t.sent(.execute)
        t.sent(.sync)
        XCTAssertEqual(t.pendingSyncs, 1)
        XCTAssertEqual(t.pendingCount, 5)
        let (client, steps) = run(&t, "12TDDDCZ")
        XCTAssertEqual(client, "12TDDDCZ")
        XCTAssertTrue(steps.allSatisfy { $0 == T.Step() })
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.pendingSyncs, 0)

        // Named: Parse, Describe statement (t then T, or t then n), Sync.
        t.sent(.parse(statement: 4))
        t.sent(.describeStatement)
        t.sent(.describeStatement)
        t.sent(.bind(statement: 4))
        t.sent(.describePortal)
        t.sent(.execute)
        t.sent(.close)
        t.sent(.sync)
        XCTAssertEqual(run(&t, "1tTtn2nC3Z").client, "1tTtn2nC3Z")
        XCTAssertTrue(t.isEmpty)
    }

    // (2)
    func testLocallyAnsweredParseComesBeforeBindComplete() {
        var t = T()
        t.sent(.parse(statement: 1), parseComplete)
        t.sent(.bind(statement: 1))
        t.sent(.execute)
        t.sent(.sync)
        let (client, steps) = run(&t, "2DCZ")
        XCTAssertEqual(client, "12DCZ")
        XCTAssertEqual(steps[0], T.Step(emitBefore: ProxyMessages.parseComplete()))
        XCTAssertTrue(t.isEmpty)

        // Behind a real Parse: due only once that one is answered.
        t.sent(.parse(statement: nil))
        t.sent(.parse(statement: 2), parseComplete)
        t.sent(.parse(statement: 3), parseComplete)
        t.sent(.bind(statement: 2))
        t.sent(.sync)
        XCTAssertEqual(t.takeDueSynthesized(), [])
        XCTAssertEqual(run(&t, "1").client, "1")
        XCTAssertEqual(types(t.takeDueSynthesized()), "11")
        XCTAssertEqual(run(&t, "2Z").client, "2Z")
        XCTAssertTrue(t.isEmpty)
    }

    // (3)
    func testInjectedParseIsSwallowed() {
        var t = T()
        t.sent(.parse(statement: 7), .swallow)
        t.sent(.bind(statement: 7))
        t.sent(.execute)
        t.sent(.sync)
        let (client, steps) = run(&t, "12DCZ")
        XCTAssertEqual(client, "2DCZ")
        XCTAssertFalse(steps[0].forward)
        XCTAssertTrue(steps[1].forward)
        XCTAssertTrue(t.isEmpty)

        // Eviction Close plus injected Parse before a client Describe statement.
        t.sent(.evict(statement: 1), .swallow)
        t.sent(.parse(statement: 8), .swallow)
        t.sent(.describeStatement)
        t.sent(.sync)
        XCTAssertEqual(run(&t, "31tTZ").client, "tTZ")
        XCTAssertTrue(t.isEmpty)
    }

    // (4)
    func testErrorOnBindDropsEverythingUpToSync() {
        var t = T()
        t.sent(.bind(statement: 3))
        t.sent(.execute)
        t.sent(.close, closeComplete)
        t.sent(.parse(statement: 4), parseComplete)
        t.sent(.bind(statement: 4))
        t.sent(.execute)
        t.sent(.sync)
        let (client, steps) = run(&t, "EZ")
        XCTAssertEqual(client, "EZ")
        XCTAssertEqual(steps[0].failed, .bind(statement: 3))
        XCTAssertEqual(steps[0].emitBefore, [])
        XCTAssertEqual(steps[0].unprepared, [])
        XCTAssertEqual(steps[1], T.Step())
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.pendingSyncs, 0)

        // The skipped entries' synthesized bytes went with them: the next one answers with its own.
        t.sent(.parse(statement: 5), parseComplete)
        t.sent(.sync)
        XCTAssertEqual(run(&t, "Z").client, "1Z")
        XCTAssertTrue(t.isEmpty)
    }

    func testErrorReportsStatementsTheServerDidNotPrepareOrClose() {
        var t = T()
        // A synthesized Parse before the failing one is still due first.
        t.sent(.parse(statement: 1), parseComplete)
        t.sent(.parse(statement: 2), .swallow)       // injected, fails
        t.sent(.bind(statement: 2))
        t.sent(.evict(statement: 5), .swallow)       // skipped: sy_5 stays on the server
        t.sent(.parse(statement: 6))                 // a client Parse forwarded as sy_6: skipped
        t.sent(.parse(statement: nil))               // unnamed: nothing to report
        t.sent(.parse(statement: 9), parseComplete)  // already prepared: nothing to report
        t.sent(.sync)
        t.sent(.parse(statement: 7), .swallow)       // after the Sync: runs normally
        t.sent(.bind(statement: 7))
        t.sent(.sync)
        let (client, steps) = run(&t, "EZ12Z")
        XCTAssertEqual(client, "1EZ2Z")
        XCTAssertEqual(steps[0], T.Step(emitBefore: ProxyMessages.parseComplete(), failed: .parse(statement: 2),
                                        unprepared: [2, 6], notClosed: [5]))
        XCTAssertTrue(t.isEmpty)
    }

    func testErrorBeforeSyncIsSentSkipsLaterRequests() {
        var t = T()
        t.sent(.bind(statement: 1))
        t.sent(.execute)
        let step = t.received(type: UInt8(ascii: "E"))
        XCTAssertEqual(step.failed, .bind(statement: 1))
        XCTAssertTrue(t.isEmpty)
        XCTAssertTrue(t.isSkippingUntilSync)
        // The server ignores these: nothing will answer them, synthesized ones included.
        XCTAssertFalse(t.sent(.describePortal))
        XCTAssertFalse(t.sent(.close, closeComplete))
        XCTAssertFalse(t.sent(.query))
        XCTAssertEqual(t.takeDueSynthesized(), [])
        XCTAssertTrue(t.isEmpty)
        XCTAssertTrue(t.sent(.sync))
        XCTAssertFalse(t.isSkippingUntilSync)
        XCTAssertEqual(t.pendingSyncs, 1)
        XCTAssertEqual(run(&t, "Z").client, "Z")
        XCTAssertTrue(t.isEmpty)
    }

    func testErrorAtSyncWaitsForReadyForQuery() {
        // A deferred constraint failing at the implicit commit of Sync.
        var t = T()
        t.sent(.bind(statement: nil))
        t.sent(.execute)
        t.sent(.sync)
        let (client, steps) = run(&t, "2CE")
        XCTAssertEqual(client, "2CE")
        XCTAssertEqual(steps[2].failed, .sync)
        XCTAssertFalse(t.isSkippingUntilSync)
        XCTAssertEqual(t.pendingSyncs, 1)
        XCTAssertEqual(run(&t, "Z").client, "Z")
        XCTAssertTrue(t.isEmpty)
    }

    // (5)
    func testLocallyAnsweredParseWithFlushIsDueAtOnce() {
        var t = T()
        t.sent(.parse(statement: 2), parseComplete)
        XCTAssertEqual(t.takeDueSynthesized(), ProxyMessages.parseComplete())
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.takeDueSynthesized(), [])

        // Two in a row and a Close answered locally, then a real request: all three due, the real one waits.
        t.sent(.parse(statement: 2), parseComplete)
        t.sent(.close, closeComplete)
        t.sent(.parse(statement: 3), parseComplete)
        t.sent(.describeStatement)
        XCTAssertEqual(types(t.takeDueSynthesized()), "131")
        XCTAssertEqual(t.pendingCount, 1)
        XCTAssertEqual(run(&t, "tn").client, "tn")
        XCTAssertTrue(t.isEmpty)
    }

    // (6)
    func testSimpleQueryWithSeveralResultsAndAnErrorEndsAtReadyForQuery() {
        var t = T()
        t.sent(.query)
        t.sent(.query)
        XCTAssertEqual(t.pendingSyncs, 2)
        let (client, steps) = run(&t, "TDDCNCTDE")
        XCTAssertEqual(client, "TDDCNCTDE")
        XCTAssertEqual(steps.last?.failed, .query)
        XCTAssertEqual(t.pendingSyncs, 2)
        XCTAssertEqual(run(&t, "Z").client, "Z")
        XCTAssertEqual(t.pendingSyncs, 1)
        // The second one: an empty query, then ReadyForQuery.
        XCTAssertEqual(run(&t, "IZ").client, "IZ")
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.pendingSyncs, 0)

        // COPY inside a simple Query, and a function call.
        t.sent(.query)
        t.sent(.functionCall)
        XCTAssertEqual(run(&t, "HddcCGCZVZ").client, "HddcCGCZVZ")
        XCTAssertTrue(t.isEmpty)
    }

    // (7)
    func testCopyInsideExecute() {
        var t = T()
        t.sent(.parse(statement: 1), .swallow)
        t.sent(.bind(statement: 1))
        t.sent(.execute)
        t.sent(.sync)
        // COPY TO STDOUT.
        XCTAssertEqual(run(&t, "12HdddcCZ").client, "2HdddcCZ")
        XCTAssertTrue(t.isEmpty)
        // COPY FROM STDIN: the client's CopyData is not tracked; CommandComplete ends the Execute.
        t.sent(.bind(statement: 1))
        t.sent(.execute)
        t.sent(.sync)
        XCTAssertEqual(run(&t, "2G").client, "2G")
        XCTAssertEqual(t.pendingCount, 2)
        XCTAssertEqual(run(&t, "CZ").client, "CZ")
        XCTAssertTrue(t.isEmpty)
        // A portal suspended by a row limit, then executed again.
        t.sent(.bind(statement: 1))
        t.sent(.execute)
        t.sent(.execute)
        t.sent(.sync)
        XCTAssertEqual(run(&t, "2DDsDCZ").client, "2DDsDCZ")
        XCTAssertTrue(t.isEmpty)
    }

    // (8)
    func testAsyncMessagesChangeNothing() {
        var t = T()
        XCTAssertEqual(run(&t, "NSA").steps, [T.Step(), T.Step(), T.Step()])
        t.sent(.parse(statement: 1), .swallow)
        t.sent(.parse(statement: 2), parseComplete)
        t.sent(.bind(statement: 2))
        t.sent(.execute)
        t.sent(.sync)
        let (client, steps) = run(&t, "S1N2DADCSZA")
        XCTAssertEqual(client, "SN12DADCSZA")
        XCTAssertEqual(steps[0], T.Step())
        XCTAssertEqual(steps[2], T.Step())
        XCTAssertEqual(types(steps[3].emitBefore), "1")
        XCTAssertTrue(t.isEmpty)
        // Between an error and ReadyForQuery too.
        t.sent(.query)
        XCTAssertEqual(run(&t, "ENSZ").client, "ENSZ")
        XCTAssertTrue(t.isEmpty)
    }

    // MARK: Leniency and bookkeeping

    func testMessagesThatDoNotFitAreForwardedAndFlagged() {
        var t = T()
        let stray = t.received(type: UInt8(ascii: "C"))
        XCTAssertTrue(stray.forward)
        XCTAssertTrue(stray.unexpected)
        // An error with nothing pending (e.g. a FATAL shutdown) is not unexpected.
        XCTAssertEqual(t.received(type: UInt8(ascii: "E")), T.Step())
        XCTAssertTrue(t.received(type: 0x01).unexpected)

        // A wrong response leaves the head in place...
        t.sent(.bind(statement: nil))
        t.sent(.execute)
        t.sent(.sync)
        t.sent(.query)
        XCTAssertTrue(t.received(type: UInt8(ascii: "1")).unexpected)
        XCTAssertEqual(t.pendingCount, 4)
        // ...and a ReadyForQuery out of turn drops through the first Sync.
        let z = t.received(type: UInt8(ascii: "Z"))
        XCTAssertTrue(z.unexpected)
        XCTAssertTrue(z.forward)
        XCTAssertEqual(t.pendingCount, 1)
        XCTAssertEqual(t.pendingSyncs, 1)
        XCTAssertEqual(run(&t, "CZ").client, "CZ")
        XCTAssertTrue(t.isEmpty)
    }

    func testResetForgetsEverything() {
        var t = T()
        t.sent(.bind(statement: 1))
        _ = t.received(type: UInt8(ascii: "E"))
        XCTAssertTrue(t.isSkippingUntilSync)
        t.reset()
        XCTAssertFalse(t.isSkippingUntilSync)
        t.sent(.parse(statement: 1), parseComplete)
        t.sent(.query)
        t.reset()
        XCTAssertTrue(t.isEmpty)
        XCTAssertEqual(t.pendingSyncs, 0)
        XCTAssertEqual(t.takeDueSynthesized(), [])
    }

    func testRingBufferKeepsOrderAcrossWrapAndGrowth() {
        var t = T()
        var client = ""
        var expected = ""
        // Deep pipelines of varying depth so the ring wraps and grows while holding entries.
        for round in 0..<200 {
            let depth = 1 + (round * 7) % 40
            var server = ""
            for i in 0..<depth {
                if i % 3 == 0 {
                    t.sent(.parse(statement: i), parseComplete)
                    expected += "1"
                } else {
                    t.sent(.bind(statement: i))
                    server += "2"
                    expected += "2"
                }
            }
            t.sent(.sync)
            server += "Z"
            expected += "Z"
            client += run(&t, server).client
            XCTAssertTrue(t.isEmpty, "round \(round)")
        }
        XCTAssertEqual(client, expected)
    }

    // A simple Query's rows, description and tag take a shortcut past the head entry: it must hand over to
    // whatever follows the Query, and never forward a reply to a Query the proxy swallows.
    func testQueryShortcutFollowsTheHead() {
        var t = T()
        t.sent(.query, .swallow)
        t.sent(.query)
        t.sent(.parse(statement: 7), parseComplete)
        t.sent(.bind(statement: 7))
        t.sent(.sync)
        XCTAssertEqual(run(&t, "TDCZ").client, "", "the swallowed Query's replies are dropped")
        XCTAssertEqual(run(&t, "TDDCZ").client, "TDDCZ")
        // The Parse answered locally is due before the BindComplete; a DataRow now does not fit the Bind.
        let (client, steps) = run(&t, "2Z")
        XCTAssertEqual(client, "12Z")
        XCTAssertFalse(steps.contains { $0.unexpected })
        XCTAssertTrue(t.isEmpty)
        t.sent(.bind(statement: nil))
        t.sent(.sync)
        XCTAssertTrue(run(&t, "D").steps[0].unexpected, "a row is not a Bind's reply")
        t.reset()
        t.sent(.query)
        XCTAssertEqual(run(&t, "CZ").client, "CZ")
        XCTAssertTrue(t.isEmpty)
    }
}
