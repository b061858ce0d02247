import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A message received on a subscribed channel.
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published to.
    public let channel: String
    /// The published bytes.
    public let payload: [UInt8]

    /// Creates a message.
    public init(channel: String, payload: [UInt8]) {
        self.channel = channel
        self.payload = payload
    }
}

/// A dedicated Redis connection in subscribe mode (a connection that subscribed can run
/// no other commands, so publishing goes through a `RedisClient`). It keeps the set of
/// wanted channels and, after a lost connection, reconnects with backoff and
/// subscribes to all of them again.
///
/// Redis pub/sub is at-most-once: messages published while this connection is down (or
/// before a SUBSCRIBE is confirmed) are not delivered to it, and never will be. Use
/// `isSubscribed(_:)` or the future of `subscribe` to know when a channel is live.
/// Messages are delivered to `onMessage` on the connection's event loop, in the order
/// Redis sent them; keep the callback short (hand work off). Thread-safe.
public final class RedisSubscriber: @unchecked Sendable {
    /// The connection's event loop (where `onMessage` runs).
    public let eventLoop: EventLoop
    private let link: RedisLink
    private let onMessage: @Sendable (RedisMessage) -> Void
    // Touched on `eventLoop` only.
    private var wanted = Set<String>()
    private var waiters: [String: [EventLoopPromise<Void>]] = [:]
    private var closed = false
    private let state = NIOLockedValueBox(State())

    private struct State {
        var confirmed = Set<String>()
        var connected = false
        var connections = 0
        var onClose: (@Sendable () -> Void)?
    }

    /// Creates the subscriber and starts connecting; `onMessage` receives every message
    /// of the subscribed channels.
    public init(configuration: RedisConfiguration, eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "redis"), onMessage: @escaping @Sendable (RedisMessage) -> Void) {
        eventLoop = eventLoopGroup.next()
        link = RedisLink(configuration: configuration, eventLoop: eventLoop, logger: logger)
        self.onMessage = onMessage
        // Weak: a client dropped without close() is closed by its deinit, and the link
        // may still report in between.
        link.onReady = { [weak self] in self?.didConnect() }
        link.onValue = { [weak self] in self?.didReceive($0) }
        link.onDown = { [weak self] in self?.didDisconnect() }
        let link = self.link
        eventLoop.execute { link.start() }
    }

    /// A subscriber whose messages come as an `AsyncStream`, which ends when the
    /// subscriber is closed. The stream holds at most `bufferLimit` messages not yet
    /// read; past that the newest are dropped (pub/sub has no flow control: a reader that
    /// falls behind must lose something or grow memory).
    public static func withStream(
        configuration: RedisConfiguration, eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "redis"), bufferLimit: Int = 10_000
    ) -> (subscriber: RedisSubscriber, messages: AsyncStream<RedisMessage>) {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisMessage.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        let subscriber = RedisSubscriber(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger) {
            continuation.yield($0)
        }
        subscriber.state.withLockedValue { $0.onClose = { continuation.finish() } }
        return (subscriber, stream)
    }

    /// Whether the connection is up now.
    public var isConnected: Bool { state.withLockedValue { $0.connected } }
    /// Connections made so far (more than 1 after reconnects).
    public var connectionCount: Int { state.withLockedValue { $0.connections } }
    /// Whether Redis confirmed the subscription to `channel` on the current connection.
    public func isSubscribed(_ channel: String) -> Bool { state.withLockedValue { $0.confirmed.contains(channel) } }

    /// Subscribes to `channels` (kept across reconnects). The future completes once
    /// Redis confirmed every one of them (possibly after a reconnect), or fails with
    /// `RedisError.closed` if the subscriber is closed first.
    @discardableResult
    public func subscribe(_ channels: [String]) -> EventLoopFuture<Void> {
        let promises = channels.map { _ in eventLoop.makePromise(of: Void.self) }
        onLoop { [self] in
            if closed { return promises.forEach { $0.fail(RedisError.closed) } }
            var fresh: [String] = []
            for (channel, promise) in zip(channels, promises) {
                if state.withLockedValue({ $0.confirmed.contains(channel) }) && wanted.contains(channel) {
                    promise.succeed()
                    continue
                }
                waiters[channel, default: []].append(promise)
                if wanted.insert(channel).inserted { fresh.append(channel) }
            }
            if link.isReady && !fresh.isEmpty { sendCommand("SUBSCRIBE", fresh) }
        }
        return EventLoopFuture.andAllSucceed(promises.map(\.futureResult), on: eventLoop)
    }

    /// Unsubscribes from `channels`; their messages stop being delivered at once.
    public func unsubscribe(_ channels: [String]) {
        onLoop { [self] in
            let gone = channels.filter { wanted.remove($0) != nil }
            for channel in gone { waiters.removeValue(forKey: channel)?.forEach { $0.fail(RedisError.closed) } }
            if link.isReady && !gone.isEmpty { sendCommand("UNSUBSCRIBE", gone) }
        }
    }

    /// Closes the connection for good.
    public func close() async {
        let done: EventLoopFuture<Void> = eventLoop.flatSubmit { [self] in
            closed = true
            for (_, list) in waiters { list.forEach { $0.fail(RedisError.closed) } }
            waiters = [:]
            wanted = []
            let onClose = state.withLockedValue { s -> (@Sendable () -> Void)? in
                s.confirmed = []
                s.connected = false
                defer { s.onClose = nil }
                return s.onClose
            }
            onClose?()
            return link.close()
        }
        try? await done.get()
    }

    deinit {
        // Nothing else can touch the waiters now; their promises must not leak.
        for (_, list) in waiters { list.forEach { $0.fail(RedisError.closed) } }
        state.withLockedValue { $0.onClose }?()
        let link = self.link
        link.eventLoop.execute { _ = link.close() }
    }

    // MARK: On the event loop

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    /// Sends SUBSCRIBE or UNSUBSCRIBE, a bounded number of channels per command.
    private func sendCommand(_ name: String, _ channels: [String]) {
        var start = 0
        while start < channels.count {
            let end = min(start + 1000, channels.count)
            link.write(RESPEncoder.command([name] + channels[start..<end]))
            start = end
        }
    }

    private func didConnect() {
        state.withLockedValue {
            $0.connected = true
            $0.connections += 1
            $0.confirmed = []
        }
        if !wanted.isEmpty { sendCommand("SUBSCRIBE", wanted.sorted()) }
    }

    private func didDisconnect() {
        state.withLockedValue {
            $0.connected = false
            $0.confirmed = []
        }
    }

    private func didReceive(_ value: RESPValue) {
        guard case .array(let items?) = value, let kind = items.first?.string else {
            if case .error(let message) = value { link.logger.error("redis refused a subscription command: \(message)") }
            return
        }
        switch (kind, items.count) {
        case ("message", 3):
            guard let channel = items[1].string, let payload = items[2].bytes, wanted.contains(channel) else { return }
            onMessage(RedisMessage(channel: channel, payload: payload))
        case ("subscribe", 3):
            guard let channel = items[1].string, wanted.contains(channel) else { return }
            state.withLockedValue { _ = $0.confirmed.insert(channel) }
            waiters.removeValue(forKey: channel)?.forEach { $0.succeed() }
        case ("unsubscribe", 3):
            guard let channel = items[1].string, !wanted.contains(channel) else { return }
            state.withLockedValue { _ = $0.confirmed.remove(channel) }
        default:
            break
        }
    }
}
