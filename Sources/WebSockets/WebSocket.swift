import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A WebSocket connection with the browser's API (WHATWG WebSocket) and an async API.
///
/// Clients are created with `WebSocket(url:protocols:)` (connects in the background,
/// like a browser) or `WebSocket.connect(to:)`; servers hand open ones to
/// `WebSocketServer.onconnection`. Every method may be called from any thread;
/// callbacks run on the connection's event loop, in the browser's order: `onopen`,
/// `onmessage`..., `onerror` (on failure), then `onclose` exactly once.
public final class WebSocket: @unchecked Sendable {
    /// The browser's readyState values.
    public enum ReadyState: Int, Sendable {
        /// The connection is not yet open.
        case connecting = 0
        /// Messages can be sent and received.
        case open = 1
        /// The closing handshake has started.
        case closing = 2
        /// The connection is closed or could not be opened.
        case closed = 3
    }

    /// Passed to `onopen`.
    public struct OpenEvent: Sendable {
        /// The subprotocol the server chose, or "".
        public let `protocol`: String
    }

    /// Passed to `onmessage`.
    public struct MessageEvent: Sendable {
        /// The message: `.text(String)` or `.binary([UInt8])`.
        public let data: Message
    }

    /// Passed to `onerror`.
    public struct ErrorEvent: Sendable {
        /// What went wrong.
        public let error: WebSocketError
    }

    /// Passed to `onclose`.
    public struct CloseEvent: Sendable {
        /// The close code: the peer's, 1005 when its close frame had none, 1006 when
        /// the connection dropped without a closing handshake, or the code we failed the
        /// connection with (1002, 1007, 1009, 1011...) when the peer broke the protocol
        /// (browsers say 1006 there; the real cause is more useful).
        public let code: UInt16
        /// The peer's reason.
        public let reason: String
        /// Whether the closing handshake completed.
        public let wasClean: Bool
    }

    /// The URL: the one connected to, or the request target for server-side connections.
    public let url: String
    /// The connection's event loop.
    public let eventLoop: EventLoop

    let configuration: ConnectionConfiguration
    private let lock = NIOLock()
    private var state = ReadyState.connecting
    private var chosenProtocol = ""
    private var chosenExtensions = ""
    private var buffered = 0
    private var callbacks = Callbacks()
    private var waiters: [CheckedContinuation<Void, Never>] = []   // async senders over the high-water mark
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var closeDelivered = false
    private var inbound: MessageQueue?
    /// Set once open; only touched on the event loop.
    var handler: SocketDriver?
    /// Set while connecting (client) so close() can cancel.
    var pendingChannel: Channel?
    /// The channel once open (for abort); only touched on the event loop.
    var channel: Channel?
    /// Called once after `onclose` (the server's bookkeeping).
    var onFinish: (@Sendable () -> Void)?
    /// Called once when the connection opens, before `onopen` (the server's `onconnection`).
    var onOpened: (@Sendable () -> Void)?

    private struct Callbacks {
        var onopen: (@Sendable (OpenEvent) -> Void)?
        var onmessage: (@Sendable (MessageEvent) -> Void)?
        var onerror: (@Sendable (ErrorEvent) -> Void)?
        var onclose: (@Sendable (CloseEvent) -> Void)?
    }

    /// How published messages reach this connection (fixed at the handshake).
    let fanout: FanoutEncoding
    /// The server's topics (server-side connections only).
    let topicRegistry: TopicRegistry?

    init(url: String, eventLoop: EventLoop, configuration: ConnectionConfiguration,
         fanout: FanoutEncoding = .legacy, topics: TopicRegistry? = nil) {
        self.url = url
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.fanout = fanout
        self.topicRegistry = topics
    }

    // MARK: Browser API

    /// Opens a client connection in the background, like `new WebSocket(url, protocols)`;
    /// `onopen` or `onerror`+`onclose` report the outcome. Invalid URLs are reported the
    /// same way (a browser throws; set `onclose` right after creating the socket).
    public convenience init(url: String, protocols: [String] = [], configuration: ClientConfiguration = .init(),
                            eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.init(url: url, eventLoop: eventLoopGroup.next(), configuration: configuration.connection)
        ClientConnector.start(socket: self, protocols: protocols, configuration: configuration)
    }

