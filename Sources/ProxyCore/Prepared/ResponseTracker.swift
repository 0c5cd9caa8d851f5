// Per server connection: the client requests still owed a response, in order, so that responses the proxy
// swallows (injected Parse, eviction Close) or synthesizes (Parse/Close answered locally) line up with the server's.

import PGWire

/// Keeps, per server connection, one entry per request still owed a response, in order, so that
/// swallowed and synthesized responses line up with the server's real ones. A ring buffer: no
/// allocation per message once warm.
public struct ResponseTracker: Sendable {
    public enum Request: Equatable, Sendable {
        /// Parse; `statement` is the global id of a named statement, nil for the unnamed one.
        case parse(statement: Int?)
        case bind(statement: Int?)
        case describeStatement
        case describePortal
        case execute
        /// A client's Close (of a portal, or a statement passed through).
        case close
        /// A Close the proxy sent itself to evict `statement` from the server's cache.
        case evict(statement: Int)
        case sync
        case query
        case functionCall
    }

    public enum Disposition: Equatable, Sendable {
        /// The server's response goes to the client.
        case forward
        /// The server's response is dropped (the proxy sent the request itself).
        case swallow
        /// The request was not sent to the server; these bytes answer it when its turn comes.
        case synthesize([UInt8])
    }

    public struct Step: Equatable, Sendable {
        /// False: drop this server message.
        public var forward: Bool
        /// Set when this message is an ErrorResponse: the request it answers (nil if none was pending).
        public var failed: Request?
        /// The message did not fit the request at the head (or none was pending): worth a log line.
        public var unexpected: Bool
        /// The parts that are almost always empty, out of line: a step is made for every server message
        /// and the common one then carries (and destroys) no arrays.
        private var rare: Rare?

        private struct Rare: Equatable, Sendable {
            var emitBefore: [UInt8] = []
            var unprepared: [Int] = []
            var notClosed: [Int] = []
        }

        /// Synthesized responses now due, to write to the client BEFORE this message.
        public var emitBefore: [UInt8] {
            get { rare?.emitBefore ?? [] }
            set { rare = rare ?? Rare(); rare!.emitBefore = newValue }
        }
        /// Whether `emitBefore` has bytes (without making an empty array for the usual step).
        public var emitsBefore: Bool {
            guard let rare else { return false }
            return !rare.emitBefore.isEmpty
        }
        /// Statements the server did not prepare after all: their Parse failed or was skipped after an
        /// error. Remove them from the server's cache.
        public var unprepared: [Int] {
            get { rare?.unprepared ?? [] }
            set { rare = rare ?? Rare(); rare!.unprepared = newValue }
        }
        /// Statements the server did not close after all: their eviction Close was skipped after an
        /// error. They are still prepared there although the cache dropped them.
        public var notClosed: [Int] {
            get { rare?.notClosed ?? [] }
            set { rare = rare ?? Rare(); rare!.notClosed = newValue }
        }

        public init(emitBefore: [UInt8] = [], forward: Bool = true, failed: Request? = nil,
                    unprepared: [Int] = [], notClosed: [Int] = [], unexpected: Bool = false) {
            self.forward = forward
            self.failed = failed
            self.unexpected = unexpected
            if !emitBefore.isEmpty || !unprepared.isEmpty || !notClosed.isEmpty {
                rare = Rare(emitBefore: emitBefore, unprepared: unprepared, notClosed: notClosed)
            }
        }

        /// A step with nothing out of line (no arrays to make or destroy): the one made for almost every
        /// server message.
        @inline(__always)
        init(forward: Bool, unexpected: Bool) {
            self.forward = forward
            self.failed = nil
            self.unexpected = unexpected
            self.rare = nil
        }

        public static func == (a: Step, b: Step) -> Bool {
            a.forward == b.forward && a.failed == b.failed && a.unexpected == b.unexpected
                && a.emitBefore == b.emitBefore && a.unprepared == b.unprepared && a.notClosed == b.notClosed
        }
    }

    /// What becomes of an entry's response; a `.synthesize` entry's bytes wait in `synthesizedBytes`, in the
    /// same order, so that an entry holds no reference (moving one in and out of the ring costs no ARC).
    private enum Handling: Sendable { case forward, swallow, synthesize }

    private struct Entry: Sendable {
        var request: Request
        var handling: Handling
    }

