import NIOCore
import WebSocketFraming

// Publish/subscribe on one server, optionally spread over several through Redis
// (`connectTopics(toRedis:)`).
extension WebSocketServer {
    /// Sends `message` to every connection subscribed to `topic` (see
    /// `WebSocket.subscribe(_:)`) and, with a Redis backing, to subscribers on every other
    /// node. Returns the number of local subscribers it was queued for.
    ///
    /// The frames are built once per message, not once per subscriber: one uncompressed
    /// set, and with permessage-deflate one compressed set per window size among
    /// subscribers whose server-to-client direction has no context takeover
    /// (`DeflateServerPolicy.serverNoContextTakeover`). Subscribers with context takeover
    /// compress the message themselves, as their stream depends on what they were sent
    /// before: with many subscribers, no context takeover trades some ratio (125-byte
    /// chat messages shrink to ~86% instead of ~25%) for one compression per message
    /// instead of one per subscriber. `compress: false`, or a message under the deflate
    /// threshold, sends the one uncompressed set to everybody.
    ///
    /// Never waits: each subscriber's frames are queued on its event loop and count in
    /// its `bufferedAmount`; a subscriber that does not keep up meets its
    /// `overflowPolicy` past `maxBufferedBytes` (closed with 1008 or 1013, or the message
    /// dropped for it), so a slow one never delays the others. Messages published from
    /// one thread reach each subscriber in publishing order.
    @discardableResult
    public func publish(_ topic: String, _ message: Message, compress: Bool = true) -> Int {
        let count = deliverLocally(topic, message, compress: compress)
        redisBacking?.publish(topic: topic, message: message, compress: compress)
        return count
    }

    /// Publishes a text message (see `publish(_:_:compress:)`).
    @discardableResult
    public func publish(_ topic: String, _ text: String, compress: Bool = true) -> Int {
        publish(topic, .text(text), compress: compress)
    }

    /// Publishes a binary message (see `publish(_:_:compress:)`).
    @discardableResult
    public func publish(_ topic: String, _ bytes: [UInt8], compress: Bool = true) -> Int {
        publish(topic, .binary(bytes), compress: compress)
    }

    /// Local connections subscribed to `topic` now.
    public func subscriberCount(_ topic: String) -> Int { topics.count(of: topic) }

    /// Queues `message` for this server's subscribers of `topic` (also what a message
    /// from another node through Redis comes to).
    func deliverLocally(_ topic: String, _ message: Message, compress: Bool) -> Int {
        guard let plan = topics.plan(for: topic) else { return 0 }
        let frames: PublishedFrames
        do {
            frames = try fanoutEncoder.encode(message, compress: compress, for: plan)
        } catch {
            // Only our own settings can make this fail (a deflate level out of range).
            configuration.connection.logger.error("cannot build published frames: \(error)")
            return 0
        }
        for group in plan.groups {
            let members = group.members
            let deliver: @Sendable () -> Void = {
                for ws in members { ws.deliverPublished(frames.frames(for: ws.fanout), message: frames.message, size: frames.size) }
            }
            if group.loop.inEventLoop { deliver() } else { group.loop.execute(deliver) }
        }
        return plan.count
    }
}

extension WebSocket {
    /// Subscribes this server-side connection to `topic`, so it receives what
    /// `WebSocketServer.publish` sends there; subscribing twice is one subscription.
    /// Topics are dropped when the connection closes. Returns false when already
    /// subscribed or no longer open. Throws `WebSocketError.invalidState` on a client
    /// connection (topics belong to a server).
    @discardableResult
    public func subscribe(_ topic: String) throws -> Bool {
        guard let registry = topicRegistry else {
            throw WebSocketError.invalidState("only server-side connections subscribe to topics")
        }
        guard readyState != .closed, registry.subscribe(self, to: topic) else { return false }
        // Closed meanwhile: the server's cleanup may have run before we were added.
        if readyState == .closed {
            registry.unsubscribe(self, from: topic)
            return false
        }
        return true
    }

    /// Unsubscribes from `topic`; returns whether it was subscribed.
    @discardableResult
    public func unsubscribe(_ topic: String) -> Bool {
        topicRegistry?.unsubscribe(self, from: topic) ?? false
    }

    /// The topics this connection subscribes to.
    public var topics: Set<String> { topicRegistry?.topics(of: self) ?? [] }
}