    /// The current state.
    public var readyState: ReadyState { lock.withLock { state } }
    /// The subprotocol the server selected, or "".
    public var `protocol`: String { lock.withLock { chosenProtocol } }
    /// The extensions in use, as the server's header wrote them, or "".
    public var extensions: String { lock.withLock { chosenExtensions } }
    /// Bytes queued by `send` and not yet handed to the operating system.
    public var bufferedAmount: Int { lock.withLock { buffered } }

    /// Called when the connection opens. Set after the connection opened without a
    /// handler (a fast handshake can beat the line after `WebSocket(url:)`), it is called
    /// once on the event loop.
    public var onopen: (@Sendable (OpenEvent) -> Void)? {
        get { lock.withLock { callbacks.onopen } }
        set {
            let late: OpenEvent? = lock.withLock {
                // Kept only while the connection lives: closures usually capture the socket.
                if state != .closed { callbacks.onopen = newValue }
                guard newValue != nil, let event = undeliveredOpen else { return nil }
                undeliveredOpen = nil
                return event
            }
            // Like a browser's queued event: whichever handler is set when it runs gets
            // it, so code setting onopen twice in a row sees the second one called.
            if let late, let newValue {
                eventLoop.execute { [self] in (lock.withLock { callbacks.onopen } ?? newValue)(late) }
            }
        }
    }
    /// Called for every message (unless an async reader consumes `messages`). Messages
    /// that arrive before either is set wait for it (up to `inboundMessageQueue` of them;
    /// later ones are dropped), so none is lost to a handler set a moment too late.
    public var onmessage: (@Sendable (MessageEvent) -> Void)? {
        get { lock.withLock { callbacks.onmessage } }
        set {
            let flush = lock.withLock { () -> Bool in
                if state == .closed { lateMessageHandler = newValue } else { callbacks.onmessage = newValue }
                return newValue != nil && !early.isEmpty
            }
            if flush { eventLoop.execute { [self] in flushEarly() } }
        }
    }

    /// Hands the waiting messages to `onmessage`, in order, then resumes reading. Runs
    /// on the event loop, where messages are delivered, so later ones queue behind.
    private func flushEarly() {
        while true {
            let next = lock.withLock { () -> (Message, (@Sendable (MessageEvent) -> Void))? in
                guard let handler = callbacks.onmessage ?? lateMessageHandler, !early.isEmpty else { return nil }
                return (early.removeFirst(), handler)
            }
            guard let (message, handler) = next else { break }
            handler(MessageEvent(data: message))
        }
        lock.withLock { lateMessageHandler = nil }
        resumeReading()
    }
    /// Called when the connection fails (then `onclose` follows). Set after a failure
    /// that had no handler yet (a refused connect can beat the next line of code), it is
    /// called once on the event loop with that failure.
    public var onerror: (@Sendable (ErrorEvent) -> Void)? {
        get { lock.withLock { callbacks.onerror } }
        set {
            let late: ErrorEvent? = lock.withLock {
                if state == .closed, let event = undeliveredError, newValue != nil {
                    undeliveredError = nil
                    return event
                }
                callbacks.onerror = newValue
                return nil
            }
            if let late, let newValue { eventLoop.execute { newValue(late) } }
        }
    }
    /// Called once when the connection is closed. Set after a close that had no handler
    /// yet, it is called once on the event loop with that close.
    public var onclose: (@Sendable (CloseEvent) -> Void)? {
        get { lock.withLock { callbacks.onclose } }
        set {
            let late: CloseEvent? = lock.withLock {
                if state == .closed, let event = undeliveredClose, newValue != nil {
                    undeliveredClose = nil
                    return event
                }
                callbacks.onclose = newValue
                return nil
            }
            if let late, let newValue { eventLoop.execute { newValue(late) } }
        }
    }

    /// The open, failure and close that found no handler, kept for one set later.
    private var undeliveredOpen: OpenEvent?
    private var undeliveredError: ErrorEvent?
    /// Messages that arrived before `onmessage` or `messages` was set.
    private var early: [Message] = []
    /// The handler set after the close cleared the callbacks (it still gets `early`).
    private var lateMessageHandler: (@Sendable (MessageEvent) -> Void)?
    private var undeliveredClose: CloseEvent?

