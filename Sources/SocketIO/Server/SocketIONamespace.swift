import NIOConcurrencyHelpers

/// Why a middleware refused a connection; the client gets it in CONNECT_ERROR.
public struct SocketIOMiddlewareError: Error, Sendable {
    /// The message the client sees (socket.io clients show it in connect_error).
    public var message: String
    /// Extra details sent along (optional).
    public var data: JSONValue?

    /// Creates a refusal.
    public init(_ message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }
}

/// A namespace ("/" or "/chat"): its sockets, rooms, middleware and connection handlers.
/// Rooms live here (socket.io's in-memory adapter): room name -> socket ids.
public final class SocketIONamespace: @unchecked Sendable {
    /// A middleware: inspect the socket (auth, headers) and call `next(nil)` to let it
    /// in or `next(error)` to refuse; it may answer later, from any thread.
    public typealias Middleware = @Sendable (SocketIOSocket, @escaping @Sendable (SocketIOMiddlewareError?) -> Void) -> Void

    /// The namespace name, starting with "/".
    public let name: String
    private let lock = NIOLock()
    private var members: [String: SocketIOSocket] = [:]
    private var roomMembers: [String: Set<String>] = [:]
    private var middlewares: [Middleware] = []
    private var connectionHandlers: [@Sendable (SocketIOSocket) -> Void] = []

    /// Where broadcasts go after local delivery (other nodes, through an adapter).
    let relay: BroadcastRelay

    init(name: String, relay: BroadcastRelay) {
        self.name = name
        self.relay = relay
    }

    /// Calls `handler` with every socket that joins ("connection" or "connect").
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOSocket) -> Void) {
        precondition(event == "connection" || event == "connect", "a namespace only has the \"connection\" event")
        lock.withLock { connectionHandlers.append(handler) }
    }

    /// Adds a middleware; they run in order for every joining socket.
    public func use(_ middleware: @escaping Middleware) {
        lock.withLock { middlewares.append(middleware) }
    }

    /// The connected sockets.
    public var sockets: [SocketIOSocket] { lock.withLock { Array(members.values) } }

    /// A connected socket by id.
    public func socket(id: String) -> SocketIOSocket? { lock.withLock { members[id] } }

    // MARK: Broadcasting

    /// Emits to every socket of the namespace.
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue...) -> Bool {
        SocketIOBroadcast(namespace: self).emit(event, with: args)
    }

    /// Emits to a room's members.
    public func to(_ room: String) -> SocketIOBroadcast { SocketIOBroadcast(namespace: self, rooms: [room]) }

    /// Emits to every socket not in a room.
    public func except(_ room: String) -> SocketIOBroadcast { SocketIOBroadcast(namespace: self, except: [room]) }

    /// Makes every socket in `room` (or all) leave the namespace.
    public func disconnectSockets(in room: String? = nil, close: Bool = false) {
        let targets = lock.withLock { () -> [SocketIOSocket] in
            guard let room else { return Array(members.values) }
            return (roomMembers[room] ?? []).compactMap { members[$0] }
        }
        for s in targets { s.disconnect(close: close) }
    }

    // MARK: Rooms

    func join(_ id: String, room: String) {
        lock.withLock { if members[id] != nil { roomMembers[room, default: []].insert(id) } }
    }

    func leave(_ id: String, room: String) {
        lock.withLock {
            roomMembers[room]?.remove(id)
            if roomMembers[room]?.isEmpty == true { roomMembers.removeValue(forKey: room) }
        }
    }

    func rooms(of id: String) -> Set<String> {
        lock.withLock { Set(roomMembers.compactMap { $0.value.contains(id) ? $0.key : nil }) }
    }

    /// Sockets in any of `rooms` (all when empty), minus those in `except` and `excluded`.
    func targets(rooms: Set<String>, except: Set<String>, excluded: String?) -> [SocketIOSocket] {
        lock.withLock {
            var ids: Set<String>
            if rooms.isEmpty {
                ids = Set(members.keys)
            } else {
                ids = []
                for r in rooms { ids.formUnion(roomMembers[r] ?? []) }
            }
            for r in except { ids.subtract(roomMembers[r] ?? []) }
            if let excluded { ids.remove(excluded) }
            return ids.compactMap { members[$0] }
        }
    }

    // MARK: Joining and leaving

    /// Runs the middlewares, then admits the socket (`done(nil)`) or refuses it.
    func admit(_ socket: SocketIOSocket, done: @escaping @Sendable (SocketIOMiddlewareError?) -> Void) {
        let chain = lock.withLock { middlewares }
        run(chain[...], socket) { [weak self] error in
            guard let self else { return }
            if let error { return done(error) }
            self.lock.withLock {
                self.members[socket.id] = socket
                self.roomMembers[socket.id, default: []].insert(socket.id)
            }
            socket.didConnect()
            done(nil)
            for h in self.lock.withLock({ self.connectionHandlers }) { h(socket) }
        }
    }

    private func run(_ chain: ArraySlice<Middleware>, _ socket: SocketIOSocket,
                     done: @escaping @Sendable (SocketIOMiddlewareError?) -> Void) {
        guard let first = chain.first else { return done(nil) }
        let rest = chain.dropFirst()
        let once = NIOLockedValueBox(false)
        first(socket) { [weak self] error in
            guard !once.withLockedValue({ let was = $0; $0 = true; return was }) else { return }
            if let error { return done(error) }
            self?.run(rest, socket, done: done)
        }
    }

    func isMember(_ socket: SocketIOSocket) -> Bool {
        lock.withLock { members[socket.id] === socket }
    }

    /// Removes a socket and its rooms.
    func remove(_ socket: SocketIOSocket) {
        lock.withLock {
            guard members.removeValue(forKey: socket.id) != nil else { return }
            for (room, var ids) in roomMembers where ids.contains(socket.id) {
                ids.remove(socket.id)
                roomMembers[room] = ids.isEmpty ? nil : ids
            }
        }
    }
}

