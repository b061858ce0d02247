import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A Socket.IO client socket: one namespace over a `SocketIOManager`'s connection
/// (socket.io-client's `Socket`).
///
/// ```swift
/// let socket = io("http://localhost:8080")
/// socket.on("connect") { print("connected as", socket.id ?? "?") }
/// socket.on("chat") { event in print(event.data) }
/// socket.emit("chat", ["text": "hello"]) { result in print(result) }
/// ```
///
/// Reserved events delivered to `on`: `connect`; `disconnect` with the reason as its
/// data ("io server disconnect", "io client disconnect", "ping timeout", "transport
/// close", "transport error", "parse error"); `connect_error` with the message as data
/// (and the server's extra data as the second argument, if any); and the manager's
/// `reconnect_attempt` / `reconnect` (attempt number), `reconnect_failed`.
///
/// Every method may be called from any thread. Handlers run on the manager's event loop,
/// one at a time, never while the client holds its lock.
public final class SocketIOClient: @unchecked Sendable {
    /// The manager whose connection this socket uses.
    public let manager: SocketIOManager
    /// The namespace ("/" or e.g. "/chat").
    public let namespace: String
    let handlers = EventHandlers()

    // Guarded by manager.lock.
    private var sid: String?
    private var isConnected = false
    private var isActive = false
    private var connectSent = false
    private var sendBuffer: [SocketIOPacket] = []
    private var nextAckID = 0
    private var acks: [Int: PendingAck] = [:]

    private struct PendingAck {
        var callback: @Sendable (Result<[JSONValue], SocketIOError>) -> Void
        var timer: Scheduled<Void>?
    }

    init(manager: SocketIOManager, namespace: String) {
        self.manager = manager
        self.namespace = namespace
    }

    /// Connects to `host:port` (a new manager; `secure` selects https/wss).
    public convenience init(host: String, port: Int, namespace: String = "/", secure: Bool = false,
                            options: SocketIOClientOptions = .init()) {
        let name = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let manager = SocketIOManager("\(secure ? "https" : "http")://\(name):\(port)", options: options)
        self.init(manager: manager, namespace: namespace.hasPrefix("/") ? namespace : "/" + namespace)
        manager.register(self)
        if options.autoConnect { connect() }
    }

    /// The session id the server gave this namespace connection; nil while not connected.
    public var id: String? { manager.lock.withLock { sid } }
    /// Whether the namespace is connected.
    public var connected: Bool { manager.lock.withLock { isConnected } }
    /// Whether the socket wants to be connected (connecting, connected, or waiting to
    /// reconnect).
    public var active: Bool { manager.lock.withLock { isActive } }

    var isConnectedLocked: Bool { isConnected }

    // MARK: Connecting

    /// Connects the namespace, opening the manager's connection if needed (also after
    /// `reconnect_failed`). Does nothing while connected, or while a connection attempt
    /// or a reconnection delay is under way.
    public func connect() {
        manager.withLock { calls in
            guard !isConnected else { return }
            if !isActive {
                isActive = true
                connectSent = false
            }
            manager.socketActivatedLocked(self, &calls)
        }
    }

    /// Leaves the namespace (`disconnect` with "io client disconnect"); no reconnection.
    /// The last socket of a manager closes its connection. Emits still buffered stay
    /// buffered for a later `connect()`.
    public func disconnect() {
        manager.withLock { calls in
            guard isActive || isConnected else { return }
            // A CONNECT already on its way is undone too (the server handles packets in order).
            if isConnected || connectSent { manager.sendLocked(SocketIOPacket(.disconnect, namespace: namespace)) }
            if isConnected { calls.emit(handlers, "disconnect", ["io client disconnect"]) }
            resetLocked(&calls)
            isActive = false
            manager.socketDeactivatedLocked(self, &calls)
        }
    }

    /// The same as `disconnect()` (socket.io's alias).
    public func close() { disconnect() }

    /// Sends CONNECT with the auth payload (the manager's connection just opened).
    func sendConnectLocked() {
        guard isActive, !isConnected, !connectSent else { return }
        connectSent = true
        var data: JSONValue?
        if let auth = manager.options.auth, auth.objectValue != nil { data = auth }
        manager.sendLocked(SocketIOPacket(.connect, namespace: namespace, data: data))
    }

