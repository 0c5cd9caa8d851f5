// Transaction-mode relay from client to server: counts what each message owes, renames protocol-level
// prepared statements into the proxy's server-side names (preparing them on servers that lack them),
// and collects session effects of queries. Bind is rewritten head-only; its parameters stream through.
import Foundation
import PGWire
import ProxyCore

/// What a held BEGIN sends (defer_begin): built once.
private let heldBeginQuery = ProxyMessages.query("BEGIN")
private let heldBeginReply = ProxyMessages.commandComplete("BEGIN") + ProxyMessages.readyForQuery(.inTransaction)

/// Query and Parse messages up to this size are read whole to look for session effects; larger ones are forwarded unread.
let inspectLimit = 1 << 20

extension ClientConnection {
    func relayTransaction(to server: ServerConnection) {
        let out = server.stream
        let maxLength = proxy.config.proxy.maxPacketSize
        if heldBegin { sendHeldBegin(to: server) }
        var walQueryBehind = false
        loop: while isActive(on: server) {
            if remaining > 0 {
                guard forwardOwedBytes(to: server) else { break }
                continue
            }
            // Riders' statements follow this client's on the server: what it sends next waits until its
            // transaction is over (then it goes to a server like any other batch).
            if !server.riders.isEmpty { break }
            guard let header = peekFrameHeader(maxLength: maxLength) else { break }
            let (type, lengthField, total) = (header.type, Int32(header.length), header.totalLength)
            let small = total <= inspectLimit
            server.boardable = false
            if server.tracker.isSkippingUntilSync && type != FrontendMessageID.sync.rawValue && type != FrontendMessageID.terminate.rawValue {
                // The server ignores everything until Sync after an error: forward as is, change nothing.
                remaining = total
                continue
            }
            switch FrontendMessageID(rawValue: type) {
            case .terminate?:
                stream.drain(min(stream.inputLength, total))
                return disconnected(reason: "client terminated")
            case .query?:
                if small {
                    guard stream.inputLength >= total else { break loop }
                    // Routed: the classifier's fingerprint, and a scan for session effects. Otherwise both come
                    // from the fingerprint cache (the scan's answer is cached per shape without strings).
                    let fingerprint: Fingerprint
                    let effects: Bool
                    if let routed = routedQueryFingerprint {
                        fingerprint = routed
                        effects = routedQueryEffects
                        if routedQueryWrites { transactionWrote = true }
                    } else if classifiesWrites, let (f, e) = classifyForWrites(total: total) {
                        // Classified here (read-your-writes needs to know whether it may write): the classifier
                        // gives the fingerprint and the effects answer too.
                        (fingerprint, effects) = (f, e)
                    } else {
                        (fingerprint, effects) = withQueryText(total: total) { proxy.classifier.fingerprints.withEffects(utf8: $0) }
                    }
                    if effects { noteEffects(ofQueryPayload: stream.peek(max: total).dropFirst(5), server: server) }
                    // A lone read on a replica outside a transaction may be retried on the primary (safety net).
                    let onReplica = proxy.role(of: server.backend) == .replica
                    let lone = server.tracker.isEmpty && server.transactionStatus == .idle && stream.inputLength == total
                    if onReplica && lone { server.retryable.fill(total, from: stream) } else { server.retryable.clear() }
                    if lone { offerPipeline(on: server, fingerprint: fingerprint, effects: effects, total: total) }
                    // The COMMIT of a write transaction: the read-your-writes WAL position query goes right behind it.
                    if wantsWalPosition && server.transactionStatus != .idle && server.tracker.isEmpty && stream.inputLength == total
                        && !server.walQueryInFlight && stream.withContiguousInput(total, { PlainTransactionStatement.isCommit(payload: UnsafeRawBufferPointer(rebasing: $0[5...])) }) {
                        walQueryBehind = true
                    }
                    server.requestSent(fingerprint)
                    routedQueryFingerprint = nil
                } else {
                    // Not read: it may write.
                    transactionWrote = true
                    server.retryable.clear()
                    server.requestSent(nil)
                }
                server.tracker.sent(.query)
                server.unsynced = false
            case .parse?:
                guard small else { return fail(code: SQLState.protocolViolation, message: "Parse message too large", reason: "protocol violation") }
                guard stream.inputLength >= total else { break loop }
                let payload = Array(stream.peek(max: total).dropFirst(5))
                let parse: ParseMessage
                do { parse = try ParseMessage(payload: payload) } catch {
                    return fail(code: SQLState.protocolViolation, message: error.message, reason: "protocol violation")
                }
                server.unsynced = true
                if parse.name.isEmpty {
                    noteEffects(ofQuery: parse.query, server: server)
                    server.tracker.sent(.parse(statement: nil))
                    // Classified when read-your-writes needs it (a named statement is, at its Bind): the
                    // classifier gives the fingerprint too.
                    let classified = classifiesWrites
                    if classified && proxy.classifier.classify(parse.query).writes { transactionWrote = true }
                    unnamedFingerprint = (classified ? proxy.classifier.lastFingerprint : nil) ?? proxy.classifier.fingerprints.of(parse.query)
                    batchFingerprint = unnamedFingerprint
                    break
                }
                stream.drain(total)
                let id = proxy.registerStatement(StatementKey(query: parse.query, parameterTypes: parse.parameterTypes))
                batchFingerprint = proxy.statementFingerprint(id)
                statements.define(parse.name, id: id)
                seenEpochs[parse.name] = proxy.statementEpoch(id)
                if server.hasCurrentStatement(id) {
                    server.tracker.sent(.parse(statement: id), .synthesize(ProxyMessages.parseComplete()))
                } else {
                    prepare(id, on: server, disposition: .forward)
                }
                continue
            case .bind?:
                server.unsynced = true
                let prefix = stream.peek(max: min(total, 5 + 2 * 1025))
                let head: BindHead
                do {
                    guard let h = try BindHead.parse(prefix: Array(prefix.dropFirst(5))) else {
                        if stream.inputLength >= total {
                            return fail(code: SQLState.protocolViolation, message: ProtocolViolation.malformedMessage(type: type).message, reason: "protocol violation")
                        }
                        break loop
                    }
                    head = h
                } catch {
                    return fail(code: SQLState.protocolViolation, message: error.message, reason: "protocol violation")
                }
                guard !head.statement.isEmpty, let id = statements.id(for: head.statement) else {
                    server.tracker.sent(.bind(statement: nil))
                    batchFingerprint = unnamedFingerprint
                    break
                }
                batchFingerprint = proxy.statementFingerprint(id)
                // A statement parsed in another transaction runs here.
                if classifiesWrites, proxy.statementKey(id).map({ proxy.classifier.classify($0.query).writes }) ?? true { transactionWrote = true }
                let epoch = proxy.statementEpoch(id)
                lastBoundName[id] = head.statement
                if (seenEpochs[head.statement] ?? 0) < epoch {
                    // DDL changed this statement's result since the client prepared it: this Bind fails with
                    // "cached plan must not change result type" (the relay rewrites the server's error).
                    seenEpochs[head.statement] = epoch
                    out.write(head.rewrittenHead(statement: "sy_expired", originalLength: Int(lengthField)))
                    stream.drain(5 + head.headLength)
                    server.tracker.sent(.bind(statement: -id))
                    remaining = total - 5 - head.headLength
                    continue
                }
                ensurePrepared(id, on: server)
                if let effects = proxy.statementEffects[id] { note(effects, server: server) }
                out.write(head.rewrittenHead(statement: StatementRegistry.serverName(id), originalLength: Int(lengthField)))
                stream.drain(5 + head.headLength)
                server.tracker.sent(.bind(statement: id))
                remaining = total - 5 - head.headLength
                continue
            case .describe?, .close?:
                server.unsynced = true
                guard small else { return fail(code: SQLState.protocolViolation, message: ProtocolViolation.malformedMessage(type: type).message, reason: "protocol violation") }
                guard stream.inputLength >= total else { break loop }
                let payload = Array(stream.peek(max: total).dropFirst(5))
                let isDescribe = type == FrontendMessageID.describe.rawValue
                let kind: UInt8
                let name: String
                do {
                    if isDescribe {
                        let d = try DescribeMessage(payload: payload)
                        (kind, name) = (d.kind, d.name)
                    } else {
                        let c = try CloseMessage(payload: payload)
                        (kind, name) = (c.kind, c.name)
                    }
                } catch {
                    return fail(code: SQLState.protocolViolation, message: error.message, reason: "protocol violation")
                }
                let isStatement = kind == UInt8(ascii: "S")
                if !isStatement || name.isEmpty || statements.id(for: name) == nil {
                    server.tracker.sent(isDescribe ? (isStatement ? .describeStatement : .describePortal) : .close)
                    break
                }
                stream.drain(total)
                if isDescribe {
                    let id = statements.id(for: name)!
                    ensurePrepared(id, on: server)
                    out.write(DescribeMessage(kind: kind, name: StatementRegistry.serverName(id)).encoded())
                    server.tracker.sent(.describeStatement)
                } else {
                    // The statement lives on in the server's cache; the client's name is gone.
                    _ = statements.remove(name)
                    seenEpochs[name] = nil
                    server.tracker.sent(.close, .synthesize(ProxyMessages.closeComplete()))
                }
                continue
            case .execute?:
                server.retryable.clear()
                server.unsynced = true
                server.tracker.sent(.execute)
            case .sync?:
                server.unsynced = false
                server.requestSent(batchFingerprint)
                batchFingerprint = nil
                server.tracker.sent(.sync)
            case .flush?:
                server.unsynced = true
            case .functionCall?:
                transactionWrote = true
                server.requestSent(nil)
                server.tracker.sent(.functionCall)
            case .copyData?, .copyDone?, .copyFail?, .password?, nil:
                break
            }
            remaining = total
        }
        guard case .active = phase else { return }
        if walQueryBehind && remaining == 0 { server.sendWalQueryBehindCommit() }
        // Its lone quick read is on its way: clients waiting for a server may ride behind it.
        if server.boardable && remaining == 0 && server.riders.isEmpty && !server.pool.machine.waiting.isEmpty {
            server.pool.boardWaiting(server)
        }
        let due = server.tracker.takeDueSynthesized()
        if !due.isEmpty { stream.write(due) }
        if out.outputLength > pauseBytes {
            stream.pauseReading()
            out.setWriteLowWatermark(resumeBytes)
        }
    }

