import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One Engine.IO connection to a Socket.IO server, shared by the namespace sockets made
/// with `socket(_:)` (socket.io-client's `Manager`). It opens the connection when a
/// socket connects, reconnects with exponential backoff after the connection is lost
/// (while any socket still wants to be connected), and closes it when the last socket
/// disconnects.
///
/// Manager events (`on`): `open`, `close` (reason), `error` (message), `reconnect_attempt`
/// (attempt number), `reconnect` (attempt number), `reconnect_error` (message),
/// `reconnect_failed`. The reconnection events are also delivered to every socket of
/// the manager. Handlers run on the manager's event loop.
public final class SocketIOManager: @unchecked Sendable {
    /// The URL the manager was created with.
    public let url: String
    /// The options, fixed at creation.
    public let options: SocketIOClientOptions
    /// The event loop the connection and all handlers run on.
    public let eventLoop: any EventLoop

    let address: ServerAddress?
    private let addressError: String?
    var logger: Logger { options.logger }
    let handlers = EventHandlers()

    // Guarded by `lock` (the sockets of the manager use it too).
    let lock = NIOLock()
    enum ReadyState { case closed, opening, open }
    var readyState = ReadyState.closed
    private var engine: EngineIOClient?
    private var engineGeneration = 0
    private var cache: [String: WeakSocket] = [:]
    /// Sockets that want to be connected (connect() called, not disconnected since).
    var active: [String: SocketIOClient] = [:]
    private var backoff: Backoff
    private var reconnecting = false
    private var skipReconnect = false
    private var reconnectTimer: Scheduled<Void>?
    private var openTimer: Scheduled<Void>?
    /// A binary packet waiting for its attachments.
    private var pendingBinary: (packet: SocketIOPacket, expected: Int, attachments: [[UInt8]])?

    private struct WeakSocket {
        weak var socket: SocketIOClient?
    }

    /// Creates a manager for `url` (`http`, `https`, `ws` or `wss`; its path is ignored
    /// here, namespaces come from `socket(_:)`). Nothing connects until a socket does.
    public init(_ url: String, options: SocketIOClientOptions = .init()) {
        self.url = url
        self.options = options
        eventLoop = options.eventLoopGroup.next()
        do {
            address = try ServerAddress.parse(url)
            addressError = nil
        } catch {
            address = nil
            addressError = error.description
        }
        backoff = Backoff(minMilliseconds: Double(options.reconnectionDelay.nanoseconds) / 1e6,
                          maxMilliseconds: Double(options.reconnectionDelayMax.nanoseconds) / 1e6,
                          jitter: options.randomizationFactor)
    }

    /// The socket of `namespace` ("/" by default); the same object for the same
    /// namespace while it is in use. It connects right away when `autoConnect` is set.
    public func socket(_ namespace: String = "/") -> SocketIOClient {
        let name = namespace.hasPrefix("/") ? namespace : "/" + namespace
        let (socket, created): (SocketIOClient, Bool) = lock.withLock {
            if let socket = cache[name]?.socket { return (socket, false) }
            let socket = SocketIOClient(manager: self, namespace: name)
            cache[name] = WeakSocket(socket: socket)
            return (socket, true)
        }
        if created && options.autoConnect { socket.connect() }
        return socket
    }

    /// Adds a socket made outside `socket(_:)` to the namespace cache.
    func register(_ socket: SocketIOClient) {
        lock.withLock { cache[socket.namespace] = WeakSocket(socket: socket) }
    }

    /// Whether the Engine.IO connection is open.
    public var isOpen: Bool { lock.withLock { readyState == .open } }

    /// The transport in use (`.polling` until an upgrade, then `.websocket`), or nil
    /// while not connected.
    public var transport: SocketIOClientOptions.Transport? { lock.withLock { engine }?.transport }

    /// Opens the connection (sockets still need `connect()` to join their namespace).
    public func open() {
        withLock { calls in
            skipReconnect = false
            if engine == nil && !reconnecting { openEngineLocked(&calls) }
        }
    }

    /// Disconnects every socket ("io client disconnect") and closes the connection; no
    /// reconnection follows. Sockets can connect again later.
    public func close() {
        let sockets = lock.withLock { Array(active.values) }
        for socket in sockets { socket.disconnect() }
        withLock { calls in closeLocked(&calls) }
    }

    // MARK: Handlers