    /// Forgets the connection: sid, and the acks of packets that were sent.
    private func resetLocked(_ calls: inout DeferredCalls) {
        isConnected = false
        connectSent = false
        sid = nil
        let buffered = Set(sendBuffer.compactMap(\.id))
        for (id, ack) in acks where !buffered.contains(id) {
            acks[id] = nil
            ack.timer?.cancel()
            let callback = ack.callback
            calls.add { callback(.failure(.disconnected)) }
        }
    }

    /// The manager's connection closed for `reason`; reconnection may follow.
    func connectionLostLocked(reason: String, _ calls: inout DeferredCalls) {
        let was = isConnected
        resetLocked(&calls)
        if was { calls.emit(handlers, "disconnect", [.string(reason)]) }
    }

    // MARK: Receiving

    func receivedLocked(_ packet: SocketIOPacket, _ calls: inout DeferredCalls) {
        switch packet.kind {
        case .connect:
            guard isActive, !isConnected else { return }
            guard let sid = packet.data?["sid"]?.stringValue else {
                calls.emit(handlers, "connect_error", ["the server's CONNECT answer has no sid (not a Socket.IO v5 server?)"])
                return
            }
            self.sid = sid
            isConnected = true
            calls.emit(handlers, "connect")
            let buffered = sendBuffer
            sendBuffer = []
            for packet in buffered { manager.sendLocked(packet) }
        case .connectError:
            guard isActive, !isConnected else { return }
            let data = packet.data ?? .null
            let message = data["message"]?.stringValue ?? data.stringValue ?? data.description
            var args: [JSONValue] = [.string(message)]
            if let extra = data["data"] { args.append(extra) }
            manager.logger.info("socket.io namespace refused", metadata: ["namespace": "\(namespace)", "message": "\(message)"])
            resetLocked(&calls)
            isActive = false
            calls.emit(handlers, "connect_error", args)
            manager.socketDeactivatedLocked(self, &calls)
        case .disconnect:
            guard isActive || isConnected else { return }
            let was = isConnected
            resetLocked(&calls)
            isActive = false
            if was { calls.emit(handlers, "disconnect", ["io server disconnect"]) }
            manager.socketDeactivatedLocked(self, &calls)
        case .event, .binaryEvent:
            guard isConnected, let array = packet.data?.arrayValue, let name = array.first?.stringValue else { return }
            var ack: (@Sendable ([JSONValue]) -> Void)?
            if let id = packet.id { ack = makeAcknowledger(id) }
            let event = SocketIOEvent(name: name, args: Array(array.dropFirst()), ack: ack)
            let handlers = self.handlers
            calls.add { handlers.dispatch(event, includeAny: true) }
        case .ack, .binaryAck:
            guard let id = packet.id, let pending = acks.removeValue(forKey: id) else { return }
            pending.timer?.cancel()
            let args = packet.data?.arrayValue ?? []
            calls.add { pending.callback(.success(args)) }
        }
    }

    /// The function that answers the server's event `id` (the first call counts).
    private func makeAcknowledger(_ id: Int) -> @Sendable ([JSONValue]) -> Void {
        let done = NIOLockedValueBox(false)
        return { [weak self] args in
            guard done.withLockedValue({ let was = $0; $0 = true; return !was }), let self else { return }
            self.manager.withLock { _ in
                guard self.isConnected else { return }
                self.manager.sendLocked(SocketIOPacket(.ack, namespace: self.namespace, data: .array(args), id: id))
            }
        }
    }

    // MARK: Handlers