    /// The BEGIN the proxy answered goes first, in the same write as the client's next statement; its
    /// replies (CommandComplete, ReadyForQuery 'T') were answered already and are dropped. It is timed and
    /// recorded like any statement.
    private func sendHeldBegin(to server: ServerConnection) {
        heldBegin = false
        server.stream.write(heldBeginQuery)
        server.requestSent(proxy.beginFingerprint)
        server.tracker.sent(.query, .swallow)
        server.unsynced = false
        server.boardable = false
    }

    /// A lone autocommit read is going to `server`: other clients' lone reads may ride behind it
    /// (ServerConnection+Pipeline.swift).
    private func offerPipeline(on server: ServerConnection, fingerprint: Fingerprint, effects: Bool, total: Int) {
        // Riders come only while the pool is saturated: with servers to spare, nothing to do.
        guard proxy.pipelining, server.pool.isSaturated, total <= loneReadLimit, !routedWrite,
              withQueryText(total: total, { mayShare(fingerprint, effects: effects, text: $0) })
        else { return }
        server.boardable = true
        server.pool.boarding = server
    }

    /// Transaction mode, no server: answer what needs no server (a Parse of a statement known to be good, a
    /// Close of a statement, a Sync), then ask for a server if anything else is waiting. Drivers that prepare
    /// synchronously (pgbench -M prepared) would otherwise deadlock behind clients holding every server.
    func idleInput() {
        // Reading paused for a server's backpressure resumes once no server is attached (a transaction can end,
        // e.g. a failed COPY, with the server's output still full): nothing else would wake this client.
        if stream.readingPaused { stream.resumeReading() }
        while case .idle = phase {
            guard let (type, lengthField) = stream.peekHeader() else { return }
            // Leaving needs no server (a BEGIN held by the proxy never reached one).
            if type == FrontendMessageID.terminate.rawValue { return disconnected(reason: "client terminated") }
            // Inside a transaction the proxy began for the client: whatever comes next needs its server.
            if heldBegin { return requestServer() }
            let total = Int(lengthField) + 1
            guard lengthField >= 4, total <= inspectLimit else { return requestServer() }
            guard stream.inputLength >= total else { return }
            var reply: [UInt8]
            switch FrontendMessageID(rawValue: type) {
            case .parse?:
                guard let parse = try? ParseMessage(payload: Array(stream.peek(max: total).dropFirst(5))), !parse.name.isEmpty,
                      let id = proxy.knownValidStatement(StatementKey(query: parse.query, parameterTypes: parse.parameterTypes)),
                      proxy.statementEffects[id] == nil
                else { return requestServer() }
                statements.define(parse.name, id: id)
                seenEpochs[parse.name] = proxy.statementEpoch(id)
                reply = ProxyMessages.parseComplete()
            case .close?:
                guard let close = try? CloseMessage(payload: Array(stream.peek(max: total).dropFirst(5))),
                      close.kind == UInt8(ascii: "S"), !close.name.isEmpty, statements.id(for: close.name) != nil
                else { return requestServer() }
                _ = statements.remove(close.name)
                seenEpochs[close.name] = nil
                reply = ProxyMessages.closeComplete()
            case .query?:
                if let answer = proxySettingReply(total: total, status: .idle) {
                    reply = answer
                } else if proxy.config.proxy.deferBegin == .on,
                          let tag = stream.withContiguousInput(total, { PlainTransactionStatement.beginTag(payload: UnsafeRawBufferPointer(rebasing: $0[5...])) }) {
                    // Answered here; sent with the next statement (sendHeldBegin), which then needs a server.
                    stream.drain(total)
                    heldBegin = true
                    idleSince = proxy.loop.now
                    reply = tag == "BEGIN" ? heldBeginReply : ProxyMessages.commandComplete(tag) + ProxyMessages.readyForQuery(.inTransaction)
                } else {
                    return requestServer()
                }
            case .sync?:
                reply = ProxyMessages.readyForQuery(.idle)
            case .flush?:
                reply = []
            default:
                return requestServer()
            }
            if type != FrontendMessageID.query.rawValue { stream.drain(total) }
            stream.write(reply)
        }
    }

