// Client-side timeouts as a plain function of a connection's state and the time: login, queue wait,
// statement (cancel, then give up on the server), idle in transaction and idle client. The janitor asks
// once per tick and runs the verdict; nothing here keeps a timer.

/// What a client connection is doing, as far as timeouts care, with the time it started doing it.
public enum TimedState: Equatable, Sendable {
    /// Connected, not logged in yet.
    case login(since: Double)
    /// Waiting for a server connection from a pool.
    case waitingForServer(since: Double)
    /// A statement is running on a server. `cancelSentAt` is set once the proxy has cancelled it.
    case running(since: Double, cancelSentAt: Double?)
    /// Nothing in flight, inside a transaction (or a failed one).
    case idleInTransaction(since: Double)
    /// Nothing in flight, no transaction open.
    case idle(since: Double)
    /// Admin console, closed, or anything no timeout applies to.
    case untimed
}

/// The limits in seconds; 0 turns one off.
public struct TimeoutLimits: Equatable, Sendable {
    public var login: Double
    public var queryWait: Double
    public var statement: Double
    public var cancelWait: Double
    public var idleTransaction: Double
    public var clientIdle: Double

    public init(login: Double = 0, queryWait: Double = 0, statement: Double = 0, cancelWait: Double = 0,
                idleTransaction: Double = 0, clientIdle: Double = 0) {
        self.login = login
        self.queryWait = queryWait
        self.statement = statement
        self.cancelWait = cancelWait
        self.idleTransaction = idleTransaction
        self.clientIdle = clientIdle
    }
}

/// What the janitor must do about one connection now.
public enum TimeoutVerdict: Equatable, Sendable {
    case none
    /// client_login_timeout: close the client (08P01).
    case loginTimedOut
    /// query_wait_timeout: no server became free (08006).
    case queryWaitTimedOut
    /// statement_timeout: send a CancelRequest to the server running the statement.
    case cancelStatement
    /// The cancelled statement's server did not answer within cancel_wait_timeout: close that server.
    case cancelUnanswered
    /// idle_transaction_timeout: disconnect the client (25P03); closing its server rolls the transaction back.
    case idleInTransactionTimedOut
    /// client_idle_timeout: disconnect the client (57P05).
    case clientIdleTimedOut
}

public enum Timeouts {
    /// The one decision: which limit, if any, `state` has passed at `now`.
    public static func check(_ state: TimedState, limits: TimeoutLimits, now: Double) -> TimeoutVerdict {
        func past(_ since: Double, _ limit: Double) -> Bool { limit > 0 && now - since >= limit }
        switch state {
        case .login(let since):
            return past(since, limits.login) ? .loginTimedOut : .none
        case .waitingForServer(let since):
            return past(since, limits.queryWait) ? .queryWaitTimedOut : .none
        case .running(_, let cancelSentAt?):
            return past(cancelSentAt, max(limits.cancelWait, 0.001)) ? .cancelUnanswered : .none
        case .running(let since, nil):
            return past(since, limits.statement) ? .cancelStatement : .none
        case .idleInTransaction(let since):
            return past(since, limits.idleTransaction) ? .idleInTransactionTimedOut : .none
        case .idle(let since):
            return past(since, limits.clientIdle) ? .clientIdleTimedOut : .none
        case .untimed:
            return .none
        }
    }

    /// A session's `SET switchyard.statement_timeout` value in seconds: a bare number is milliseconds (as
    /// Postgres' statement_timeout), or a number with a unit (us, ms, s, min, h, d); nil when malformed.
    public static func parseSessionTimeout(_ raw: String) -> Double? {
        let text = raw.trimmingSpacesAndQuotes()
        guard !text.isEmpty, text.lowercased() != "default" else { return nil }
        if text.allSatisfy(\.isNumber) { return Double(text).map { $0 / 1000 } }
        return ConfigUnits.parseDuration(String(text.filter { $0 != " " }))
    }
}

extension String {
    fileprivate func trimmingSpacesAndQuotes() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "'" || c == "\"" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "'" || c == "\"" { s = s.dropLast() }
        return String(s)
    }
}
