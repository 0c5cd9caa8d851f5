// One pool of server connections for a (database, user) pair, without sockets: who waits, which
// server is idle, when to open another. Each server state has one owning collection here.

public struct PoolStateMachine<Client: Hashable, Server: Hashable> {
    public enum Action: Equatable {
        /// Give this idle or fresh server to this client.
        case attach(Client, Server)
        /// Open one more server connection (counted as connecting already).
        case connect
        /// These waiting clients cannot be served: the pool has no server and the last attempt failed.
        case fail([Client])
        /// Close this server: the pool shrank below the servers it holds (RELOAD lowered its size).
        case close(Server)
    }

    /// What one event asks the I/O layer to do, in order. Usually one action or none, kept inline: no array is
    /// allocated per transaction (the pool runs two events per transaction); more actions spill into an array.
    public struct Actions: Equatable, Sequence, ExpressibleByArrayLiteral, CustomStringConvertible {
        private var head: Action?
        private var tail: [Action] = []

        public init() {}
        public init(_ action: Action) { head = action }
        public init(arrayLiteral elements: Action...) {
            for action in elements { append(action) }
        }

        public mutating func append(_ action: Action) {
            if head == nil { head = action } else { tail.append(action) }
        }

        public var isEmpty: Bool { head == nil }
        public var array: [Action] { head.map { [$0] + tail } ?? [] }
        public var description: String { array.description }

        public static func == (a: Actions, b: Actions) -> Bool { a.array == b.array }

        public static func + (a: Actions, b: Actions) -> Actions {
            var sum = a
            for action in b { sum.append(action) }
            return sum
        }

        public struct Iterator: IteratorProtocol {
            fileprivate var head: Action?
            fileprivate var tail: IndexingIterator<[Action]>

            public mutating func next() -> Action? {
                // Moved out, not copied: an action holds a client and a server (a retain and release each).
                if let action = head.take() { return action }
                return tail.next()
            }
        }

        /// Consuming, as Sequence declares it: a `for` loop over actions it owns moves them into the iterator.
        public consuming func makeIterator() -> Iterator { Iterator(head: head.take(), tail: tail.makeIterator()) }
    }

    public var maxSize: Int
    /// After a failed connect, no new connect is tried before this time (server_login_retry).
    public var retryDelay: Double
    public private(set) var retryNotBefore: Double = 0
    /// Idle servers, most recently used last (reused first: keeps the working set warm).
    public private(set) var idle: [Server] = []
    /// Servers given to clients, in no order. An array rather than a set: a pool holds tens of servers, and
    /// finding one among them costs less than hashing it twice per transaction (attach, release).
    public private(set) var active: [Server] = []
    /// Connections being opened or logging in.
    public private(set) var connecting = 0
    /// Clients waiting for a server, first come first served.
    public private(set) var waiting: [Client] = []

    public init(maxSize: Int, retryDelay: Double = 0) {
        self.maxSize = maxSize
        self.retryDelay = retryDelay
    }

    /// Every server the pool owns or is opening.
    public var total: Int { idle.count + active.count + connecting }

    public mutating func clientRequests(_ client: Client, now: Double = 0) -> Actions {
        if let server = idle.popLast() {
            active.append(server)
            return Actions(.attach(client, server))
        }
        if total == 0 && now < retryNotBefore {
            // Logins are failing and nothing could ever free up: fail now instead of hanging.
            return Actions(.fail([client]))
        }
        waiting.append(client)
        return growIfNeeded(now: now)
    }

    /// A client stopped waiting (disconnected or timed out).
    public mutating func clientLeftQueue(_ client: Client) {
        waiting.removeAll { $0 == client }
    }

    /// The waiting client at `index` of `waiting` was served another way (it rode a busy server).
    public mutating func clientLeftQueue(at index: Int) {
        waiting.remove(at: index)
    }

    /// A new server finished its login.
    public mutating func serverConnected(_ server: Server) -> Actions {
        guard connecting > 0 else { return Actions() }
        connecting -= 1
        retryNotBefore = 0
        return serverAvailable(server)
    }

    /// A server came back clean from a client (reset done). A server the pool does not hold as active is ignored.
    public mutating func serverReleased(_ server: Server) -> Actions {
        guard removeActive(server) else { return Actions() }
        return serverAvailable(server)
    }

    private mutating func serverAvailable(_ server: Server) -> Actions {
        if total >= maxSize {
            // Over the (lowered) size: this one goes instead of idling.
            return Actions(.close(server))
        }
        if !waiting.isEmpty {
            let client = waiting.removeFirst()
            active.append(server)
            return Actions(.attach(client, server))
        }
        idle.append(server)
        return Actions()
    }

    /// Opening a server failed. With nothing left in the pool, the waiting clients get the error.
    /// Opening a server failed. With nothing left in the pool, the waiting clients get the error; otherwise
    /// they keep waiting for the servers that are alive, and no new connect is tried for `retryDelay`.
    public mutating func serverConnectFailed(now: Double = 0) -> Actions {
        guard connecting > 0 else { return Actions() }
        connecting -= 1
        retryNotBefore = now + retryDelay
        if total == 0 && !waiting.isEmpty {
            let failed = waiting
            waiting.removeAll()
            return Actions(.fail(failed))
        }
        return growIfNeeded(now: now)
    }

    /// A logged-in server another worker handed over (it brought its slot along).
    public mutating func serverAdopted(_ server: Server) -> Actions {
        serverAvailable(server)
    }

    /// A `.connect` could not go ahead (other workers hold the process-wide pool_size): it no longer counts as
    /// connecting; a later `tick` tries again (the I/O layer ticks the pool when a slot frees up).
    public mutating func connectDeferred() {
        if connecting > 0 { connecting -= 1 }
    }

    /// A server went away (broken, or closed instead of reset).
    public mutating func serverClosed(_ server: Server, now: Double = 0) -> Actions {
        idle.removeAll { $0 == server }
        removeActive(server)
        return growIfNeeded(now: now)
    }

    /// Takes `server` out of `active` (the last one fills its place); false when it was not there.
    @discardableResult
    private mutating func removeActive(_ server: Server) -> Bool {
        // Searched from the end: a server released soon after it was attached is near the end.
        guard let i = active.lastIndex(of: server) else { return false }
        // The last one moved into the hole (no retain/release pair, as swapAt's copies cost).
        let last = active.removeLast()
        if i < active.count { active[i] = last }
        return true
    }

    /// A new size (RELOAD): growing serves waiting clients at once; shrinking closes idle servers now and
    /// busy ones as they come back.
    public mutating func resize(_ newSize: Int, now: Double = 0) -> Actions {
        maxSize = newSize
        var actions = Actions()
        while total > maxSize, let server = idle.popLast() { actions.append(.close(server)) }
        return actions + growIfNeeded(now: now)
    }

    /// The janitor's tick: retry opening servers for waiting clients once the retry delay has passed,
    /// and keep at least `minimum` servers open or opening (min_pool_size).
    public mutating func tick(now: Double, minimum: Int = 0) -> Actions {
        var actions = growIfNeeded(now: now)
        while now >= retryNotBefore && total < min(minimum, maxSize) {
            connecting += 1
            actions.append(.connect)
        }
        return actions
    }

    private mutating func growIfNeeded(now: Double) -> Actions {
        guard now >= retryNotBefore else { return Actions() }
        // Open as many as the queue needs beyond what is already being opened, within the cap.
        var actions = Actions()
        while waiting.count > connecting && total < maxSize {
            connecting += 1
            actions.append(.connect)
        }
        return actions
    }
}
