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

    public var maxSize: Int
    /// After a failed connect, no new connect is tried before this time (server_login_retry).
    public var retryDelay: Double
    public private(set) var retryNotBefore: Double = 0
    /// Idle servers, most recently used last (reused first: keeps the working set warm).
    public private(set) var idle: [Server] = []
    /// Servers given to clients.
    public private(set) var active: Set<Server> = []
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

    public mutating func clientRequests(_ client: Client, now: Double = 0) -> [Action] {
        if let server = idle.popLast() {
            active.insert(server)
            return [.attach(client, server)]
        }
        if total == 0 && now < retryNotBefore {
            // Logins are failing and nothing could ever free up: fail now instead of hanging.
            return [.fail([client])]
        }
        waiting.append(client)
        return growIfNeeded(now: now)
    }

    /// A client stopped waiting (disconnected or timed out).
    public mutating func clientLeftQueue(_ client: Client) {
        waiting.removeAll { $0 == client }
    }

    /// A new server finished its login.
    public mutating func serverConnected(_ server: Server) -> [Action] {
        guard connecting > 0 else { return [] }
        connecting -= 1
        retryNotBefore = 0
        return serverAvailable(server)
    }

    /// A server came back clean from a client (reset done). A server the pool does not hold as active is ignored.
    public mutating func serverReleased(_ server: Server) -> [Action] {
        guard active.remove(server) != nil else { return [] }
        return serverAvailable(server)
    }

    private mutating func serverAvailable(_ server: Server) -> [Action] {
        if total >= maxSize {
            // Over the (lowered) size: this one goes instead of idling.
            return [.close(server)]
        }
        if !waiting.isEmpty {
            let client = waiting.removeFirst()
            active.insert(server)
            return [.attach(client, server)]
        }
        idle.append(server)
        return []
    }

    /// Opening a server failed. With nothing left in the pool, the waiting clients get the error.
    /// Opening a server failed. With nothing left in the pool, the waiting clients get the error; otherwise
    /// they keep waiting for the servers that are alive, and no new connect is tried for `retryDelay`.
    public mutating func serverConnectFailed(now: Double = 0) -> [Action] {
        guard connecting > 0 else { return [] }
        connecting -= 1
        retryNotBefore = now + retryDelay
        if total == 0 && !waiting.isEmpty {
            let failed = waiting
            waiting.removeAll()
            return [.fail(failed)]
        }
        return growIfNeeded(now: now)
    }

    /// A logged-in server another worker handed over (it brought its slot along).
    public mutating func serverAdopted(_ server: Server) -> [Action] {
        serverAvailable(server)
    }

    /// A `.connect` could not go ahead (other workers hold the process-wide pool_size): it no longer counts as
    /// connecting; a later `tick` tries again (the I/O layer ticks the pool when a slot frees up).
    public mutating func connectDeferred() {
        if connecting > 0 { connecting -= 1 }
    }

    /// A server went away (broken, or closed instead of reset).
    public mutating func serverClosed(_ server: Server, now: Double = 0) -> [Action] {
        idle.removeAll { $0 == server }
        active.remove(server)
        return growIfNeeded(now: now)
    }

    /// A new size (RELOAD): growing serves waiting clients at once; shrinking closes idle servers now and
    /// busy ones as they come back.
    public mutating func resize(_ newSize: Int, now: Double = 0) -> [Action] {
        maxSize = newSize
        var actions: [Action] = []
        while total > maxSize, let server = idle.popLast() { actions.append(.close(server)) }
        return actions + growIfNeeded(now: now)
    }

    /// The janitor's tick: retry opening servers for waiting clients once the retry delay has passed,
    /// and keep at least `minimum` servers open or opening (min_pool_size).
    public mutating func tick(now: Double, minimum: Int = 0) -> [Action] {
        var actions = growIfNeeded(now: now)
        while now >= retryNotBefore && total < min(minimum, maxSize) {
            connecting += 1
            actions.append(.connect)
        }
        return actions
    }

    private mutating func growIfNeeded(now: Double) -> [Action] {
        guard now >= retryNotBefore else { return [] }
        // Open as many as the queue needs beyond what is already being opened, within the cap.
        var actions: [Action] = []
        while waiting.count > connecting && total < maxSize {
            connecting += 1
            actions.append(.connect)
        }
        return actions
    }
}
