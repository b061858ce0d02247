import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import WebSockets

// Helpers for TopicsTests and RedisTopicsTests: many callback-API subscribers and the
// messages they received, in order.

/// The texts one client received, in arrival order.
final class TopicInbox: Sendable {
    private let state = NIOLockedValueBox<[String]>([])
    func add(_ s: String) { state.withLockedValue { $0.append(s) } }
    var texts: [String] { state.withLockedValue { $0 } }
    var count: Int { state.withLockedValue { $0.count } }
}

enum TopicTest {
    /// Opens `count` browser-style clients to `url` (in batches, so the accept backlog
    /// never overflows); each records its text messages in its inbox.
    static func clients(
        _ count: Int, url: String, configuration: ClientConfiguration = .init(),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> [(ws: WebSocket, inbox: TopicInbox)] {
        var out: [(WebSocket, TopicInbox)] = []
        var start = 0
        while start < count {
            let batch = (start..<min(start + 100, count)).map { _ -> (WebSocket, TopicInbox) in
                let ws = WebSocket(url: url, configuration: configuration, eventLoopGroup: group)
                let inbox = TopicInbox()
                ws.onmessage = { event in
                    if case .text(let s) = event.data { inbox.add(s) } else if case .binary(let b) = event.data {
                        inbox.add("binary:\(b.count)")
                    }
                }
                return (ws, inbox)
            }
            let opened = await Conn.waitUntil(seconds: 20) { batch.allSatisfy { $0.0.readyState == .open } }
            guard opened else {
                let states = batch.map { $0.0.readyState.rawValue }
                throw Conn.TimeoutError(what: "clients \(start)... to open (states \(states))")
            }
            out += batch
            start += batch.count
        }
        return out
    }

    /// The `i`th test message: `size` bytes of chat-like JSON (compressible) starting with its number.
    static func message(_ i: Int, size: Int = 125) -> String {
        var s = "{\"seq\":\(i),\"user\":\"alice\",\"text\":\""
        let filler = "hello there, how is the weather in the mountains today? "
        while s.utf8.count < size - 2 { s += filler }
        s = String(s.utf8.prefix(size - 2))!
        return s + "\"}"
    }
}