/// Emits to a selection of a namespace's sockets, encoding the packet once for all of
/// them: `io.to("room").except("muted").emit("news", ...)`.
public struct SocketIOBroadcast: Sendable {
    let namespace: SocketIONamespace
    var rooms: Set<String> = []
    var except: Set<String> = []
    var excludingSocket: String?

    /// Adds a room (sockets in any of the rooms receive).
    public func to(_ room: String) -> SocketIOBroadcast {
        var copy = self
        copy.rooms.insert(room)
        return copy
    }

    /// Leaves out a room's sockets.
    public func except(_ room: String) -> SocketIOBroadcast {
        var copy = self
        copy.except.insert(room)
        return copy
    }

    /// Sends the event; returns false for a reserved event name.
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue...) -> Bool { emit(event, with: args) }

    /// Sends the event with an argument list (to this node's sockets, and through the
    /// server's adapter to other nodes' when one is attached).
    @discardableResult
    public func emit(_ event: String, with args: [JSONValue]) -> Bool {
        guard !ReservedEvents.names.contains(event) else { return false }
        emitLocally(event, with: args)
        namespace.relay.forward(self, event: event, args: args)
        return true
    }

    /// Delivers to this node's sockets only, encoding the packet once for all of them.
    func emitLocally(_ event: String, with args: [JSONValue]) {
        let targets = namespace.targets(rooms: rooms, except: except, excluded: excludingSocket)
        guard !targets.isEmpty else { return }
        let packets = SocketIOPacket(.event, namespace: namespace.name, data: .array([.string(event)] + args)).engineIOPackets()
        for socket in targets { socket.sendEncoded(packets) }
    }

    /// The sockets this broadcast would reach now.
    public var sockets: [SocketIOSocket] { namespace.targets(rooms: rooms, except: except, excluded: excludingSocket) }
}

/// Carries broadcasts to other server nodes: an adapter (Redis) installs the sink.
final class BroadcastRelay: @unchecked Sendable {
    private let lock = NIOLock()
    private var sink: (@Sendable (SocketIOBroadcast, String, [JSONValue]) -> Void)?

    func install(_ sink: @escaping @Sendable (SocketIOBroadcast, String, [JSONValue]) -> Void) {
        lock.withLock { self.sink = sink }
    }

    func forward(_ broadcast: SocketIOBroadcast, event: String, args: [JSONValue]) {
        lock.withLock { sink }?(broadcast, event, args)
    }
}