    /// Sends a text message. Throws `WebSocketError.invalidState` while connecting; after
    /// close it is dropped (and counted in `bufferedAmount`), as browsers do.
    public func send(_ text: String) throws { try send(.text(text)) }

    /// Sends a binary message.
    public func send(_ bytes: [UInt8]) throws { try send(.binary(bytes)) }

    /// Sends a message (text or binary).
    public func send(_ message: Message) throws { try enqueue(message, enforceLimit: true) }

    /// The sending path of both APIs (distinct name: inside async code `send` means the
    /// async overload).
    private func enqueue(_ message: Message, enforceLimit: Bool) throws {
        let size: Int
        switch message {
        case .text(let s): size = s.utf8.count
        case .binary(let b): size = b.count
        }
        let accepted: Bool = try lock.withLock {
            switch state {
            case .connecting: throw WebSocketError.invalidState("cannot send while CONNECTING")
            case .open:
                buffered += size
                return true
            case .closing, .closed:
                buffered += size
                return false
            }
        }
        guard accepted else { return }
        onLoop { handler in handler.send(message, size: size, enforceLimit: enforceLimit) }
    }

    /// Starts the closing handshake, like the browser's `close(code, reason)`: the code
    /// must be 1000 or 3000-4999 and the reason at most 123 UTF-8 bytes.
    public func close(code: UInt16? = nil, reason: String = "") throws { try validateAndClose(code: code, reason: reason) }

    /// Starts the closing handshake with any code an endpoint may send (1000-1003,
    /// 1007-1014, 3000-4999), for protocols layered on WebSocket that report their own
    /// errors this way (1008 policy, 1009 too big...). The reason is cut to 123 bytes.
    public func close(status: CloseCode, reason: String = "") {
        var reason = reason
        while reason.utf8.count > 123 { reason.removeLast() }
        startClose(code: status.isValidOnWire ? status : .normalClosure, reason: reason)
    }

    private func validateAndClose(code: UInt16?, reason: String) throws {
        if let code, code != 1000 && !(3000...4999).contains(code) {
            throw WebSocketError.invalidAccess("close code must be 1000 or 3000-4999, not \(code)")
        }
        if reason.utf8.count > 123 { throw WebSocketError.syntax("close reason longer than 123 UTF-8 bytes") }
        if code == nil && !reason.isEmpty { throw WebSocketError.syntax("a close reason needs a code") }
        startClose(code: code.map { CloseCode($0) }, reason: reason)
    }

    // MARK: Async API

    /// Connects and completes the opening handshake, or throws why it failed.
    public static func connect(to url: String, protocols: [String] = [], configuration: ClientConfiguration = .init(),
                               eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> WebSocket {
        let socket = WebSocket(url: url, eventLoop: eventLoopGroup.next(), configuration: configuration.connection)
        _ = socket.messages  // route messages to the async sequence from the start
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            socket.lock.withLock { socket.openWaiter = c }
            ClientConnector.start(socket: socket, protocols: protocols, configuration: configuration)
        }
        return socket
    }

    private var openWaiter: CheckedContinuation<Void, Error>?

    /// Received messages, in order, ending when the connection closes (throwing if it
    /// failed). Once accessed, messages go here instead of `onmessage`; reading from
    /// the socket pauses while `inboundMessageQueue` messages wait, so a slow reader
    /// slows the peer instead of growing memory.
    public var messages: MessageQueue {
        lock.withLock {
            if let inbound { return inbound }
            let q = MessageQueue(capacity: configuration.inboundMessageQueue) { [weak self] in self?.resumeReading() }
            inbound = q
            // Messages that arrived before the reader came go first.
            for m in early { _ = q.push(m) }
            early = []
            // Asked for after the end: an ended sequence, never one that waits forever.
            if state == .closed { q.finish(error: nil) }
            return q
        }
    }

