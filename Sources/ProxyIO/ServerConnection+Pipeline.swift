// Shared pipeline (server_pipeline_depth, transaction mode): when every server connection of a pool is busy
// and it can open no more, a client's lone autocommit read is sent behind another client's lone read on a busy
// server of the same backend and session settings, instead of waiting for a server to come back. Postgres
// answers them in order, each ending with its ReadyForQuery; the relay hands the connection to the next client
// ("rider") at each one. The server never sits idle between the two statements (no round trip through the
// pool), and one write often carries several of them. With servers to spare nothing rides: each statement gets
// a server of its own, and Postgres runs them in parallel. Nor with fewer clients waiting than the pool has
// servers: one of them comes back sooner than the statement ahead of a rider ends (Pool.ridingPays).
//
// Only statements known to be quick take part (QuickStatements, server_pipeline_max_latency): nobody waits
// behind a long query. A rider's statement runs when the ones before it are done; its statement timeout
// starts then. A cancel request for a rider whose statement has not started yet is sent when it starts.
// While a cancel is on its way nobody boards (so a cancel that reaches a rider's statement was sent after it
// boarded). A rider waits at most query_wait_timeout for its statement to start (then it gets the error and
// its reply is dropped). Each rider keeps a copy of its Query: on a replica a 25006 or a lost connection
// before its reply sends it to the primary, as for any lone read; and a cancel sent after it boarded, for a
// statement ahead of it that ended before the cancel landed, cancels its statement instead: that error is
// hidden and the query runs again.
import PGWire
import ProxyCore

extension ServerConnection {
    /// Everything in flight is lone quick reads, and fewer than depth - 1 riders came since the server was lent.
    var hasRoom: Bool { boardable && boarded + 1 < proxy.config.proxy.serverPipelineDepth }

    /// Whether `rider`'s lone read may be sent behind what is in flight here now.
    func accepts(_ rider: ClientConnection) -> Bool {
        // At most depth - 1 riders per lending: clients waiting for a server (writes, transactions) are not
        // held off by an endless stream of riders.
        guard hasRoom, case .active = phase, client != nil, departed == nil, cancelSentAt == nil, !cancelInFlight,
              cancelsOutstanding == 0, !stream.isClosed
        else { return false }
        return sessionParams == rider.sessionParameters
    }

    /// Sends `rider`'s Query (`total` bytes at the front of its input) behind the requests in flight.
    func board(_ rider: ClientConnection, total: Int, fingerprint: Fingerprint) {
        let role = proxy.role(of: backend)
        riders.append(rider)
        var query = spareQueries.popLast() ?? KeptBytes()
        query.fill(total, from: rider.stream)
        riderTickets.append((query, cancelsSent))
        boarded += 1
        // One more statement in flight on the backend (least_outstanding counts statements, not servers).
        adjustOutstanding(by: 1)
        _ = rider.stream.move(upTo: total, to: stream)
        requestSent(fingerprint)
        tracker.sent(.query)
        proxy.stats.recordPipelined(backend: backend.name, role: role, now: proxy.loop.now)
    }

    /// The attached client is done with this server: the next rider becomes the attached client (its reply is
    /// next in the input), or the server goes back to the pool.
    func clientDone() {
        departed = nil
        transactionFailed = false
        watchCommandTags = false
        riderCancelMark = .max
        guard !riders.isEmpty else { return goIdle() }
        // The finished client's statement leaves the backend's count; the next rider's was counted at boarding.
        adjustOutstanding(by: -1)
        let next = riders.removeFirst()
        var ticket = riderTickets.removeFirst()
        client = next
        // A paused read was the previous client's backpressure; this one's output is empty.
        if stream.readingPaused { stream.resumeReading() }
        let cancelAsked = cancelsOnStart.firstIndex(where: { $0 === next }).map { cancelsOnStart.remove(at: $0) } != nil
        guard case .riding(let on) = next.phase, on === self else {
            // It left while riding: its reply is read and dropped.
            departed = next
            spare(ticket.query)
            return
        }
        next.phase = .active(self)
        waitMicros = Int(max(0, proxy.loop.now - next.waitingSince) * 1e6)
        startedRiderStatement()
        // The rider's copy becomes the retryable query; the storage it replaces serves a later rider.
        swap(&retryable, &ticket.query)
        spare(ticket.query)
        riderCancelMark = ticket.cancelMark
        if cancelAsked {
            // Riders behind it are safe from it if it lands late (their statements run again).
            proxy.logger.info("forwarding cancel", metadata: ["client": "\(next.label)", "server": "\(label)"])
            cancelInFlight = true
            proxy.sendCancel(to: self)
        }
        // Anything it sent meanwhile goes out when nobody rides behind it.
        if riders.isEmpty && next.stream.inputLength > 0 { next.relayToServer() }
    }

