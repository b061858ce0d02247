import NIOConcurrencyHelpers
import NIOCore
import WebSockets

/// What a client sent when it joined a namespace.
public struct SocketIOHandshake: Sendable {
    /// The first HTTP request of the connection (headers, query, remote address).
    public let request: HTTPRequest
    /// The auth payload of the CONNECT packet (an object, empty when none was sent).
    public let auth: JSONValue
    /// The Engine.IO session id of the underlying connection.
    public let sessionID: String
}

/// One client in one namespace, on the server: receives the client's events, emits to
/// it, joins rooms. Handlers run on NIO threads, one event at a time per client.
public final class SocketIOSocket: @unchecked Sendable {
    /// This socket's id (random; also the name of its own room).
    public let id: String
    /// The namespace it joined.
    public let namespace: SocketIONamespace
    /// The CONNECT details: auth payload and first request.
    public let handshake: SocketIOHandshake
    private let connection: SocketIOServerConnection
    private let lock = NIOLock()
    private var handlers: [String: [@Sendable (SocketIOEvent) -> Void]] = [:]
    private var anyHandlers: [@Sendable (SocketIOEvent) -> Void] = []
    private var acks: [Int: (callback: @Sendable (Result<[JSONValue], SocketIOError>) -> Void, timer: Scheduled<Void>?)] = [:]
    private var nextAckID = 0
    private var state = State.connecting

    private enum State { case connecting, connected, disconnected }

    init(namespace: SocketIONamespace, connection: SocketIOServerConnection, handshake: SocketIOHandshake) {
        self.id = SessionID.make()
        self.namespace = namespace
        self.connection = connection
        self.handshake = handshake
    }

    /// True between the connection and the disconnect.
    public var connected: Bool { lock.withLock { state == .connected } }

    /// The rooms this socket is in (its own id included).
    public var rooms: Set<String> { namespace.rooms(of: id) }

    /// The transport in use now: polling, or websocket after an upgrade.
    public var transport: EngineIOTransport { connection.session.transportName }

    // MARK: Handlers

