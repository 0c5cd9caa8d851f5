// A client's timeouts and shutdown readiness: what Timeouts.check sees of the connection, the statement timeout
// that applies to it, and the janitor's verdicts carried out (cancel, 57014, 25P03, 57P05).
import Foundation
import PGWire
import ProxyCore

/// Seconds between transactions after which a client parks (unparking costs a bufferevent and two epoll_ctl).
let parkAfter = 0.25

extension ClientConnection {
    /// Graceful shutdown may close this client now: it is not inside a transaction or a statement.
    var canCloseForShutdown: Bool {
        switch phase {
        case .idle: return !heldBegin
        case .startup, .admin, .waitingForServer, .closed: return true
        case .settingUp, .riding: return false
        case .active(let server):
            return server.pendingReady == 0 && server.transactionStatus == .idle && remaining == 0 && !server.unsynced
        }
    }

    /// What the janitor's timeouts see of this client now.
    var timedState: TimedState {
        switch phase {
        case .startup: return .login(since: connectedAt)
        // A rider waits for its statement to start as it would wait for a server (query_wait_timeout).
        case .waitingForServer, .riding: return .waitingForServer(since: waitingSince)
        case .idle: return heldBegin ? .idleInTransaction(since: idleSince) : .idle(since: idleSince)
        case .active(let server):
            if server.pendingReady > 0 { return .running(since: server.requestSince, cancelSentAt: server.cancelSentAt) }
            if remaining > 0 || stream.inputLength > 0 { return .untimed }
            return server.transactionStatus == .idle ? .idle(since: server.readySince) : .idleInTransaction(since: server.readySince)
        case .settingUp, .admin, .closed: return .untimed
        }
    }

    /// The statement timeout for a statement on `server`: the session's SET switchyard.statement_timeout,
    /// else the user's, database's, route's or global setting.
    func statementTimeout(on server: ServerConnection) -> Double {
        if let override = statementTimeoutOverride { return override }
        guard let pool else { return proxy.config.proxy.statementTimeout }
        return proxy.config.statementTimeout(user: pool.user, database: pool.database, role: proxy.role(of: server.backend))
    }

    /// Janitor: a transaction-mode client idle between transactions for `parkAfter` gives back its stream's
    /// bufferevent and buffers until it sends again (Stream.park): idle clients stay small.
    func parkIfIdle(now: Double) {
        guard now - idleSince >= parkAfter else { return }
        parkNow()
    }

    /// Parks an idle transaction-mode client with nothing buffered either way (see parkIfIdle). Also run as soon
    /// as the login greeting is flushed: in a connection storm each client's login buffers are then reused by
    /// the next login instead of leaving holes between the clients that stay.
    func parkNow() {
        guard case .idle = phase, !stream.isParked, stream.park() else { return }
        shedExtras()
        log.debug("client parked", metadata: ["client": "\(label)"])
    }

    /// Janitor: every client-side timeout, decided by Timeouts.check.
    func checkTimeout(now: Double) {
        let settings = proxy.config.proxy
        let state = timedState
        if case .untimed = state { return }
        var limits = TimeoutLimits(login: settings.clientLoginTimeout, queryWait: settings.queryWaitTimeout,
                                   cancelWait: settings.cancelWaitTimeout, idleTransaction: settings.idleTransactionTimeout,
                                   clientIdle: settings.clientIdleTimeout)
        if case .active(let server) = phase, case .running = state { limits.statement = statementTimeout(on: server) }
        switch Timeouts.check(state, limits: limits, now: now) {
        case .none:
            break
        case .loginTimedOut:
            fail(code: SQLState.protocolViolation, message: "client_login_timeout: login not completed in time", reason: "login timeout")
        case .queryWaitTimedOut:
            fail(code: SQLState.connectionFailure, message: "query_wait_timeout: no server connection became free in time", reason: "query wait timeout")
        case .cancelStatement:
            guard case .active(let server) = phase else { return }
            server.cancelSentAt = now
            server.cancelledAfter = limits.statement
            proxy.statementTimedOut(client: self, server: server)
        case .cancelUnanswered:
            guard case .active(let server) = phase else { return }
            log.warning("server did not answer the statement-timeout cancel in time: closing it",
                        metadata: ["client": "\(label)", "server": "\(server.label)"])
            fail(code: SQLState.queryCanceled,
                 message: ServerConnection.statementTimeoutMessage(server.cancelledAfter) + "; the server did not answer the cancel within cancel_wait_timeout",
                 reason: "statement timeout")
        case .idleInTransactionTimedOut:
            fail(code: SQLState.idleInTransactionTimeout,
                 message: "terminating connection due to idle-in-transaction timeout (switchyard idle_transaction_timeout = \(ConfigUnits.renderDuration(settings.idleTransactionTimeout)))",
                 reason: "idle_transaction_timeout")
        case .clientIdleTimedOut:
            fail(code: SQLState.idleSessionTimeout,
                 message: "terminating connection due to idle-session timeout (switchyard client_idle_timeout = \(ConfigUnits.renderDuration(settings.clientIdleTimeout)))",
                 reason: "client_idle_timeout")
        }
    }
}
