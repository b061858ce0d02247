import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A Redis connection for commands (PUBLISH and any other), kept up by itself: it
/// reconnects with backoff and holds commands issued while disconnected (bounded by
/// `maxQueuedCommands` / `maxQueuedBytes`), sending them in order once connected.
///
/// A command already sent when the connection drops fails with
/// `RedisError.connectionLost` and is not resent (it may have run). Replies come back in
/// command order. Thread-safe; every method may be called from any thread.
///
/// ```swift
/// let redis = try RedisClient(url: "redis://:secret@127.0.0.1:6379/0")
/// let receivers = try await redis.publish(Array("hello".utf8), to: "news")
/// ```
public final class RedisClient: @unchecked Sendable {
    /// The connection's event loop.
    public let eventLoop: EventLoop
    private let link: RedisLink
    // Touched on `eventLoop` only.
    private var queue = CircularBuffer<(bytes: ByteBuffer, promise: EventLoopPromise<RESPValue>)>()
    private var queuedBytes = 0
    private var inFlight = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var closed = false
    private let counters = NIOLockedValueBox(Counters())

    private struct Counters {
        var connected = false
        var queued = 0
        var rejected = 0
        var connections = 0
    }

    /// Creates the client and starts connecting in the background.
    public init(configuration: RedisConfiguration, eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "redis")) {
        eventLoop = eventLoopGroup.next()
        link = RedisLink(configuration: configuration, eventLoop: eventLoop, logger: logger)
        // Weak: a client dropped without close() is closed by its deinit, and the link
        // may still report in between.
        link.onReady = { [weak self] in self?.didConnect() }
        link.onValue = { [weak self] in self?.didReceive($0) }
        link.onDown = { [weak self] in self?.didDisconnect() }
        let link = self.link
        eventLoop.execute { link.start() }
    }

    /// Creates the client for `redis://[[user]:password@]host[:port][/db]`.
    public convenience init(url: String, eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            logger: Logger = Logger(label: "redis")) throws {
        try self.init(configuration: RedisConfiguration(url: url), eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Whether the connection is up now.
    public var isConnected: Bool { counters.withLockedValue { $0.connected } }
    /// Commands waiting for a connection now.
    public var queuedCommands: Int { counters.withLockedValue { $0.queued } }
    /// Commands refused because the queue was full, since the start.
    public var rejectedCommands: Int { counters.withLockedValue { $0.rejected } }
    /// Connections made so far (1 after the first, 2 after a reconnect...).
    public var connectionCount: Int { counters.withLockedValue { $0.connections } }

    /// Sends a command (name first); the future holds the reply, or fails with
    /// `RedisError.server` for an error reply.
    public func send(_ arguments: [[UInt8]]) -> EventLoopFuture<RESPValue> {
        let promise = eventLoop.makePromise(of: RESPValue.self)
        let bytes = RESPEncoder.command(arguments)
        onLoop { [self] in enqueue(bytes, promise) }
        return promise.futureResult
    }

    /// Sends a command with text arguments and waits for its reply.
    @discardableResult
    public func send(_ arguments: String...) async throws -> RESPValue {
        try await send(arguments.map { Array($0.utf8) }).get()
    }

    /// PUBLISH: sends `message` to `channel`; the future holds the number of subscribers
    /// (connections, over all nodes) Redis delivered it to.
    public func publish(_ message: [UInt8], to channel: String) -> EventLoopFuture<Int> {
        send([Array("PUBLISH".utf8), Array(channel.utf8), message]).flatMapThrowing { reply in
            guard let n = reply.integer else { throw RedisError.unexpectedReply("\(reply)") }
            return Int(n)
        }
    }

    /// PUBLISH, waiting for Redis's answer.
    @discardableResult
    public func publish(_ message: [UInt8], to channel: String) async throws -> Int {
        try await publish(message, to: channel).get()
    }

    /// Closes the connection; queued and unanswered commands fail with `RedisError.closed`.
    public func close() async {
        let done: EventLoopFuture<Void> = eventLoop.flatSubmit { [self] in
            closed = true
            failAll(RedisError.closed)
            return link.close()
        }
        try? await done.get()
    }

    deinit {
        // Nothing else can touch the queues now; unanswered promises must not leak.
        failAll(RedisError.closed)
        let link = self.link
        link.eventLoop.execute { _ = link.close() }
    }

    // MARK: On the event loop

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    private func enqueue(_ bytes: ByteBuffer, _ promise: EventLoopPromise<RESPValue>) {
        if closed { return promise.fail(RedisError.closed) }
        if link.isReady {
            inFlight.append(promise)
            link.write(bytes)
            return
        }
        guard queue.count < link.configuration.maxQueuedCommands,
              queuedBytes + bytes.readableBytes <= link.configuration.maxQueuedBytes else {
            counters.withLockedValue { $0.rejected += 1 }
            return promise.fail(RedisError.queueFull)
        }
        queue.append((bytes, promise))
        queuedBytes += bytes.readableBytes
        counters.withLockedValue { $0.queued = queue.count }
    }

    private func didConnect() {
        counters.withLockedValue {
            $0.connected = true
            $0.connections += 1
        }
        while let (bytes, promise) = queue.popFirst() {
            inFlight.append(promise)
            link.write(bytes)
        }
        queuedBytes = 0
        counters.withLockedValue { $0.queued = 0 }
    }

    private func didReceive(_ value: RESPValue) {
        guard let promise = inFlight.popFirst() else {
            link.logger.warning("redis sent a reply nobody asked for: \(value)")
            return
        }
        if case .error(let message) = value { promise.fail(RedisError.server(message)) } else { promise.succeed(value) }
    }

    private func didDisconnect() {
        counters.withLockedValue { $0.connected = false }
        while let promise = inFlight.popFirst() { promise.fail(RedisError.connectionLost) }
    }

    private func failAll(_ error: RedisError) {
        while let promise = inFlight.popFirst() { promise.fail(error) }
        while let (_, promise) = queue.popFirst() { promise.fail(error) }
        queuedBytes = 0
        counters.withLockedValue {
            $0.queued = 0
            $0.connected = false
        }
    }
}