    /// Calls `handler` for every `event` from this client; `event.ack(...)` answers the
    /// client's acknowledgement callback. "disconnect" gets the reason as its data.
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) {
        lock.withLock { handlers[event, default: []].append(handler) }
    }

    /// Calls `handler` for every `event` from this client, ignoring its arguments.
    public func on(_ event: String, _ handler: @escaping @Sendable () -> Void) {
        on(event) { (_: SocketIOEvent) in handler() }
    }

    /// Calls `handler` for every event from this client, whatever its name.
    public func onAny(_ handler: @escaping @Sendable (SocketIOEvent) -> Void) {
        lock.withLock { anyHandlers.append(handler) }
    }

    /// Removes every handler of `event`.
    public func off(_ event: String) {
        lock.withLock { _ = handlers.removeValue(forKey: event) }
    }

    private func fire(_ event: SocketIOEvent, any: Bool) {
        let (list, all) = lock.withLock { (handlers[event.name] ?? [], any ? anyHandlers : []) }
        for h in all { h(event) }
        for h in list { h(event) }
    }

    // MARK: Emitting

    /// Sends an event to this client. Returns false (and sends nothing) for a reserved
    /// name or once the client is gone.
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue...) -> Bool {
        emit(event, with: args)
    }

    /// Sends an event with an argument list.
    @discardableResult
    public func emit(_ event: String, with args: [JSONValue]) -> Bool {
        guard !ReservedEvents.names.contains(event), connected else { return false }
        return connection.send(SocketIOPacket(.event, namespace: namespace.name, data: .array([.string(event)] + args)))
    }

    /// Sends an event and waits for the client's acknowledgement: `ack` gets its
    /// arguments, `.ackTimeout` after `timeout`, or `.disconnected` if the client leaves.
    public func emit(_ event: String, _ args: JSONValue..., timeout: TimeAmount = .seconds(30),
                     ack: @escaping @Sendable (Result<[JSONValue], SocketIOError>) -> Void) {
        emit(event, with: args, timeout: timeout, ack: ack)
    }

    /// Sends an event and returns the client's acknowledgement arguments.
    public func emitWithAck(_ event: String, _ args: JSONValue..., timeout: TimeAmount = .seconds(30)) async throws -> [JSONValue] {
        try await withCheckedThrowingContinuation { continuation in
            emit(event, with: args, timeout: timeout) { continuation.resume(with: $0) }
        }
    }

    /// Sends an event with an argument list and waits for the acknowledgement.
    public func emit(_ event: String, with args: [JSONValue], timeout: TimeAmount = .seconds(30),
                     ack: @escaping @Sendable (Result<[JSONValue], SocketIOError>) -> Void) {
        guard !ReservedEvents.names.contains(event) else { return ack(.failure(.reservedEventName(event))) }
        let id = lock.withLock { () -> Int? in
            guard state == .connected else { return nil }
            defer { nextAckID += 1 }
            acks[nextAckID] = (ack, nil)
            return nextAckID
        }
        guard let id else { return ack(.failure(.disconnected)) }
        let timer = connection.session.eventLoop.scheduleTask(in: timeout) { [weak self] () -> Void in self?.finishAck(id, .failure(.ackTimeout)) }
        lock.withLock { if acks[id] != nil { acks[id]?.timer = timer } else { timer.cancel() } }
        connection.send(SocketIOPacket(.event, namespace: namespace.name, data: .array([.string(event)] + args), id: id))
    }

    /// Writes packets a broadcast encoded once for all its receivers.
    func sendEncoded(_ packets: [EngineIOPacket]) {
        guard connected else { return }
        connection.send(encoded: packets)
    }

    private func finishAck(_ id: Int, _ result: Result<[JSONValue], SocketIOError>) {
        guard let entry = lock.withLock({ acks.removeValue(forKey: id) }) else { return }
        entry.timer?.cancel()
        entry.callback(result)
    }

    // MARK: Rooms and broadcasting

    /// Joins a room.
    public func join(_ room: String) { namespace.join(id, room: room) }

    /// Leaves a room.
    public func leave(_ room: String) { namespace.leave(id, room: room) }

    /// Emits to a room's members except this socket.
    public func to(_ room: String) -> SocketIOBroadcast { SocketIOBroadcast(namespace: namespace, rooms: [room], excludingSocket: id) }

    /// Emits to every socket of the namespace except this one.
    public var broadcast: SocketIOBroadcast { SocketIOBroadcast(namespace: namespace, excludingSocket: id) }

    // MARK: Disconnecting

    /// Leaves the namespace (the client gets "io server disconnect"); with `close`,
    /// also ends the whole connection with every namespace on it.
    public func disconnect(close: Bool = false) {
        if close {
            connection.session.close(reason: "forced close", log: nil)
            return
        }
        guard connected else { return }
        connection.send(SocketIOPacket(.disconnect, namespace: namespace.name))
        connection.remove(self)
        didDisconnect(reason: "server namespace disconnect")
    }

    // MARK: Called by the connection and the namespace

    /// The middleware accepted the socket: tell the client, then the app.
    func didConnect() {
        lock.withLock { state = .connected }
        connection.send(SocketIOPacket(.connect, namespace: namespace.name, data: ["sid": .string(id)]))
    }

    func receiveEvent(_ packet: SocketIOPacket) {
        guard connected, let all = packet.data?.arrayValue, let name = all.first?.stringValue else { return }
        var ack: (@Sendable ([JSONValue]) -> Void)?
        if let ackID = packet.id {
            let once = NIOLockedValueBox(false)
            let nsp = namespace.name
            ack = { [weak self] args in
                guard let self, !once.withLockedValue({ let was = $0; $0 = true; return was }) else { return }
                self.connection.send(SocketIOPacket(.ack, namespace: nsp, data: .array(args), id: ackID))
            }
        }
        fire(SocketIOEvent(name: name, args: Array(all.dropFirst()), ack: ack), any: true)
    }

    func receiveAck(_ packet: SocketIOPacket) {
        guard let id = packet.id else { return }
        finishAck(id, .success(packet.data?.arrayValue ?? []))
    }

    func closeFromClient() {
        connection.remove(self)
        didDisconnect(reason: "client namespace disconnect")
    }

    /// Ends this socket once: leaves its rooms, fails pending acks, fires "disconnect".
    func didDisconnect(reason: String) {
        let pending = lock.withLock { () -> [(callback: @Sendable (Result<[JSONValue], SocketIOError>) -> Void, timer: Scheduled<Void>?)]? in
            guard state != .disconnected else { return nil }
            let wasConnected = state == .connected
            state = .disconnected
            defer { acks = [:] }
            return wasConnected ? Array(acks.values) : []
        }
        guard let pending else { return }
        // "disconnecting" still sees the rooms; "disconnect" comes after leaving them.
        let wasMember = namespace.isMember(self)
        if wasMember { fire(SocketIOEvent(name: "disconnecting", args: [.string(reason)]), any: false) }
        namespace.remove(self)
        for p in pending {
            p.timer?.cancel()
            p.callback(.failure(.disconnected))
        }
        if wasMember { fire(SocketIOEvent(name: "disconnect", args: [.string(reason)]), any: false) }
    }
}
