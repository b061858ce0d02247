import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RedisPubSub

/// Spreads a Socket.IO server's broadcasts over several nodes through Redis pub/sub,
/// wire-compatible with python-socketio's `AsyncRedisManager`: JSON messages on one
/// channel ("socketio" by default) with `method` emit / enter_room / leave_room /
/// close_room / disconnect and the sender's `host_id`. So `io.to(room).emit(...)` and
/// broadcasts reach clients on every node, python-socketio nodes included, and theirs
/// reach ours.
///
/// Limits, on purpose:
/// - Redis pub/sub is at-most-once: a node that is disconnected from Redis misses what is
///   published meanwhile. Our publishes made while Redis is down are queued (bounded by
///   `RedisConfiguration.maxQueuedCommands` / `maxQueuedBytes`) and sent on reconnect.
/// - Acknowledgements do not cross nodes (python's `callback` messages are ignored).
/// - `except(room)` is honoured by our nodes (field `except_rooms`); python nodes do not
///   know it and deliver to those rooms' members on their side.
public final class SocketIORedisAdapter: @unchecked Sendable {
    /// This node's id in the messages (32 hex digits, like python's uuid4().hex).
    public let hostID: String
    /// The Redis channel.
    public let channel: String
    private let publisher: RedisClient
    private var subscriber: RedisSubscriber?
    private weak var server: SocketIOServer?
    private let logger: Logger