    /// Makes sure the server has statement `id` before a Bind or Describe that uses it.
    private func ensurePrepared(_ id: Int, on server: ServerConnection) {
        if server.hasCurrentStatement(id) { return }
        prepare(id, on: server, disposition: .swallow)
    }

    /// Sends Parse for `id` (closing a stale copy and evicted statements first). A client's own Parse is
    /// answered by the server (`.forward`); one the proxy injects has its ParseComplete dropped (`.swallow`).
    private func prepare(_ id: Int, on server: ServerConnection, disposition: ResponseTracker.Disposition) {
        guard let key = proxy.statementKey(id) else { return }
        let out = server.stream
        if server.staleStatements.remove(id) != nil {
            out.write(CloseMessage(kind: UInt8(ascii: "S"), name: StatementRegistry.serverName(id)).encoded())
            server.tracker.sent(.close, .swallow)
            server.statements.remove(id)
        }
        for evicted in server.statements.insert(id) {
            out.write(CloseMessage(kind: UInt8(ascii: "S"), name: StatementRegistry.serverName(evicted)).encoded())
            server.tracker.sent(.evict(statement: evicted), .swallow)
        }
        out.write(ParseMessage(name: StatementRegistry.serverName(id), query: key.query, parameterTypes: key.parameterTypes).encoded())
        server.preparedEpoch[id] = proxy.statementEpoch(id)
        server.tracker.sent(.parse(statement: id), disposition)
        server.parsedSinceReady.append(id)
    }