    /// Sends a message, waiting while more than `highWaterMark` bytes are queued.
    /// Throws `WebSocketError.invalidState` unless the connection is open.
    public func send(_ message: Message) async throws {
        while true {
            let wait: Bool = try lock.withLock {
                guard state == .open else { throw WebSocketError.invalidState("connection is not open") }
                return buffered > configuration.highWaterMark
            }
            if !wait { break }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = lock.withLock { () -> Bool in
                    if state != .open || buffered <= configuration.lowWaterMark { return true }
                    waiters.append(c)
                    return false
                }
                if resumeNow { c.resume() }
            }
        }
        try enqueue(message, enforceLimit: false)
    }

    /// Sends text, waiting while the outbound queue is over its high-water mark.
    public func send(_ text: String) async throws { try await send(.text(text)) }

    /// Closes with the closing handshake and returns once the connection is closed.
    public func close(code: UInt16 = 1000, reason: String = "") async throws {
        try validateAndClose(code: code, reason: reason)
        await closed()
    }

    /// Returns once the connection is closed and `onclose` has run.
    public func closed() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                if closeDelivered { return true }
                closeWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    // MARK: Internal, called on the event loop

    /// Runs `body` with the open connection's handler on the event loop.
    func onLoop(_ body: @escaping @Sendable (SocketDriver) -> Void) {
        if eventLoop.inEventLoop {
            if let handler { body(handler) }
        } else {
            eventLoop.execute { [self] in
                if let handler { body(handler) }
            }
        }
    }

    /// `code` nil sends a close frame without a status code (the peer sees 1005).
    func startClose(code: CloseCode?, reason: String) {
        let action: Int = lock.withLock {
            switch state {
            case .connecting:
                state = .closing
                return 1
            case .open:
                state = .closing
                return 2
            case .closing, .closed: return 0
            }
        }
        switch action {
        case 1:
            // Closing before the handshake finished fails the connection, as in browsers.
            eventLoop.execute { [self] in
                (channel ?? pendingChannel)?.close(promise: nil)
                didFail(.aborted("closed before the connection opened"), code: 1006)
            }
        case 2: onLoop { handler in handler.close(code: code, reason: reason) }
        default: break
        }
    }

    func didOpen(handler: SocketDriver, protocol chosen: String, extensions: String) {
        // close() won the race against the handshake: no open events, just the close.
        if lock.withLock({ state != .connecting }) {
            (channel ?? pendingChannel)?.close(promise: nil)
            return
        }
        self.handler = handler
        pendingChannel = nil
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Error>? in
            if state == .connecting { state = .open }
            chosenProtocol = chosen
            chosenExtensions = extensions
            defer { openWaiter = nil }
            return openWaiter
        }
        waiter?.resume()
        if let opened = onOpened {
            onOpened = nil
            opened()
        }
        let onopen = lock.withLock { () -> (@Sendable (OpenEvent) -> Void)? in
            if callbacks.onopen == nil { undeliveredOpen = OpenEvent(protocol: chosen) }
            return callbacks.onopen
        }
        onopen?(OpenEvent(protocol: chosen))
    }

    /// Delivers a message; returns false when the async queue is full (stop reading).
    func deliver(_ message: Message) -> Bool {
        let (queue, onmessage, waiting) = lock.withLock { () -> (MessageQueue?, (@Sendable (MessageEvent) -> Void)?, Bool?) in
            // No consumer yet, or older messages still waiting for one: keep the order.
            if inbound == nil && (callbacks.onmessage == nil || !early.isEmpty) {
                guard early.count < configuration.inboundMessageQueue else { return (nil, nil, false) }
                early.append(message)
                return (nil, nil, true)
            }
            return (inbound, callbacks.onmessage, nil)
        }
        if let waiting {
            // An application that never consumes messages must not stall the connection
            // (pings and the close still need reading): past the bound they are dropped.
            if !waiting { configuration.logger.debug("message dropped: no onmessage handler or messages reader", metadata: ["url": "\(url)"]) }
            return true
        }
        if let queue { return queue.push(message) }
        onmessage?(MessageEvent(data: message))
        return true
    }

    /// Queues a published message, on the event loop: `frames` are the shared frames
    /// built for this connection's encoding, or nil for the connection to build its own.
    /// Counted in `bufferedAmount` like `send`; skipped unless open.
    func deliverPublished(_ frames: ByteBuffer?, message: Message, size: Int) {
        eventLoop.assertInEventLoop()
        let accepted = lock.withLock { () -> Bool in
            guard state == .open else { return false }
            buffered += size
            return true
        }
        guard accepted else { return }
        guard let handler else { return didWrite(size) }
        if let frames {
            handler.sendEncoded(frames, size: size)
        } else {
            handler.send(message, size: size, enforceLimit: true)
        }
    }

    func resumeReading() { onLoop { $0.resumeReading() } }

    func didWrite(_ bytes: Int) {
        let ready: [CheckedContinuation<Void, Never>] = lock.withLock {
            buffered = max(0, buffered - bytes)
            guard buffered <= configuration.lowWaterMark, !waiters.isEmpty else { return [] }
            defer { waiters.removeAll() }
            return waiters
        }
        for w in ready { w.resume() }
    }

    func markClosing() { lock.withLock { if state == .open || state == .connecting { state = .closing } } }

    /// A failure: `onerror`, then `onclose`.
    func didFail(_ error: WebSocketError, code: UInt16, reason: String = "") {
        if lock.withLock({ state == .closed }) { return }
        configuration.logger.debug("websocket failed: \(error)", metadata: ["url": "\(url)"])
        didClose(code: code, reason: reason, wasClean: false, error: error)
    }

    /// The end, as browsers do it: readyState becomes CLOSED, then `onerror` fires (for a
    /// failure), then `onclose`, once.
    func didClose(code: UInt16, reason: String, wasClean: Bool, error: WebSocketError? = nil) {
        let (onerror, onclose, waiters, queue, openWaiter, already) = lock.withLock {
            let already = state == .closed
            state = .closed
            let (onerror, onclose) = (callbacks.onerror, callbacks.onclose)
            defer {
                self.waiters.removeAll()
                self.openWaiter = nil
                // Callbacks usually capture the socket (`ws.onmessage = { ws.send(...) }`):
                // dropping them breaks that cycle so closed sockets are freed.
                if !already { callbacks = Callbacks() }
            }
            return (onerror, onclose, self.waiters, inbound, self.openWaiter, already)
        }
        if already { return }
        handler = nil
        pendingChannel = nil
        openWaiter?.resume(throwing: error ?? WebSocketError.closed(code: code, reason: reason))
        for w in waiters { w.resume() }
        queue?.finish(error: wasClean ? nil : (error ?? .closed(code: code, reason: reason)))
        let closeEvent = CloseEvent(code: code, reason: reason, wasClean: wasClean)
        if let error {
            if let onerror { onerror(ErrorEvent(error: error)) } else { lock.withLock { undeliveredError = ErrorEvent(error: error) } }
        }
        if let onclose { onclose(closeEvent) } else { lock.withLock { undeliveredClose = closeEvent } }
        // `closed()` returns only after onclose ran, so awaiting code sees its effects.
        let closeWaiters = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            closeDelivered = true
            defer { self.closeWaiters.removeAll() }
            return self.closeWaiters
        }
        for w in closeWaiters { w.resume() }
        onFinish?()
        onFinish = nil
        channel = nil
    }

    /// Drops the connection without a closing handshake.
    func abort() {
        eventLoop.execute { [self] in
            (channel ?? pendingChannel)?.close(promise: nil)
        }
    }
}

/// What drives an open connection on its event loop: the RFC 6455 handler, or the
/// legacy draft-76 one.
protocol SocketDriver: AnyObject {
    /// Queues a message whose payload is `size` bytes (already counted in bufferedAmount);
    /// `enforceLimit` applies the overflow policy (callback senders; async ones wait instead).
    func send(_ message: Message, size: Int, enforceLimit: Bool)
    /// Starts the closing handshake (`code` nil: a close frame without a status code).
    func close(code: CloseCode?, reason: String)
    /// Resumes reading after the async message queue drained.
    func resumeReading()
    /// Queues frames already built for many connections (a published message) whose
    /// payload is `size` bytes (already counted in bufferedAmount), under the overflow policy.
    func sendEncoded(_ frames: ByteBuffer, size: Int)
}
