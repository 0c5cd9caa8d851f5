// Timeouts.check as a transcript with a manual clock: each limit fires at its time and not before.
import ProxyCore
import XCTest

final class TimeoutsTests: XCTestCase {
    let limits = TimeoutLimits(login: 5, queryWait: 10, statement: 1, cancelWait: 2, idleTransaction: 3, clientIdle: 60)

    func testEachLimitFiresAtItsTime() {
        XCTAssertEqual(Timeouts.check(.login(since: 100), limits: limits, now: 104.9), .none)
        XCTAssertEqual(Timeouts.check(.login(since: 100), limits: limits, now: 105), .loginTimedOut)
        XCTAssertEqual(Timeouts.check(.waitingForServer(since: 0), limits: limits, now: 9), .none)
        XCTAssertEqual(Timeouts.check(.waitingForServer(since: 0), limits: limits, now: 10.5), .queryWaitTimedOut)
        XCTAssertEqual(Timeouts.check(.idleInTransaction(since: 7), limits: limits, now: 9.9), .none)
        XCTAssertEqual(Timeouts.check(.idleInTransaction(since: 7), limits: limits, now: 10), .idleInTransactionTimedOut)
        XCTAssertEqual(Timeouts.check(.idle(since: 0), limits: limits, now: 59), .none)
        XCTAssertEqual(Timeouts.check(.idle(since: 0), limits: limits, now: 61), .clientIdleTimedOut)
        XCTAssertEqual(Timeouts.check(.untimed, limits: limits, now: 1e9), .none)
    }

    func testStatementIsCancelledThenItsServerGivenUp() {
        var state = TimedState.running(since: 50, cancelSentAt: nil)
        XCTAssertEqual(Timeouts.check(state, limits: limits, now: 50.9), .none)
        XCTAssertEqual(Timeouts.check(state, limits: limits, now: 51.0), .cancelStatement)
        state = .running(since: 50, cancelSentAt: 51.0)
        // Cancelled once: not again, and the server gets cancel_wait_timeout to answer.
        XCTAssertEqual(Timeouts.check(state, limits: limits, now: 52.5), .none)
        XCTAssertEqual(Timeouts.check(state, limits: limits, now: 53.0), .cancelUnanswered)
    }

    func testZeroTurnsALimitOff() {
        let off = TimeoutLimits()
        XCTAssertEqual(Timeouts.check(.running(since: 0, cancelSentAt: nil), limits: off, now: 1e6), .none)
        XCTAssertEqual(Timeouts.check(.idleInTransaction(since: 0), limits: off, now: 1e6), .none)
        XCTAssertEqual(Timeouts.check(.login(since: 0), limits: off, now: 1e6), .none)
    }

    func testSessionTimeoutValues() {
        XCTAssertEqual(Timeouts.parseSessionTimeout("'2s'"), 2)
        XCTAssertEqual(Timeouts.parseSessionTimeout("1500"), 1.5)
        XCTAssertEqual(Timeouts.parseSessionTimeout("'250ms'"), 0.25)
        XCTAssertEqual(Timeouts.parseSessionTimeout("'1 min'"), 60)
        XCTAssertEqual(Timeouts.parseSessionTimeout("0"), 0)
        XCTAssertNil(Timeouts.parseSessionTimeout("'soon'"))
        XCTAssertNil(Timeouts.parseSessionTimeout("''"))
    }
}