    /// The fingerprint of the whole Query message of `total` bytes at the front of the input (stats and the
    /// query log group statements by it).
    func queryFingerprint(total: Int) -> Fingerprint {
        withQueryText(total: total) { proxy.classifier.fingerprints.of(utf8: $0) }
    }

    /// The text of the Query message of `total` bytes at the front of the input: after the 5-byte header,
    /// without the terminating NUL (an empty or unterminated Query gives what is there, never a bad range).
    func withQueryText<R>(total: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        stream.withContiguousInput(total) { bytes in body(UnsafeRawBufferPointer(rebasing: bytes[5..<max(5, total - 1)])) }
    }

    private func noteEffects(ofQueryPayload payload: ArraySlice<UInt8>, server: ServerConnection) {
        let found = payload.withUnsafeBytes { SessionAnalyzer.mayHaveEffects($0) }
        guard found else { return }
        let text = String(decoding: payload.dropLast(payload.last == 0 ? 1 : 0), as: UTF8.self)
        noteEffects(ofQuery: text, server: server)
    }

    private func noteEffects(ofQuery sql: String, server: ServerConnection) {
        guard SessionAnalyzer.mayHaveEffects(sql) else { return }
        note(SessionAnalyzer.effects(of: sql), server: server)
    }

    private func note(_ effects: [SessionEffect], server: ServerConnection) {
        guard !effects.isEmpty else { return }
        for effect in effects {
            switch effect {
            case .listen, .advisoryLock, .createTemp, .declareWithHold, .sqlPrepare, .unknownSessionChange:
                // Pins take effect at once (conservative); their release waits for commit like the rest.
                session.apply(effect)
            case .set, .reset, .resetAll, .discardAll, .discardTemp, .deallocate, .unlisten, .advisoryUnlock,
                 .advisoryUnlockAll, .closeCursor:
                pendingEffects.append(effect)
            }
        }
        server.watchCommandTags = !pendingEffects.isEmpty
    }
}

