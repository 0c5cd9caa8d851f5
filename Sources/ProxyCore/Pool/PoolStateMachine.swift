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
    }

    public var maxSize: Int
    /// Idle servers, most recently used last (reused first: keeps the working set warm).
    public private(set) var idle: [Server] = []
    /// Servers given to clients.
    public private(set) var active: Set<Server> = []
    /// Connections being opened or logging in.
    public private(set) var connecting = 0
    /// Clients waiting for a server, first come first served.
    public private(set) var waiting: [Client] = []

    public init(maxSize: Int) { self.maxSize = maxSize }

    /// Every server the pool owns or is opening.
    public var total: Int { idle.count + active.count + connecting }

    public mutating func clientRequests(_ client: Client) -> [Action] {
        if let server = idle.popLast() {
            active.insert(server)
            return [.attach(client, server)]
        }
        waiting.append(client)
        return growIfNeeded()
    }

    /// A client stopped waiting (disconnected or timed out).
    public mutating func clientLeftQueue(_ client: Client) {
        waiting.removeAll { $0 == client }
    }

    /// A new server finished its login.
    public mutating func serverConnected(_ server: Server) -> [Action] {
        connecting -= 1
        return serverAvailable(server)
    }

    /// A server came back clean from a client (reset done).
    public mutating func serverReleased(_ server: Server) -> [Action] {
        active.remove(server)
        return serverAvailable(server)
    }

    private mutating func serverAvailable(_ server: Server) -> [Action] {
        if !waiting.isEmpty {
            let client = waiting.removeFirst()
            active.insert(server)
            return [.attach(client, server)]
        }
        idle.append(server)
        return []
    }

    /// Opening a server failed. With nothing left in the pool, the waiting clients get the error.
    public mutating func serverConnectFailed() -> [Action] {
        connecting -= 1
        if total == 0 && !waiting.isEmpty {
            let failed = waiting
            waiting.removeAll()
            return [.fail(failed)]
        }
        return growIfNeeded()
    }

    /// A server went away (broken, or closed instead of reset).
    public mutating func serverClosed(_ server: Server) -> [Action] {
        idle.removeAll { $0 == server }
        active.remove(server)
        return growIfNeeded()
    }

    private mutating func growIfNeeded() -> [Action] {
        // Open as many as the queue needs beyond what is already being opened, within the cap.
        var actions: [Action] = []
        while waiting.count > connecting && total < maxSize {
            connecting += 1
            actions.append(.connect)
        }
        return actions
    }
}