    private var slots: [Entry?] = []
    /// The bytes of the `.synthesize` entries outstanding, oldest first.
    private var synthesizedBytes: [[UInt8]] = []
    private var head = 0
    private var count = 0
    /// sync + query + functionCall entries outstanding.
    public private(set) var pendingSyncs = 0
    /// The server hit an error in an extended-protocol request and ignores everything until the next Sync,
    /// which has not been sent yet. Requests sent meanwhile are not tracked (the server will not answer them).
    public private(set) var isSkippingUntilSync = false
    /// Entries with a `.synthesize` disposition outstanding: none (the usual case) means nothing can be due.
    private var synthesizedCount = 0
    /// The head entry is a simple Query whose responses go to the client (kept by push, pop and reset).
    private var headIsForwardedQuery = false

    private mutating func updateHead() {
        if count > 0, let e = slots[head], e.request == .query, e.handling == .forward {
            headIsForwardedQuery = true
        } else {
            headIsForwardedQuery = false
        }
    }

    public init() {}

    public var isEmpty: Bool { count == 0 }
    /// Requests still owed a response.
    public var pendingCount: Int { count }

    /// A request was written to the server (or, with `.synthesize`, answered locally) after all earlier ones.
    /// Returns false if it was dropped because the server is skipping until Sync (nothing will answer it).
    @discardableResult
    public mutating func sent(_ request: Request, _ disposition: Disposition = .forward) -> Bool {
        if isSkippingUntilSync {
            guard request == .sync else { return false }
            isSkippingUntilSync = false
        }
        let handling: Handling
        switch disposition {
        case .forward: handling = .forward
        case .swallow: handling = .swallow
        case .synthesize(let bytes):
            handling = .synthesize
            synthesizedBytes.append(bytes)
            synthesizedCount += 1
        }
        push(Entry(request: request, handling: handling))
        if Self.endsAtReadyForQuery(request) { pendingSyncs += 1 }
        return true
    }

    /// A server message of type `type` (its first byte) reached a message boundary.
    @inline(__always)
    public mutating func received(type: UInt8) -> Step {
        // The commonest replies to a simple Query (its rows, its description, its tag) go to the client and
        // leave the Query at the head: no lookup of the head entry.
        if headIsForwardedQuery && (type == BackendMessageID.dataRow.rawValue || type == BackendMessageID.rowDescription.rawValue
                                    || type == BackendMessageID.commandComplete.rawValue) {
            return Step(forward: true, unexpected: false)
        }
        return receivedAtHead(type: type)
    }

    private mutating func receivedAtHead(type: UInt8) -> Step {
        guard let message = BackendMessageID(rawValue: type) else { return Step(forward: true, unexpected: true) }
        switch message {
        case .noticeResponse, .parameterStatus, .notificationResponse:
            return Step(forward: true, unexpected: false)
        case .errorResponse:
            return errorReceived()
        case .authentication, .backendKeyData, .bindComplete, .closeComplete, .commandComplete, .copyData,
             .copyDone, .copyInResponse, .copyOutResponse, .copyBothResponse, .dataRow, .emptyQueryResponse,
             .functionCallResponse, .negotiateProtocolVersion, .noData, .parameterDescription, .parseComplete,
             .portalSuspended, .readyForQuery, .rowDescription:
            break
        }
        // Synthesized responses due before this message: none unless some are outstanding (the usual step
        // carries no array).
        let due = synthesizedCount == 0 ? nil : takeDueSynthesized()
        var step = matchHead(message)
        if let due, !due.isEmpty { step.emitBefore = due }
        return step
    }

    /// What `message` does to the request at the head.
    private mutating func matchHead(_ message: BackendMessageID) -> Step {
        guard let entry = peek() else { return Step(forward: true, unexpected: true) }
        let forward = entry.handling != .swallow
        switch Self.outcome(of: entry.request, on: message) {
        case .continues:
            return Step(forward: forward, unexpected: false)
        case .ends:
            pop()
            return Step(forward: forward, unexpected: false)
        case .mismatch:
            if message == .readyForQuery { resync() }
            return Step(forward: true, unexpected: true)
        }
    }

    /// Synthesized responses at the head that are due now without waiting for the server (call after
    /// queuing client requests, e.g. a Parse answered locally followed by Flush).
    public mutating func takeDueSynthesized() -> [UInt8] {
        guard synthesizedCount > 0 else { return [] }
        var out: [UInt8] = []
        while let entry = peek(), entry.handling == .synthesize {
            if out.isEmpty { out = synthesizedBytes[0] } else { out.append(contentsOf: synthesizedBytes[0]) }
            pop()
        }
        return out
    }

    /// The server connection was closed.
    public mutating func reset() {
        // Popped slots are empty already: only the occupied ones are cleared (after a normal transaction, none).
        var i = head
        for _ in 0..<count {
            slots[i] = nil
            i = i + 1 == slots.count ? 0 : i + 1
        }
        head = 0
        count = 0
        headIsForwardedQuery = false
        pendingSyncs = 0
        synthesizedCount = 0
        synthesizedBytes.removeAll()
        isSkippingUntilSync = false
    }