extension ClientConnection {
    /// Read or write for the batch waiting in the input (up to the first Query or Sync), and the client's
    /// route preference (SET switchyard.route, or a /* switchyard:... */ hint in the text).
    func pendingRoute() -> (RouteRequest, RoutePreference) {
        // Only a primary: nothing to decide, so nothing is classified.
        if proxy.config.replicas.isEmpty { return (.write, .auto) }
        // Inside a transaction begun with a plain BEGIN (answered by the proxy): routed as that BEGIN was.
        var write = heldBegin
        var hint: RouteHint?
        var offset = 0
        let available = stream.inputLength
        scan: while !heldBegin, offset + 5 <= available, offset < inspectLimit {
            guard let (type, length) = stream.peekHeader(at: offset) else { break }
            let lengthField = Int(length)
            let total = lengthField + 1
            guard lengthField >= 4 else { break }
            switch FrontendMessageID(rawValue: type) {
            case .query? where offset == 0:
                // The commonest batch, one Query: classified in place, and the relay takes its fingerprint and
                // effects answer from here (routedQueryFingerprint, routedQueryEffects).
                guard total <= available, total <= inspectLimit else { write = true; break scan }
                let c = withQueryText(total: total) { proxy.classifier.classify(utf8: $0) }
                hint = proxy.classifier.lastHint ?? hint
                if !Self.isRead(c) { write = true }
                routedQueryFingerprint = proxy.classifier.lastFingerprint
                routedQueryEffects = proxy.classifier.lastMayHaveEffects
                routedQueryWrites = c.writes
                break scan
            case .query?, .parse?:
                guard offset + total <= available, total <= inspectLimit else { write = true; break scan }
                let payload = Array(stream.peek(max: offset + total).dropFirst(offset + 5))
                let sql: String
                if type == FrontendMessageID.query.rawValue {
                    sql = String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
                } else {
                    guard let parse = try? ParseMessage(payload: payload) else { write = true; break scan }
                    sql = parse.query
                }
                hint = RouteHint.find(in: sql) ?? hint
                if !classifiedAsRead(sql) { write = true }
                if type == FrontendMessageID.query.rawValue {
                    // A Query behind other messages: the relay fingerprints it itself.
                    routedQueryFingerprint = nil
                    break scan
                }
            case .bind?:
                let prefix = Array(stream.peek(max: min(offset + total, offset + 5 + 2 * 1025)).dropFirst(offset + 5))
                if let head = try? BindHead.parse(prefix: prefix), !head.statement.isEmpty {
                    guard let id = statements.id(for: head.statement), let key = proxy.statementKey(id) else { write = true; break scan }
                    if !classifiedAsRead(key.query) { write = true }
                }
            case .functionCall?:
                write = true
            case .sync?:
                break scan
            case .describe?, .execute?, .close?, .flush?, .copyData?, .copyDone?, .copyFail?, .password?, .terminate?, nil:
                break
            }
            offset += total
        }
        var preference = routePreference ?? .auto
        if routePreference == nil, routeParameterPossible, let setting = sessionParameters[Self.routeParameter] {
            preference = RoutePreference(rawValue: Self.unquoted(setting)) ?? .auto
        }
        switch hint {
        case .primary?: preference = .primary
        case .replica?: preference = .replica
        case nil: break
        }
        return (write ? .write : .read, preference)
    }

