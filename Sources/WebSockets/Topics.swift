import NIOConcurrencyHelpers
import NIOCore
import WebSocketFraming

/// How a published message reaches one connection, fixed at its handshake by the
/// permessage-deflate agreement of the server-to-client direction.
enum FanoutEncoding: Hashable, Sendable {
    /// No compression: takes the one shared uncompressed frame.
    case plain
    /// Compression without server context takeover: every message is compressed from a
    /// fresh state, so one compressed frame per window size serves all such connections.
    case sharedDeflate(windowBits: Int)
    /// Compression with context takeover: each message depends on what this connection
    /// sent before, so the connection compresses it itself.
    case ownDeflate
    /// Draft-76 framing: built by the connection itself.
    case legacy

    /// The encoding for a connection with these agreed parameters (nil: no deflate).
    init(deflate: DeflateParameters?) {
        guard let deflate else {
            self = .plain
            return
        }
        // zlib cannot compress with an 8-bit window: those connections send uncompressed.
        if deflate.serverMaxWindowBits < 9 {
            self = .plain
        } else if deflate.serverNoContextTakeover {
            self = .sharedDeflate(windowBits: deflate.serverMaxWindowBits)
        } else {
            self = .ownDeflate
        }
    }
}

/// The subscribers of one topic, grouped by event loop, as `publish` walks them: one task
/// per loop per message, whatever the number of subscribers on it.
struct FanoutPlan {
    struct Group {
        let loop: EventLoop
        var members: [WebSocket]
    }

    var groups: [Group] = []
    /// Distinct windows among `.sharedDeflate` members: one compressed frame each.
    var windows: [Int] = []
    /// Whether some member takes the shared uncompressed frame.
    var needsPlain = false
    /// Whether some member builds its own frames.
    var needsMessage = false
    var count = 0
}

/// Which connections of one server subscribe to which topics. Thread-safe: connections
/// subscribe from their own event loops and `publish` may run on any thread.
///
/// A topic exists while it has a subscriber. `observer` hears when a topic gains its
/// first subscriber or loses its last one (the Redis backing subscribes to the topic's
/// channel then); it is called under the registry's lock, in order, so it must only
/// hand the change on (for example to an event loop), never call back in.
final class TopicRegistry: @unchecked Sendable {
    private let lock = NIOLock()
    private var members: [String: [ObjectIdentifier: WebSocket]] = [:]
    private var topicsBySocket: [ObjectIdentifier: Set<String>] = [:]
    /// Plans built by `plan(for:)`, dropped when the topic's subscribers change.
    private var plans: [String: FanoutPlan] = [:]
    private var observer: (@Sendable (_ topic: String, _ active: Bool) -> Void)?

    /// Sets the observer and returns the topics that exist now (to catch up on).
    func observe(_ observer: (@Sendable (_ topic: String, _ active: Bool) -> Void)?) -> [String] {
        lock.withLock {
            self.observer = observer
            return Array(members.keys)
        }
    }

    /// Adds `socket` to `topic`; false if it already was a subscriber.
    @discardableResult
    func subscribe(_ socket: WebSocket, to topic: String) -> Bool {
        let id = ObjectIdentifier(socket)
        return lock.withLock {
            if members[topic]?[id] != nil { return false }
            let first = members[topic] == nil
            members[topic, default: [:]][id] = socket
            topicsBySocket[id, default: []].insert(topic)
            plans[topic] = nil
            if first { observer?(topic, true) }
            return true
        }
    }

    /// Removes `socket` from `topic`; false if it was not a subscriber.
    @discardableResult
    func unsubscribe(_ socket: WebSocket, from topic: String) -> Bool {
        let id = ObjectIdentifier(socket)
        return lock.withLock { remove(id, from: topic) }
    }

    /// Removes the socket with this identity from every topic (it closed).
    func drop(_ id: ObjectIdentifier) {
        lock.withLock {
            for topic in topicsBySocket[id] ?? [] { _ = remove(id, from: topic) }
        }
    }

    /// Call with the lock held.
    private func remove(_ id: ObjectIdentifier, from topic: String) -> Bool {
        guard members[topic]?.removeValue(forKey: id) != nil else { return false }
        if topicsBySocket[id]?.remove(topic) != nil, topicsBySocket[id]?.isEmpty == true {
            topicsBySocket[id] = nil
        }
        plans[topic] = nil
        if members[topic]?.isEmpty == true {
            members[topic] = nil
            observer?(topic, false)
        }
        return true
    }

    /// The topics `socket` subscribes to.
    func topics(of socket: WebSocket) -> Set<String> {
        lock.withLock { topicsBySocket[ObjectIdentifier(socket)] ?? [] }
    }

    /// Subscribers of `topic` now.
    func count(of topic: String) -> Int { lock.withLock { members[topic]?.count ?? 0 } }

    /// Topics with at least one subscriber.
    var activeTopics: [String] { lock.withLock { Array(members.keys) } }

    /// The subscribers of `topic`, grouped for publishing (nil: none). Built once per
    /// change of the topic's subscribers, so steady publishing does no grouping work.
    func plan(for topic: String) -> FanoutPlan? {
        lock.withLock {
            if let plan = plans[topic] { return plan }
            guard let sockets = members[topic], !sockets.isEmpty else { return nil }
            var plan = FanoutPlan()
            var groupIndex: [ObjectIdentifier: Int] = [:]
            var windows = Set<Int>()
            for socket in sockets.values {
                let loop = ObjectIdentifier(socket.eventLoop)
                if let i = groupIndex[loop] {
                    plan.groups[i].members.append(socket)
                } else {
                    groupIndex[loop] = plan.groups.count
                    plan.groups.append(.init(loop: socket.eventLoop, members: [socket]))
                }
                switch socket.fanout {
                case .plain: plan.needsPlain = true
                case .sharedDeflate(let bits): windows.insert(bits)
                case .ownDeflate, .legacy: plan.needsMessage = true
                }
            }
            plan.windows = windows.sorted()
            plan.count = sockets.count
            plans[topic] = plan
            return plan
        }
    }
}
