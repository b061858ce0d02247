import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RedisPubSub
import WebSocketFraming

/// Settings of a server's Redis backing (`WebSocketServer.connectTopics(toRedis:)`).
public struct RedisTopicsConfiguration: Sendable {
    /// The Redis server, reconnection and queue limits.
    public var redis: RedisConfiguration
    /// Topic `t` travels on the Redis channel `channelPrefix + t` (default `"wstopic:"`).
    /// Servers that should share topics use the same prefix and the same Redis.
    public var channelPrefix = "wstopic:"
    /// This node's identity in published messages, so it ignores its own (default: 16
    /// random hex digits; 1 to 255 UTF-8 bytes).
    public var nodeID: String = (0..<16).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()

    /// Settings for this Redis server.
    public init(redis: RedisConfiguration) { self.redis = redis }

    /// Settings for `redis://[[user]:password@]host[:port][/db]`.
    public init(url: String) throws { redis = try RedisConfiguration(url: url) }
}

/// Spreads a server's topics over Redis pub/sub, so a message published on any node
/// reaches subscribers on every node.
///
/// Each node publishes every message on the topic's channel (one PUBLISH per message,
/// on a command connection) and, on a dedicated subscribe connection, subscribes to the
/// channels of the topics that have local subscribers. A received message is delivered
/// to the local subscribers unless it carries this node's id (the node already delivered
/// it locally when it was published).
///
/// Message format on the channel: byte 0 is the format version (1); byte 1 the node-id
/// length n; then n bytes of node id (UTF-8); then one flags byte (bit 0: binary, else
/// text; bit 1: compress); then the message payload.
///
/// Delivery: Redis pub/sub is at-most-once. While our connection is down, publishes wait
/// in a bounded queue (`RedisConfiguration.maxQueuedCommands` / `maxQueuedBytes`; when
/// full, further publishes to Redis are dropped and counted, local delivery still
/// happens) and go out in order on reconnect, so nothing is lost on our side while Redis
/// is up. A PUBLISH in flight when the connection drops is not resent (it may have run).
/// Redis itself delivers only to subscribers connected at that moment: a node whose
/// subscribe connection is down misses what is published meanwhile.
final class RedisTopicBacking: @unchecked Sendable {
    let configuration: RedisTopicsConfiguration
    let publisher: RedisClient
    let subscriber: RedisSubscriber
    private let nodeIDBytes: [UInt8]
    private let logger: Logger
    private weak var server: WebSocketServer?
    private let dropped = NIOLockedValueBox(0)

    init(server: WebSocketServer, configuration: RedisTopicsConfiguration, logger: Logger) throws {
        let id = Array(configuration.nodeID.utf8)
        guard (1...255).contains(id.count) else {
            throw WebSocketError.invalidState("a node id takes 1 to 255 UTF-8 bytes")
        }
        self.configuration = configuration
        nodeIDBytes = id
        self.logger = logger
        self.server = server
        publisher = RedisClient(configuration: configuration.redis, logger: logger)
        // The subscriber's callback needs `self`, which does not exist yet: go through a box.
        let box = NIOLockedValueBox<RedisTopicBacking?>(nil)
        subscriber = RedisSubscriber(configuration: configuration.redis, logger: logger) { message in
            box.withLockedValue { $0 }?.received(message)
        }
        box.withLockedValue { $0 = self }
    }

    /// The Redis channel of `topic`.
    func channel(_ topic: String) -> String { configuration.channelPrefix + topic }

    /// A topic gained its first or lost its last local subscriber.
    func topicChanged(_ topic: String, active: Bool) {
        if active { subscriber.subscribe([channel(topic)]) } else { subscriber.unsubscribe([channel(topic)]) }
    }

    /// Whether this node's subscription to `topic` is live in Redis.
    func isSubscribed(_ topic: String) -> Bool { subscriber.isSubscribed(channel(topic)) }

    /// Publishes for the other nodes; never waits.
    func publish(topic: String, message: Message, compress: Bool) {
        var payload: [UInt8] = [1, UInt8(nodeIDBytes.count)]
        payload += nodeIDBytes
        switch message {
        case .text(let s):
            payload.append(compress ? 2 : 0)
            payload += s.utf8
        case .binary(let b):
            payload.append(compress ? 3 : 1)
            payload += b
        }
        let dropped = self.dropped
        let logger = self.logger
        publisher.publish(payload, to: channel(topic)).whenFailure { error in
            if case RedisError.queueFull = error { dropped.withLockedValue { $0 += 1 } }
            logger.debug("redis publish failed: \(error)")
        }
    }

    /// Publishes refused because the queue was full.
    var droppedPublishes: Int { dropped.withLockedValue { $0 } }

    private func received(_ message: RedisMessage) {
        guard message.channel.hasPrefix(configuration.channelPrefix) else { return }
        let topic = String(message.channel.dropFirst(configuration.channelPrefix.count))
        let p = message.payload
        guard p.count >= 3, p[0] == 1, p.count >= 3 + Int(p[1]) else {
            logger.debug("ignoring a malformed message on \(message.channel)")
            return
        }
        let n = Int(p[1])
        if p[2..<2 + n].elementsEqual(nodeIDBytes) { return }  // our own, already delivered
        let flags = p[2 + n]
        let body = Array(p[(3 + n)...])
        let decoded: Message = flags & 1 != 0 ? .binary(body) : .text(String(decoding: body, as: UTF8.self))
        _ = server?.deliverLocally(topic, decoded, compress: flags & 2 != 0)
    }

    func close() async {
        await subscriber.close()
        await publisher.close()
    }
}

extension WebSocketServer {
    /// Backs this server's topics with Redis so several servers (nodes) share them: what
    /// `publish` sends reaches subscribers on every node connected to the same Redis
    /// with the same channel prefix. Connects in the background and reconnects with
    /// backoff; see `RedisTopicsConfiguration` and the README for delivery guarantees
    /// (Redis pub/sub is at-most-once). Throws if already connected or the node id is invalid.
    public func connectTopics(toRedis configuration: RedisTopicsConfiguration) throws {
        let backing = try RedisTopicBacking(server: self, configuration: configuration, logger: self.configuration.connection.logger)
        let installed = setRedisBackingIfNone(backing)
        guard installed else {
            Task { await backing.close() }
            throw WebSocketError.invalidState("topics are already connected to Redis, or the server is shutting down")
        }
        for topic in topics.observe({ [weak backing] topic, active in backing?.topicChanged(topic, active: active) }) {
            backing.topicChanged(topic, active: true)
        }
    }

    /// This node's id on Redis, or nil without a Redis backing.
    public var topicsNodeID: String? { redisBacking?.configuration.nodeID }

    /// Whether the Redis subscription for `topic` is live (Redis confirmed it on the
    /// current connection): messages published on other nodes from now on reach this
    /// node's subscribers. False without a Redis backing.
    public func isTopicLiveOnRedis(_ topic: String) -> Bool { redisBacking?.isSubscribed(topic) ?? false }

    /// Disconnects the topics from Redis (also done by `shutdown`).
    public func disconnectTopicsFromRedis() async {
        guard let backing = takeRedisBacking() else { return }
        _ = topics.observe(nil)
        await backing.close()
    }
}