    /// The proxy's own session settings, `SET/RESET switchyard.route` and `switchyard.statement_timeout`: a
    /// Query that is only one of them is answered here and never sent to a server (`primary` is a reserved
    /// word there). Returns the reply (CommandComplete + ReadyForQuery with `status`) after applying it, or
    /// nil when the buffered Query of `total` bytes is anything else.
    func proxySettingReply(total: Int, status: TransactionStatus) -> [UInt8]? {
        guard stream.inputLength >= total,
              stream.withContiguousInput(total, { SessionAnalyzer.startsWithSetOrReset(UnsafeRawBufferPointer(rebasing: $0[5...])) })
        else { return nil }
        let sql = String(decoding: stream.peek(max: total).dropFirst(5).prefix { $0 != 0 }, as: UTF8.self)
        guard sql.range(of: "switchyard.", options: .caseInsensitive) != nil, SQLLexer.statements(sql).count == 1 else { return nil }
        let tag: String
        switch SessionAnalyzer.effects(of: sql).first {
        case .set(let name, let value)? where name.lowercased() == "switchyard.route":
            guard let preference = RoutePreference(rawValue: Self.unquoted(value)) else {
                return settingError("invalid value for parameter \"switchyard.route\": \(value) (primary, replica or auto)", total: total, status: status)
            }
            routePreference = preference
            tag = "SET"
        case .reset(let name)? where name.lowercased() == "switchyard.route":
            routePreference = .auto
            tag = "RESET"
        case .set(let name, let value)? where name.lowercased() == "switchyard.statement_timeout":
            if Self.unquoted(value) == "default" {
                statementTimeoutOverride = nil
            } else {
                guard let seconds = Timeouts.parseSessionTimeout(value) else {
                    return settingError("invalid value for parameter \"switchyard.statement_timeout\": \(value) (e.g. '2s', '500ms' or 2000)", total: total, status: status)
                }
                statementTimeoutOverride = seconds
            }
            tag = "SET"
        case .reset(let name)? where name.lowercased() == "switchyard.statement_timeout":
            statementTimeoutOverride = nil
            tag = "RESET"
        default:
            return nil
        }
        stream.drain(total)
        routedQueryFingerprint = nil
        return ProxyMessages.commandComplete(tag) + ProxyMessages.readyForQuery(status)
    }

    private func settingError(_ message: String, total: Int, status: TransactionStatus) -> [UInt8] {
        stream.drain(total)
        return ProxyMessages.error(severity: "ERROR", code: SQLState.invalidParameterValue, message: message)
            + ProxyMessages.readyForQuery(status)
    }

    static func unquoted(_ value: String) -> String {
        value.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")).lowercased()
    }

    /// Whether the statements sent now are classified for `transactionWrote` (a transaction routed as a write,
    /// read-your-writes on, nothing that may write seen yet).
    var classifiesWrites: Bool {
        routedWrite && !transactionWrote && proxy.config.proxy.readYourWrites == .lsn
    }

    /// The Query at the front of the input (`total` bytes) classified: `transactionWrote` is set when it may
    /// write; its fingerprint and effects answer, or nil with the classifier's cache off (then the caller
    /// fingerprints it).
    private func classifyForWrites(total: Int) -> (Fingerprint, Bool)? {
        let c = withQueryText(total: total) { proxy.classifier.classify(utf8: $0) }
        if c.writes { transactionWrote = true }
        guard let fingerprint = proxy.classifier.lastFingerprint else { return nil }
        return (fingerprint, proxy.classifier.lastMayHaveEffects)
    }

    /// A statement that may run on a replica: a read by the classifier, or BEGIN READ ONLY.
    private func classifiedAsRead(_ sql: String) -> Bool {
        Self.isRead(proxy.classifier.classify(sql))
    }

    private static func isRead(_ c: Classification) -> Bool {
        if case .begin(readOnly: true)? = c.transaction { return true }
        return c.route == .replica
    }
}
