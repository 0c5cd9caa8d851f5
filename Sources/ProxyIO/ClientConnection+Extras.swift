// The part of a client's state that most clients never use, or use only while statements run: boxed in
// ClientExtras so an idle client carries one nil pointer instead of ~200 bytes. The box appears on the first
// write of any of these and goes again when the client parks with all of them back at their defaults.
import ProxyCore

final class ClientExtras {
    /// Bytes to send before AuthenticationOk (the SASL final message).
    var authPrefix: [UInt8] = []
    /// Deadline of a read waiting for a replica to replay `minLSN`.
    var replicaWaitDeadline: Double?
    /// SET switchyard.route, answered by the proxy (nil: not set).
    var routePreference: RoutePreference?
    /// SET switchyard.statement_timeout (seconds; 0 = none), answered by the proxy; nil when not set.
    var statementTimeoutOverride: Double?
    /// Fingerprint of the extended-protocol batch being sent (its last Parse or Bind), for the Sync that ends it.
    var batchFingerprint: Fingerprint?
    /// Fingerprint of the Query at the front of the input, from routing it (the relay reuses it for stats).
    var routedQueryFingerprint: Fingerprint?
    /// Whether that Query may have session effects (from routing it too; meaningless without the fingerprint).
    var routedQueryEffects = true
    /// Whether that Query may change data (Classification.writes; meaningless without the fingerprint).
    var routedQueryWrites = true
    /// Fingerprint of the unnamed statement last parsed (a Bind of "" executes it).
    var unnamedFingerprint: Fingerprint?
    /// Session mode: fingerprints of the client's named statements.
    var namedFingerprints: [String: Fingerprint] = [:]
    /// Session parameters and pins that follow the client across servers (transaction mode).
    var session = SessionState()
    /// Effects of statements sent in the current transaction, applied when it commits.
    var pendingEffects: [SessionEffect] = []
    /// The client's protocol-level named statements (transaction mode renames them).
    var statements: ClientStatements = ClientStatements()
    /// Per client statement name, the result-change epoch of its statement when the client last saw it
    /// (Parse, or the "cached plan must not change result type" error); see Proxy.statementEpoch.
    var seenEpochs: [String: Int] = [:]
    /// The client name last bound for each statement id, to credit a server's error to it.
    var lastBoundName: [Int: String] = [:]

    /// Nothing here differs from a new client's (the session, compared by ClientConnection, aside).
    var isDefault: Bool {
        authPrefix.isEmpty
            && replicaWaitDeadline == nil
            && routePreference == nil
            && statementTimeoutOverride == nil
            && batchFingerprint == nil
            && routedQueryFingerprint == nil
            && unnamedFingerprint == nil
            && namedFingerprints.isEmpty
            && pendingEffects.isEmpty
            && statements.count == 0
            && seenEpochs.isEmpty
            && lastBoundName.isEmpty
    }
}

extension ClientConnection {
    /// The session of a client that changed nothing since its startup packet (also the session without a box).
    var startupSession: SessionState {
        var state = SessionState()
        state.parameters = startupParameters
        return state
    }

    /// session.parameters and session.isPinned, read on every transaction: without a box these are the
    /// startup parameters and false, with no session built.
    var sessionParameters: [String: String] { extras?.session.parameters ?? startupParameters }
    var sessionIsPinned: Bool { extras?.session.isPinned ?? false }

    /// The box, made on first use.
    var more: ClientExtras {
        if let extras { return extras }
        let box = ClientExtras()
        box.session = startupSession
        extras = box
        return box
    }

    /// On parking: the statement fingerprints are per transaction (an idle transaction-mode client has no server
    /// holding its unnamed statement), and a box holding only defaults is freed.
    func shedExtras() {
        guard let extras else { return }
        extras.batchFingerprint = nil
        extras.routedQueryFingerprint = nil
        extras.unnamedFingerprint = nil
        if extras.isDefault && extras.session == startupSession { self.extras = nil }
    }