    /// Keeps a ticket's storage for the next rider's copy (not one grown past a lone read's size by a retry).
    private func spare(_ query: KeptBytes) {
        var query = query
        query.clear(keepingUpTo: loneReadLimit)
        spareQueries.append(query)
    }

    /// The attached client left while riders wait behind its requests: its replies are dropped, theirs still
    /// reach them. False when no rider waits (the caller releases or closes the server as usual).
    func attachedClientLeft() -> Bool {
        guard !riders.isEmpty, let leaving = client, case .active = phase, !stream.isClosed else { return false }
        departed = leaving
        // Reading may be paused for the leaving client's backpressure: nothing else would resume it.
        if stream.readingPaused { stream.resumeReading() }
        if stream.inputLength > 0 { relayToClient() }
        return true
    }

    /// A cancel request from a rider whose statement has not started: sent when it does (see clientDone).
    func cancelWhenStarted(_ rider: ClientConnection) {
        if !cancelsOnStart.contains(where: { $0 === rider }) { cancelsOnStart.append(rider) }
    }

    /// The connection is closing: riders on a replica go to the primary (none of their reply was relayed),
    /// other riders get the error the attached client gets.
    func failRiders(_ why: String) {
        let stranded = zip(riders, riderTickets)
        let onReplica = proxy.role(of: backend) == .replica
        if !riders.isEmpty { adjustOutstanding(by: -riders.count) }
        riders = []
        riderTickets = []
        cancelsOnStart = []
        departed = nil
        boardable = false
        for (rider, ticket) in stranded {
            guard case .riding(let on) = rider.phase, on === self else { continue }
            if onReplica {
                rider.phase = .idle
                rider.retryOnPrimary(ticket.query.bytes ?? [], from: nil, misroutedOn: backend.name)
                continue
            }
            rider.fail(code: SQLState.connectionFailure,
                       message: "server connection to backend \(backend.name) (\(address.description)) lost: \(why)", reason: "server lost")
        }
    }
}

extension ClientConnection {
    /// The input is one whole Query, a lone autocommit read without session effects: its size and fingerprint.
    func loneRead() -> (total: Int, fingerprint: Fingerprint)? {
        guard let (type, lengthField) = stream.peekHeader(), type == FrontendMessageID.query.rawValue, lengthField >= 4 else { return nil }
        let total = Int(lengthField) + 1
        guard total <= loneReadLimit, stream.inputLength == total else { return nil }
        return withQueryText(total: total) { text in
            let (fingerprint, effects) = proxy.classifier.fingerprints.withEffects(utf8: text)
            return mayShare(fingerprint, effects: effects, text: text) ? (total, fingerprint) : nil
        }
    }

    /// Whether this client's lone Query (`text`, of shape `fingerprint`) may share a server with other clients'
    /// (as the one ridden, or as a rider): no session effects in it or waiting to commit, no pin, a shape known
    /// to be quick, and reads only without transaction control.
    func mayShare(_ fingerprint: Fingerprint, effects: Bool, text: UnsafeRawBufferPointer) -> Bool {
        !effects && pendingEffects.isEmpty && !sessionIsPinned && proxy.quickStatements.isQuick(fingerprint.id)
            && proxy.classifier.isPlainRead(fingerprint, utf8: text)
    }

    /// Asking for a server of a saturated pool that nobody waits for yet: rides the server that last began a
    /// lone quick read, if it takes this client's; false otherwise. With clients already waiting it queues
    /// behind them (they ride first, from the queue: boardWaiting), or newcomers would keep overtaking them.
    func rideIfPossible(_ pool: Pool) -> Bool {
        guard pool.isSaturated, pool.machine.waiting.isEmpty, pool.ridingPays(queueLength: 1), let server = pool.boarding else { return false }
        waitingSince = proxy.loop.now
        return ride(server)
    }

    /// Sends this client's lone quick read behind the requests in flight on `server`, if it has one and the
    /// server takes it.
    func ride(_ server: ServerConnection) -> Bool {
        guard greeted, poolMode == .transaction, !heldBegin, server.accepts(self), let (total, fingerprint) = loneRead() else { return false }
        routedQueryFingerprint = nil
        routedWrite = false
        remaining = 0
        phase = .riding(server)
        server.board(self, total: total, fingerprint: fingerprint)
        return true
    }
}

/// Queries longer than this never ride (they are rarely the short reads that gain from it).
let loneReadLimit = 16_384