    /// Registers a handler for an event from the server, or a reserved event.
    @discardableResult
    /// A `connect` or `connect_error` that happened before any handler for it was
    /// registered reaches the first one registered (on the event loop), so handlers set
    /// right after `io(url)` never miss a fast server.
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) -> SocketIOHandlerID {
        deliverLate(event, after: handlers.add(event, once: false, handler))
    }

    /// Registers a handler that ignores the event's arguments (e.g. for `connect`).
    @discardableResult
    public func on(_ event: String, _ handler: @escaping @Sendable () -> Void) -> SocketIOHandlerID {
        deliverLate(event, after: handlers.add(event, once: false) { _ in handler() })
    }

    /// Registers a handler called for the next `event` only.
    @discardableResult
    public func once(_ event: String, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) -> SocketIOHandlerID {
        deliverLate(event, after: handlers.add(event, once: true, handler))
    }

    private func deliverLate(_ event: String, after id: SocketIOHandlerID) -> SocketIOHandlerID {
        // Only while still true: a connect is not replayed once the socket disconnected.
        let stillTrue = event == "connect" ? connected : !connected
        if let late = handlers.takeUnheard(event), stillTrue {
            let handlers = self.handlers
            manager.eventLoop.execute { handlers.dispatch(late) }
        }
        return id
    }

    /// Registers a handler for every event from the server (not the reserved ones).
    @discardableResult
    public func onAny(_ handler: @escaping @Sendable (SocketIOEvent) -> Void) -> SocketIOHandlerID {
        handlers.add(nil, once: false, handler)
    }

    /// Removes one handler.
    public func off(_ id: SocketIOHandlerID) { handlers.remove(id) }

    /// Removes every handler of `event`.
    public func off(_ event: String) { handlers.removeAll(event) }

    // MARK: Emitting

    /// Emits an event with JSON arguments (binary values go as attachments). While the
    /// namespace is not connected the emit is buffered (see
    /// `SocketIOClientOptions.maxBufferedEmits`) and sent in order after (re)connecting.
    /// Returns false when it was dropped: the buffer is full, or the name is reserved.
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue...) -> Bool {
        emit(event, with: args, timeout: nil, ack: nil)
    }

    /// Emits an event and asks for an acknowledgement: `ack` gets the server's answer,
    /// or `.ackTimeout` after `timeout` (default `SocketIOClientOptions.ackTimeout`), or
    /// `.disconnected` when the connection closed first or the emit was dropped.
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue..., timeout: TimeAmount? = nil,
                     ack: @escaping @Sendable (Result<[JSONValue], SocketIOError>) -> Void) -> Bool {
        emit(event, with: args, timeout: timeout, ack: ack)
    }

    /// Emits an event with an argument list, optionally asking for an acknowledgement.
    @discardableResult
    public func emit(_ event: String, with args: [JSONValue], timeout: TimeAmount? = nil,
                     ack: (@Sendable (Result<[JSONValue], SocketIOError>) -> Void)? = nil) -> Bool {
        guard !ReservedEvents.names.contains(event) else {
            manager.logger.warning("emit of a reserved event name dropped", metadata: ["event": "\(event)"])
            if let ack { manager.eventLoop.execute { ack(.failure(.reservedEventName(event))) } }
            return false
        }
        return manager.withLock { calls in
            var packet = SocketIOPacket(.event, namespace: namespace, data: .array([.string(event)] + args))
            let direct = isConnected && manager.readyState == .open
            if !direct && sendBuffer.count >= manager.options.maxBufferedEmits {
                manager.logger.warning("socket.io emit dropped: not connected and the emit buffer is full",
                                       metadata: ["event": "\(event)", "buffered": "\(sendBuffer.count)"])
                if let ack { calls.add { ack(.failure(.disconnected)) } }
                return false
            }
            if let ack {
                let id = nextAckID
                nextAckID = nextAckID == Int(Int32.max) ? 0 : nextAckID + 1
                packet.id = id
                var timer: Scheduled<Void>?
                if let limit = timeout ?? manager.options.ackTimeout {
                    timer = manager.eventLoop.scheduleTask(in: limit) { [weak self] in self?.ackTimedOut(id) }
                }
                acks[id] = PendingAck(callback: ack, timer: timer)
            }
            if direct { manager.sendLocked(packet) } else { sendBuffer.append(packet) }
            return true
        }
    }

    /// Emits an event and waits for the acknowledgement's arguments; throws
    /// `SocketIOError.ackTimeout` or `.disconnected`.
    public func emitWithAck(_ event: String, _ args: JSONValue..., timeout: TimeAmount? = nil) async throws -> [JSONValue] {
        try await emitWithAck(event, with: args, timeout: timeout)
    }

    /// Emits an event with an argument list and waits for the acknowledgement.
    public func emitWithAck(_ event: String, with args: [JSONValue], timeout: TimeAmount? = nil) async throws -> [JSONValue] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[JSONValue], any Error>) in
            emit(event, with: args, timeout: timeout) { result in
                continuation.resume(with: result.mapError { $0 as any Error })
            }
        }
    }

    /// No answer in time: the ack fails, and a still-buffered emit is not sent any more.
    private func ackTimedOut(_ id: Int) {
        manager.withLock { calls in
            guard let pending = acks.removeValue(forKey: id) else { return }
            sendBuffer.removeAll { $0.id == id }
            calls.add { pending.callback(.failure(.ackTimeout)) }
        }
    }

    /// How many emits wait for a connection.
    public var bufferedEmits: Int { manager.lock.withLock { sendBuffer.count } }
}