    /// Connects to Redis (`redis://[:password@]host:port[/db]`) and starts relaying
    /// `server`'s broadcasts; returns once the channel subscription is confirmed, or
    /// throws `SocketIOError.transport` if Redis does not confirm it within `timeout`.
    public static func attach(to server: SocketIOServer, url: String, channel: String = "socketio",
                              timeout: TimeAmount = .seconds(10),
                              eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> SocketIORedisAdapter {
        let configuration = try RedisConfiguration(url: url)
        let adapter = SocketIORedisAdapter(server: server, configuration: configuration, channel: channel, group: eventLoopGroup)
        let loop = eventLoopGroup.next()
        let confirmed = loop.makePromise(of: Void.self)
        let done = NIOLockedValueBox(false)
        @Sendable func finish(_ result: Result<Void, Error>) {
            guard !done.withLockedValue({ let was = $0; $0 = true; return was }) else { return }
            confirmed.completeWith(result)
        }
        adapter.subscriber?.subscribe([channel]).whenComplete { finish($0) }
        let timer = loop.scheduleTask(in: timeout) {
            finish(.failure(SocketIOError.transport("Redis at \(configuration.host):\(configuration.port) did not confirm the subscription within \(timeout)")))
        }
        do {
            try await confirmed.futureResult.get()
            timer.cancel()
            return adapter
        } catch {
            timer.cancel()
            await adapter.close()
            throw error
        }
    }

    private init(server: SocketIOServer, configuration: RedisConfiguration, channel: String, group: EventLoopGroup) {
        var rng = SystemRandomNumberGenerator()
        hostID = (0..<4).map { _ in
            let hex = String(rng.next() & 0xFFFF_FFFF, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
        self.channel = channel
        self.server = server
        self.logger = server.configuration.logger
        publisher = RedisClient(configuration: configuration, eventLoopGroup: group, logger: logger)
        subscriber = RedisSubscriber(configuration: configuration, eventLoopGroup: group, logger: logger) { [weak self] message in
            self?.receive(message.payload)
        }
        server.relay.install { [weak self] broadcast, event, args in self?.publish(broadcast, event: event, args: args) }
    }

    /// Stops relaying and closes both Redis connections.
    public func close() async {
        server?.relay.install { _, _, _ in }
        await subscriber?.close()
        await publisher.close()
    }

    // MARK: Outgoing

    private func publish(_ broadcast: SocketIOBroadcast, event: String, args: [JSONValue]) {
        var message: [String: JSONValue] = [
            "method": "emit", "event": .string(event), "namespace": .string(broadcast.namespace.name),
            "host_id": .string(hostID), "callback": .null,
        ]
        let rooms = broadcast.rooms.sorted()
        message["room"] = rooms.isEmpty ? .null : rooms.count == 1 ? .string(rooms[0]) : .array(rooms.map { .string($0) })
        message["skip_sid"] = broadcast.excludingSocket.map { .string($0) } ?? .null
        if !broadcast.except.isEmpty { message["except_rooms"] = .array(broadcast.except.sorted().map { .string($0) }) }
        var attachments: [[UInt8]] = []
        let data = SocketIOPacket.deconstruct(.array(args), into: &attachments)
        if attachments.isEmpty {
            message["data"] = data
            message["binary"] = false
        } else {
            message["data"] = .array([data] + attachments.map { .string(Base64.encode($0)) })
            message["binary"] = true
        }
        publish(.object(message))
    }

    private func publish(_ message: JSONValue) {
        let channel = self.channel
        let logger = self.logger
        publisher.publish(Array(message.description.utf8), to: channel).whenFailure { error in
            logger.warning("could not publish to Redis channel \(channel): \(error)")
        }
    }

    // MARK: Incoming

    private func receive(_ payload: [UInt8]) {
        guard let message = try? JSONText.parse(payload), let method = message["method"]?.stringValue else {
            return logger.debug("ignoring a non-Socket.IO message on \(channel)")
        }
        // Our own messages come back from Redis; python also answers callbacks by host.
        guard message["host_id"]?.stringValue != hostID, let server else { return }
        let namespaceName = message["namespace"]?.stringValue ?? "/"
        guard let namespace = server.existingNamespace(namespaceName) else { return }
        switch method {
        case "emit":
            guard let event = message["event"]?.stringValue, let args = Self.arguments(of: message) else {
                return logger.debug("ignoring a malformed emit on \(channel)")
            }
            var broadcast = SocketIOBroadcast(namespace: namespace)
            broadcast.rooms = Set(Self.strings(message["room"]))
            broadcast.except = Set(Self.strings(message["except_rooms"]))
            let skipped = Set(Self.strings(message["skip_sid"]))
            // Deliver to this node's sockets only (relaying it again would loop), encoded once.
            let targets = broadcast.sockets.filter { !skipped.contains($0.id) }
            guard !targets.isEmpty else { return }
            let packets = SocketIOPacket(.event, namespace: namespaceName, data: .array([.string(event)] + args)).engineIOPackets()
            for socket in targets { socket.sendEncoded(packets) }
        case "enter_room", "leave_room":
            guard let sid = message["sid"]?.stringValue, let room = message["room"]?.stringValue,
                  namespace.socket(id: sid) != nil else { return }
            if method == "enter_room" { namespace.join(sid, room: room) } else { namespace.leave(sid, room: room) }
        case "close_room":
            guard let room = message["room"]?.stringValue else { return }
            for socket in namespace.to(room).sockets { socket.leave(room) }
        case "disconnect":
            guard let sid = message["sid"]?.stringValue else { return }
            namespace.socket(id: sid)?.disconnect()
        default:
            break
        }
    }

    /// The event arguments, binary attachments put back in place.
    private static func arguments(of message: JSONValue) -> [JSONValue]? {
        guard let data = message["data"] else { return nil }
        if message["binary"] == .bool(true) {
            guard let parts = data.arrayValue, let first = parts.first else { return nil }
            var attachments: [[UInt8]] = []
            for p in parts.dropFirst() {
                guard let text = p.stringValue, let bytes = Base64.decode(text) else { return nil }
                attachments.append(bytes)
            }
            guard let filled = try? SocketIOPacket.fill(first, attachments) else { return nil }
            return filled.arrayValue ?? [filled]
        }
        // python sends a list of arguments; a bare value is one argument.
        return data.arrayValue ?? [data]
    }

    /// A string or a list of strings (null: none).
    private static func strings(_ value: JSONValue?) -> [String] {
        switch value {
        case .string(let s)?: return [s]
        case .array(let a)?: return a.compactMap(\.stringValue)
        default: return []
        }
    }
}
