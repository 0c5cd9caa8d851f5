// How a server connection ends its use: released to the pool (reset and reused), broken (the client hears
// why, or waits for another server, or retries on the primary), closed, or given up at server_connect_timeout.
import PGWire
import ProxyCore

extension ServerConnection {
    /// The client is done with this server: reset and reuse it when clean, close it otherwise.
    func release() {
        // Riders wait behind the leaving client's requests: the server stays theirs.
        if attachedClientLeft() { return }
        client = nil
        guard case .active = phase, isClean, !stream.isClosed else {
            return close(reason: "client left mid-query or mid-transaction")
        }
        stream.resumeReading()
        let reset = proxy.config.proxy.serverResetQuery
        tracking = false
        tracker.reset()
        if reset.isEmpty {
            goIdle()
        } else {
            runInternal(.reset, sql: reset)
        }
    }

    /// The connection broke: tell the client (if any) and the pool.
    func broken(_ why: String) {
        switch phase {
        case .closed: return
        case .connecting, .login:
            let code = SQLState.unableToConnect
            log.warning("server connection failed", metadata: ["server": "\(label)", "reason": "\(why)"])
            phase = .closed
            stream.close()
            pool.serverFailed(self, error: fields(code, "switchyard could not connect to backend \(backend.name) (\(address.description)): \(why)"))
        case .internalQuery(.setup):
            // Lost while being checked or set up for a client that has sent nothing through it yet:
            // the client waits for another server instead of failing.
            log.warning("server connection lost before use", metadata: ["server": "\(label)", "reason": "\(why)"])
            let c = client
            close(reason: why)
            c?.serverLostBeforeUse()
        case .active where retryable.isSet && client != nil && proxy.role(of: backend) == .replica:
            log.warning("replica connection lost before any reply: retrying on the primary", metadata: ["server": "\(label)", "reason": "\(why)"])
            let c = client!
            let query = retryable.bytes!
            retryable.clear()
            close(reason: why)
            c.retryOnPrimary(query, from: nil, misroutedOn: backend.name)
        case .internalQuery, .idle, .active:
            log.warning("server connection lost", metadata: ["server": "\(label)", "reason": "\(why)"])
            let c = client
            close(reason: why)
            c?.fail(code: SQLState.connectionFailure, message: "server connection to backend \(backend.name) (\(address.description)) lost: \(why)", reason: "server lost")
        }
    }

    func close(reason: String) {
        if case .closed = phase { return }
        log.debug("server closed", metadata: ["server": "\(label)", "reason": "\(reason)"])
        let wasLoggedIn: Bool
        switch phase {
        case .connecting, .login, .closed: wasLoggedIn = false
        case .internalQuery, .idle, .active: wasLoggedIn = true
        }
        phase = .closed
        client = nil
        lent = false
        if pool.boarding === self { pool.boarding = nil }
        failRiders(reason)
        if wasLoggedIn && !stream.isClosed { stream.write(ProxyMessages.terminate()) }
        stream.closeAfterFlush()
        if wasLoggedIn { pool.serverClosed(self) } else { pool.serverFailed(self, error: nil) }
    }

    /// Janitor: a server still connecting past server_connect_timeout is given up; the statement of a client
    /// that left while riders waited behind it is timed here (nobody else times it).
    func checkTimeout(now: Double) {
        switch phase {
        case .connecting, .login:
            if now > deadline { broken("timeout after \(proxy.config.proxy.serverConnectTimeout)s (server_connect_timeout)") }
        case .active:
            if departed != nil { checkDepartedStatement(now: now) }
        case .internalQuery, .idle, .closed: break
        }
    }

    /// The departed client's statement past its statement_timeout is cancelled on the server as the client's
    /// own would be, so the riders' statements behind it run; a cancel unanswered for cancel_wait_timeout
    /// closes the connection (the riders get the error of a lost server).
    private func checkDepartedStatement(now: Double) {
        guard let gone = departed, requestSince > 0 else { return }
        if let sent = cancelSentAt {
            if now - sent >= proxy.config.proxy.cancelWaitTimeout {
                broken("the statement of a client that left was not cancelled within cancel_wait_timeout")
            }
            return
        }
        let limit = gone.statementTimeout(on: self)
        guard limit > 0, now - requestSince >= limit else { return }
        cancelSentAt = now
        cancelledAfter = limit
        proxy.statementTimedOut(client: gone, server: self)
    }
}
