// A server connection's requests in flight: one ReadyForQuery owed per Query, Sync or FunctionCall, each
// timed from when it was sent (or from the previous ReadyForQuery when pipelined) and recorded in stats.
import PGWire
import ProxyCore

extension ServerConnection {
    /// The client sent a Query, Sync or FunctionCall: one more ReadyForQuery is owed. `fingerprint` is the
    /// statement's (nil when unknown: too large, a function call).
    func requestSent(_ fingerprint: Fingerprint?) {
        if pendingReady == 0 {
            requestSince = proxy.loop.now
            if transactionStatus == .idle { transactionSince = requestSince }
        }
        pendingReady += 1
        requestFingerprints.append(fingerprint)
    }

    /// The oldest request's fingerprint, taken off the queue.
    func takeRequestFingerprint() -> Fingerprint? {
        guard requestFingerprintsHead < requestFingerprints.count else { return nil }
        // Usually the only one: moved out (no copy of its text to retain and release).
        if requestFingerprintsHead == 0 && requestFingerprints.count == 1 { return requestFingerprints.removeLast() }
        let fingerprint = requestFingerprints[requestFingerprintsHead]
        requestFingerprintsHead += 1
        if requestFingerprintsHead == requestFingerprints.count {
            requestFingerprints.removeAll(keepingCapacity: true)
            requestFingerprintsHead = 0
        }
        return fingerprint
    }

    /// A ReadyForQuery arrived: the oldest request is done (stats, query log); the next one, if pipelined,
    /// starts its clock now.
    func requestAnswered() {
        let now = proxy.loop.now
        if pendingReady > 0 {
            pendingReady -= 1
            let fingerprint = takeRequestFingerprint()
            // Statement durations matter to the shared pipeline only when the pool is saturated.
            if let fingerprint, proxy.pipelining, pool.isSaturated {
                proxy.quickStatements.observe(fingerprint.id, micros: UInt64(max(0, now - requestSince) * 1e6))
            }
            let outcome: StatementOutcome = cancelSentAt != nil ? .timeout : requestError.map { .error($0) } ?? .ok
            let transactionSeconds: Double? = transactionStatus == .idle ? now - transactionSince : nil
            proxy.statementFinished(on: self, fingerprint: fingerprint, seconds: now - requestSince, rows: requestRows,
                                    outcome: outcome, transactionSeconds: transactionSeconds, bytesIn: bytesIn, bytesOut: bytesOut)
            waitMicros = 0
        }
        bytesIn = 0
        bytesOut = 0
        requestRows = 0
        requestError = nil
        requestSince = pendingReady > 0 ? now : 0
        readySince = now
        cancelSentAt = nil
        cancelInFlight = false
    }

    /// A rider became the attached client: its statement, its transaction, started at the last ReadyForQuery.
    func startedRiderStatement() {
        transactionSince = requestSince
    }

    /// The rows count at the end of a CommandComplete tag ("SELECT 3", "INSERT 0 5"), 0 when none.
    /// The message starts `offset` bytes into the input.
    func noteCommandComplete(total: Int, at offset: Int) {
        guard total <= 64 else { return }
        requestRows += stream.withSmallInput(at: offset, total) { bytes in
            var i = total - 1
            while i > 5 && bytes[i] == 0 { i -= 1 }
            var n = 0
            var scale = 1
            while i > 5, bytes[i] >= 48, bytes[i] <= 57 {
                n += Int(bytes[i] - 48) * scale
                scale *= 10
                i -= 1
            }
            return n
        }
    }

    /// The first error's SQLSTATE in the current request (read from a whole ErrorResponse in the input).
    func noteError(total: Int) {
        guard requestError == nil, total <= 65_536, stream.inputLength >= total else { return }
        requestError = ErrorFields(payload: Array(stream.peek(max: total).dropFirst(5))).sqlState
    }

    /// After the proxy cancelled a statement for statement_timeout, the server's "canceling statement due
    /// to user request" becomes Switchyard's statement-timeout error. True when the message was replaced.
    func replacedTimeoutError(total: Int, out: Stream) -> Bool {
        guard cancelSentAt != nil, total <= 65_536, stream.inputLength >= total else { return false }
        let fields = ErrorFields(payload: Array(stream.peek(max: total).dropFirst(5)))
        guard fields.sqlState == SQLState.queryCanceled else { return false }
        stream.drain(total)
        out.write(ProxyMessages.error(severity: "ERROR", code: SQLState.queryCanceled,
                                      message: Self.statementTimeoutMessage(cancelledAfter)))
        return true
    }

    static func statementTimeoutMessage(_ seconds: Double) -> String {
        "canceling statement due to statement timeout (switchyard statement_timeout = \(ConfigUnits.renderDuration(seconds)))"
    }
}