    // MARK: - Errors

    private mutating func errorReceived() -> Step {
        let due = takeDueSynthesized()
        guard let entry = peek() else { return Step(emitBefore: due, unexpected: false) }
        var step = Step(emitBefore: due, failed: entry.request)
        if Self.endsAtReadyForQuery(entry.request) {
            // Query, FunctionCall, or a failing commit at Sync: ReadyForQuery still follows.
            return step
        }
        // Extended protocol: Postgres ignores everything up to the next Sync.
        while let e = peek(), e.request != .sync {
            switch (e.request, e.handling) {
            case (.parse(let id?), .forward), (.parse(let id?), .swallow): step.unprepared.append(id)
            case (.evict(let id), .forward), (.evict(let id), .swallow): step.notClosed.append(id)
            case (.parse, _), (.bind, _), (.describeStatement, _), (.describePortal, _), (.execute, _), (.close, _),
                 (.evict, _), (.sync, _), (.query, _), (.functionCall, _):
                break
            }
            pop()
        }
        if isEmpty { isSkippingUntilSync = true }
        return step
    }

    /// ReadyForQuery arrived while the head did not expect it: the tracker lost step. Drop entries through
    /// the first one that ends at ReadyForQuery so the next transaction starts clean.
    private mutating func resync() {
        while let e = peek() {
            pop()
            if Self.endsAtReadyForQuery(e.request) { break }
        }
    }

    // MARK: - Matching

    private enum Outcome { case continues, ends, mismatch }

    private static func endsAtReadyForQuery(_ r: Request) -> Bool {
        switch r {
        case .sync, .query, .functionCall: return true
        case .parse, .bind, .describeStatement, .describePortal, .execute, .close, .evict: return false
        }
    }

    private static func isCopy(_ m: BackendMessageID) -> Bool {
        switch m {
        case .copyInResponse, .copyOutResponse, .copyBothResponse, .copyData, .copyDone: return true
        case .authentication, .backendKeyData, .bindComplete, .closeComplete, .commandComplete, .dataRow,
             .emptyQueryResponse, .errorResponse, .functionCallResponse, .negotiateProtocolVersion, .noData,
             .noticeResponse, .notificationResponse, .parameterDescription, .parameterStatus, .parseComplete,
             .portalSuspended, .readyForQuery, .rowDescription:
            return false
        }
    }

    /// What server message `m` does to the request at the head (ErrorResponse and async messages are
    /// handled before this).
    private static func outcome(of request: Request, on m: BackendMessageID) -> Outcome {
        switch request {
        case .parse:
            return m == .parseComplete ? .ends : .mismatch
        case .bind:
            return m == .bindComplete ? .ends : .mismatch
        case .close, .evict:
            return m == .closeComplete ? .ends : .mismatch
        case .describeStatement:
            if m == .parameterDescription { return .continues }
            return m == .rowDescription || m == .noData ? .ends : .mismatch
        case .describePortal:
            return m == .rowDescription || m == .noData ? .ends : .mismatch
        case .execute:
            if m == .dataRow || isCopy(m) { return .continues }
            return m == .commandComplete || m == .emptyQueryResponse || m == .portalSuspended ? .ends : .mismatch
        case .query:
            return m == .readyForQuery ? .ends : .continues
        case .functionCall:
            if m == .readyForQuery { return .ends }
            return m == .functionCallResponse ? .continues : .mismatch
        case .sync:
            return m == .readyForQuery ? .ends : .mismatch
        }
    }

    // MARK: - Ring buffer

    private func peek() -> Entry? {
        count == 0 ? nil : slots[head]
    }

    private mutating func pop() {
        guard count > 0, let e = slots[head] else { return }
        slots[head] = nil
        head = head + 1 == slots.count ? 0 : head + 1
        count -= 1
        if Self.endsAtReadyForQuery(e.request) { pendingSyncs -= 1 }
        if e.handling == .synthesize {
            synthesizedCount -= 1
            synthesizedBytes.removeFirst()
        }
        if count == 0 { head = 0 }
        updateHead()
    }

    private mutating func push(_ entry: Entry) {
        if count == slots.count { grow() }
        var tail = head + count
        if tail >= slots.count { tail -= slots.count }
        slots[tail] = entry
        count += 1
        if count == 1 { updateHead() }
    }

    private mutating func grow() {
        let newCapacity = Swift.max(16, slots.count * 2)
        var bigger = [Entry?](repeating: nil, count: newCapacity)
        for i in 0..<count {
            var j = head + i
            if j >= slots.count { j -= slots.count }
            bigger[i] = slots[j]
        }
        slots = bigger
        head = 0
    }
}
