import NIOPosix
import NIOCore
import Testing
@testable import WebSockets

/// An echo server on a free loopback port.
func startEchoServer(_ configuration: ServerConfiguration = .init()) async throws -> WebSocketServer {
    let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: configuration) { _ in
        .html("<h1>Welcome to WebSockets</h1>")
    }
    server.onconnection = { ws, _ in
        ws.onmessage = { event in try? ws.send(event.data) }
    }
    return server
}

@Suite struct EchoTests {
    @Test func asyncClientEchoesTextAndBinary() async throws {
        let server = try await startEchoServer()
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/echo")
        #expect(ws.readyState == .open)
        #expect(ws.extensions.contains("permessage-deflate"))
        var iterator = ws.messages.makeAsyncIterator()
        try await ws.send(.text("hello"))
        #expect(try await iterator.next() == .text("hello"))
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await ws.send(.binary(big))
        #expect(try await iterator.next() == .binary(big))
        try await ws.close(code: 1000, reason: "done")
        #expect(ws.readyState == .closed)
        await server.shutdown(deadline: .seconds(2))
    }

    @Test func browserStyleClient() async throws {
        let server = try await startEchoServer()
        let ws = WebSocket(url: "ws://127.0.0.1:\(server.port)/")
        // Still CONNECTING unless a loaded machine let the event loop finish the
        // handshake before this line; while CONNECTING, send throws as in a browser.
        if ws.readyState == .connecting {
            #expect(throws: WebSocketError.self) { try ws.send("too early") }
        } else {
            #expect(ws.readyState == .open)
        }
        let events = EventLog()
        ws.onopen = { _ in
            events.add("open")
            try? ws.send("Sending a message to the server")
        }
        ws.onmessage = { event in
            events.add("message \(event.data)")
            try? ws.close()
        }
        ws.onclose = { event in events.add("close \(event.code) \(event.wasClean)") }
        await ws.closed()
        #expect(events.all == ["open", "message text(\"Sending a message to the server\")", "close 1005 true"])
        await server.shutdown(deadline: .seconds(2))
    }
}

/// A thread-safe list of strings for callbacks.
final class EventLog: @unchecked Sendable {
    private var items: [String] = []
    private let lock = NSLockLike()
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}

import NIOConcurrencyHelpers
typealias NSLockLike = NIOLock

@Suite struct SharedCodecTests {
    /// Without context takeover, the connections of one event loop borrow zlib streams
    /// per message from the loop's pool: after traffic on three connections the server
    /// holds one idle compressor and decompressor, not three of each.
    @Test func connectionsOfALoopShareZlibStreams() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ServerConfiguration()
        config.deflate.serverNoContextTakeover = true
        config.deflate.clientNoContextTakeover = true
        config.connection.deflateSettings.threshold = 0
        let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: config, eventLoopGroup: group)
        server.onconnection = { ws, _ in ws.onmessage = { try? ws.send($0.data) } }
        var clients: [WebSocket] = []
        for i in 0..<3 {
            let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/\(i)")
            #expect(ws.extensions.contains("server_no_context_takeover"))
            clients.append(ws)
        }
        let text = String(repeating: "compress me, please; ", count: 50)
        for ws in clients {
            var it = ws.messages.makeAsyncIterator()
            try await ws.send(.text(text))
            #expect(try await it.next() == .text(text))
        }
        let idle = try await group.next().submit { SharedCodecs.pool(for: group.next()).idleCount }.get()
        #expect(idle.deflaters == 1)
        #expect(idle.inflaters == 1)
        for ws in clients { try await ws.close() }
        await server.shutdown(deadline: .seconds(2))
        try await group.shutdownGracefully()
    }
}

@Suite struct LateHandlerTests {
    /// A refused connect can fail before the caller's next line sets the handlers: the
    /// handlers still get that error and close, once.
    @Test func handlersSetAfterAnImmediateFailureStillFire() async throws {
        let ws = WebSocket(url: "ws://127.0.0.1:1/")
        await ws.closed()  // failed and closed with no handler set
        let events = EventLog()
        ws.onerror = { _ in events.add("error") }
        ws.onclose = { event in events.add("close \(event.code)") }
        for _ in 0..<200 where events.all.count < 2 { try await Task.sleep(nanoseconds: 5_000_000) }
        #expect(events.all == ["error", "close 1006"])
        // A second handler set later does not get the events again.
        ws.onclose = { _ in events.add("again") }
        try await Task.sleep(nanoseconds: 50_000_000)
        #expect(events.all == ["error", "close 1006"])
    }
}