    /// Registers a handler for a manager event.
    @discardableResult
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) -> SocketIOHandlerID {
        handlers.add(event, once: false, handler)
    }

    /// Registers a handler for a manager event, ignoring its arguments.
    @discardableResult
    public func on(_ event: String, _ handler: @escaping @Sendable () -> Void) -> SocketIOHandlerID {
        handlers.add(event, once: false) { _ in handler() }
    }

    /// Removes one handler.
    public func off(_ id: SocketIOHandlerID) { handlers.remove(id) }

    // MARK: Locking and deferred calls

    /// Runs `body` under the lock; the handler calls it collects run afterwards, on the
    /// event loop.
    @discardableResult
    func withLock<T>(_ body: (inout DeferredCalls) -> T) -> T {
        var calls = DeferredCalls()
        let result = lock.withLock { body(&calls) }
        run(calls)
        return result
    }

    func run(_ calls: DeferredCalls) {
        guard !calls.calls.isEmpty else { return }
        let list = calls.calls
        if eventLoop.inEventLoop {
            for call in list { call() }
        } else {
            eventLoop.execute { for call in list { call() } }
        }
    }

    /// Emits an event on the manager and on every socket that wants a connection.
    private func emitEverywhereLocked(_ name: String, _ args: [JSONValue], _ calls: inout DeferredCalls) {
        calls.emit(handlers, name, args)
        for socket in active.values { calls.emit(socket.handlers, name, args) }
    }

    // MARK: Engine lifecycle (lock held)

    /// Starts an Engine.IO connection (one at a time).
    func openEngineLocked(_ calls: inout DeferredCalls) {
        guard engine == nil else { return }
        guard let address else {
            let message = "invalid URL: \(addressError ?? url)"
            logger.error("socket.io client cannot connect", metadata: ["error": "\(message)"])
            calls.emit(handlers, "error", [.string(message)])
            for socket in active.values where !socket.isConnectedLocked {
                calls.emit(socket.handlers, "connect_error", [.string(message)])
            }
            return
        }
        engineGeneration += 1
        let generation = engineGeneration
        let events = EngineIOClientEvents(
            onOpen: { [weak self] handshake in self?.engineOpened(generation, handshake) },
            onMessage: { [weak self] payload in self?.engineReceived(generation, payload) },
            onClose: { [weak self] reason, detail in self?.engineClosed(generation, reason, detail) })
        let engine = EngineIOClient(address: address, options: options, eventLoop: eventLoop, events: events)
        self.engine = engine
        readyState = .opening
        pendingBinary = nil
        engine.open()
        let timeout = options.timeout
        openTimer = eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self else { return }
            self.withLock { calls in
                guard self.engineGeneration == generation, self.readyState == .opening else { return }
                self.dropEngineLocked(reason: "timeout", detail: "no handshake within \(timeout.nanoseconds / 1_000_000) ms", &calls)
            }
        }
    }

    /// Closes the current engine on our initiative and handles it as closed for `reason`.
    private func dropEngineLocked(reason: String, detail: String, _ calls: inout DeferredCalls) {
        guard let engine else { return }
        engine.close()
        engineClosedLocked(reason, detail, &calls)
    }

    /// Closes the connection for good (no socket wants it, or the user asked).
    func closeLocked(_ calls: inout DeferredCalls) {
        skipReconnect = true
        reconnecting = false
        reconnectTimer?.cancel()
        reconnectTimer = nil
        backoff.reset()
        dropEngineLocked(reason: "forced close", detail: "closed by the client", &calls)
    }

    private func engineOpened(_ generation: Int, _ handshake: EngineIOHandshake) {
        withLock { calls in
            guard generation == engineGeneration, engine != nil else { return }
            openTimer?.cancel()
            readyState = .open
            let attempt = reconnecting ? backoff.attempts : nil
            reconnecting = false
            backoff.reset()
            calls.emit(handlers, "open")
            if let attempt {
                logger.info("socket.io client reconnected", metadata: ["attempt": "\(attempt)"])
                emitEverywhereLocked("reconnect", [.number(Double(attempt))], &calls)
            }
            for socket in active.values { socket.sendConnectLocked() }
        }
    }

    private func engineClosed(_ generation: Int, _ reason: String, _ detail: String) {
        withLock { calls in
            guard generation == engineGeneration, engine != nil else { return }
            engineClosedLocked(reason, detail, &calls)
        }
    }

    /// The connection is gone: tell the sockets, then reconnect if that is wanted.
    private func engineClosedLocked(_ reason: String, _ detail: String, _ calls: inout DeferredCalls) {
        engine = nil
        engineGeneration += 1
        openTimer?.cancel()
        pendingBinary = nil
        let wasOpen = readyState == .open
        readyState = .closed
        if wasOpen {
            for socket in active.values { socket.connectionLostLocked(reason: reason, &calls) }
            calls.emit(handlers, "close", [.string(reason)])
            if options.reconnection && !skipReconnect { reconnectLocked(&calls) }
        } else {
            guard reason != "forced close" else { return }
            let message = reason == "timeout" ? "timeout" : "\(reason): \(detail)"
            logger.info("socket.io connection attempt failed", metadata: ["error": "\(message)"])
            calls.emit(handlers, "error", [.string(message)])
            for socket in active.values where !socket.isConnectedLocked {
                calls.emit(socket.handlers, "connect_error", [.string(message)])
            }
            if reconnecting {
                reconnecting = false
                reconnectLocked(&calls)
                calls.emit(handlers, "reconnect_error", [.string(message)])
            } else if options.reconnection && !skipReconnect && backoff.attempts == 0 {
                reconnectLocked(&calls)
            }
        }
    }

    /// Schedules the next attempt, or gives up after `reconnectionAttempts`.
    private func reconnectLocked(_ calls: inout DeferredCalls) {
        guard !reconnecting, !skipReconnect, !active.isEmpty else { return }
        if let limit = options.reconnectionAttempts, backoff.attempts >= limit {
            logger.info("socket.io client gave up reconnecting", metadata: ["attempts": "\(backoff.attempts)"])
            backoff.reset()
            emitEverywhereLocked("reconnect_failed", [], &calls)
            return
        }
        let delay = backoff.nextDelay()
        reconnecting = true
        reconnectTimer = eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) { [weak self] in
            guard let self else { return }
            self.withLock { calls in
                guard self.reconnecting, !self.skipReconnect, self.engine == nil else { return }
                self.emitEverywhereLocked("reconnect_attempt", [.number(Double(self.backoff.attempts))], &calls)
                self.openEngineLocked(&calls)
            }
        }
    }

    /// A socket stopped wanting a connection; the last one closes it.
    func socketDeactivatedLocked(_ socket: SocketIOClient, _ calls: inout DeferredCalls) {
        if active[socket.namespace] === socket { active[socket.namespace] = nil }
        if active.isEmpty { closeLocked(&calls) }
    }

    /// A socket wants a connection: open one unless it is open or on its way.
    func socketActivatedLocked(_ socket: SocketIOClient, _ calls: inout DeferredCalls) {
        active[socket.namespace] = socket
        skipReconnect = false
        switch readyState {
        case .open: socket.sendConnectLocked()
        case .opening: break
        case .closed: if !reconnecting { openEngineLocked(&calls) }
        }
    }

    // MARK: Packets (lock held)

    /// Sends a Socket.IO packet: the text, then each attachment as a binary message.
    func sendLocked(_ packet: SocketIOPacket) {
        guard let engine, readyState == .open else { return }
        let (text, attachments) = packet.encode()
        engine.send([.text(text)] + attachments.map { .binary($0) })
    }

    private func engineReceived(_ generation: Int, _ payload: EngineIOPacket.Payload) {
        withLock { calls in
            guard generation == engineGeneration, engine != nil else { return }
            do {
                if let packet = try assembleLocked(payload) { dispatchLocked(packet, &calls) }
            } catch {
                logger.warning("bad packet from the socket.io server; closing", metadata: ["error": "\(error)"])
                dropEngineLocked(reason: "parse error", detail: "\(error)", &calls)
            }
        }
    }

    /// Decodes a message; binary packets are held until all their attachments arrived.
    private func assembleLocked(_ payload: EngineIOPacket.Payload) throws(SocketIOPacket.DecodeError) -> SocketIOPacket? {
        switch payload {
        case .text(let text):
            guard pendingBinary == nil else { throw SocketIOPacket.DecodeError(reason: "text packet while attachments were expected") }
            let (packet, count) = try SocketIOPacket.decode(text)
            if count == 0 { return try packet.kind == .binaryEvent || packet.kind == .binaryAck ? packet.reconstruct(attachments: []) : packet }
            pendingBinary = (packet, count, [])
            return nil
        case .binary(let bytes):
            guard var pending = pendingBinary else { throw SocketIOPacket.DecodeError(reason: "binary message without a binary packet") }
            pending.attachments.append(bytes)
            guard pending.attachments.count == pending.expected else {
                pendingBinary = pending
                return nil
            }
            pendingBinary = nil
            return try pending.packet.reconstruct(attachments: pending.attachments)
        }
    }

    private func dispatchLocked(_ packet: SocketIOPacket, _ calls: inout DeferredCalls) {
        guard let socket = active[packet.namespace] ?? cache[packet.namespace]?.socket else {
            logger.debug("packet for a namespace without a socket", metadata: ["namespace": "\(packet.namespace)"])
            return
        }
        socket.receivedLocked(packet, &calls)
    }
}