    var authPrefix: [UInt8] {
        _read { if let box = extras { yield box.authPrefix } else { yield [] } }
        set { if !newValue.isEmpty || extras != nil { more.authPrefix = newValue } }
        _modify { let box = more; yield &box.authPrefix }
    }
    var replicaWaitDeadline: Double? {
        _read { if let box = extras { yield box.replicaWaitDeadline } else { yield nil } }
        set { if newValue != nil || extras != nil { more.replicaWaitDeadline = newValue } }
        _modify { let box = more; yield &box.replicaWaitDeadline }
    }
    var routePreference: RoutePreference? {
        _read { if let box = extras { yield box.routePreference } else { yield nil } }
        set { if newValue != nil || extras != nil { more.routePreference = newValue } }
        _modify { let box = more; yield &box.routePreference }
    }
    var statementTimeoutOverride: Double? {
        _read { if let box = extras { yield box.statementTimeoutOverride } else { yield nil } }
        set { if newValue != nil || extras != nil { more.statementTimeoutOverride = newValue } }
        _modify { let box = more; yield &box.statementTimeoutOverride }
    }
    var batchFingerprint: Fingerprint? {
        _read { if let box = extras { yield box.batchFingerprint } else { yield nil } }
        set { if newValue != nil || extras != nil { more.batchFingerprint = newValue } }
        _modify { let box = more; yield &box.batchFingerprint }
    }
    /// With `routedQueryFingerprint`: whether that Query may have session effects.
    var routedQueryEffects: Bool {
        get { extras?.routedQueryEffects ?? true }
        set { extras?.routedQueryEffects = newValue }
    }

    /// With `routedQueryFingerprint`: whether that Query may change data.
    var routedQueryWrites: Bool {
        get { extras?.routedQueryWrites ?? true }
        set { extras?.routedQueryWrites = newValue }
    }

    var routedQueryFingerprint: Fingerprint? {
        _read { if let box = extras { yield box.routedQueryFingerprint } else { yield nil } }
        set { if newValue != nil || extras != nil { more.routedQueryFingerprint = newValue } }
        _modify { let box = more; yield &box.routedQueryFingerprint }
    }
    var unnamedFingerprint: Fingerprint? {
        _read { if let box = extras { yield box.unnamedFingerprint } else { yield nil } }
        set { if newValue != nil || extras != nil { more.unnamedFingerprint = newValue } }
        _modify { let box = more; yield &box.unnamedFingerprint }
    }
    var namedFingerprints: [String: Fingerprint] {
        _read { if let box = extras { yield box.namedFingerprints } else { yield [:] } }
        set { more.namedFingerprints = newValue }
        _modify { let box = more; yield &box.namedFingerprints }
    }
    var session: SessionState {
        _read { if let box = extras { yield box.session } else { yield startupSession } }
        set { more.session = newValue }
        _modify { let box = more; yield &box.session }
    }
    var pendingEffects: [SessionEffect] {
        _read { if let box = extras { yield box.pendingEffects } else { yield [] } }
        set { more.pendingEffects = newValue }
        _modify { let box = more; yield &box.pendingEffects }
    }
    var statements: ClientStatements {
        _read { if let box = extras { yield box.statements } else { yield ClientStatements() } }
        set { more.statements = newValue }
        _modify { let box = more; yield &box.statements }
    }
    var seenEpochs: [String: Int] {
        _read { if let box = extras { yield box.seenEpochs } else { yield [:] } }
        set { more.seenEpochs = newValue }
        _modify { let box = more; yield &box.seenEpochs }
    }
    var lastBoundName: [Int: String] {
        _read { if let box = extras { yield box.lastBoundName } else { yield [:] } }
        set { more.lastBoundName = newValue }
        _modify { let box = more; yield &box.lastBoundName }
    }
}
