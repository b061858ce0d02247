import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSockets
@testable import SocketIO

// The Socket.IO client without Python: backoff, URLs, the open packet, the emit buffer,
// and the client against small Engine.IO servers built on WebSocketServer that misbehave
// on purpose (bad packets, no pings, refused connections).

@Suite struct BackoffTests {
    @Test func doublesUpToTheCapWithoutJitter() {
        var backoff = Backoff(minMilliseconds: 1000, maxMilliseconds: 5000, jitter: 0)
        #expect((0..<6).map { _ in backoff.nextDelay(random: 0.7) } == [1000, 2000, 4000, 5000, 5000, 5000])
        #expect(backoff.attempts == 6)
        backoff.reset()
        #expect(backoff.attempts == 0)
        #expect(backoff.nextDelay(random: 0.7) == 1000)
    }

    @Test func jitterMovesTheDelayUpOrDownByTheDrawnFraction() {
        // One draw: its size sets the deviation, the parity of its first decimal the sign.
        var up = Backoff(minMilliseconds: 1000, maxMilliseconds: 5000, jitter: 0.5)
        #expect(up.nextDelay(random: 0.15) == 1075)   // floor(1.5) = 1, odd: up by 0.15*0.5*1000
        var down = Backoff(minMilliseconds: 1000, maxMilliseconds: 5000, jitter: 0.5)
        #expect(down.nextDelay(random: 0.25) == 875)  // floor(2.5) = 2, even: down by 125
        #expect(down.nextDelay(random: 0.25) == 1750)
        var capped = Backoff(minMilliseconds: 1000, maxMilliseconds: 5000, jitter: 0.5)
        for _ in 0..<3 { _ = capped.nextDelay(random: 0) }
        #expect(capped.nextDelay(random: 0.99) == 5000)  // 8000 ± ... capped at max
    }

    @Test func randomDelaysStayInTheirBand() {
        var backoff = Backoff(minMilliseconds: 1000, maxMilliseconds: 5000, jitter: 0.5)
        for attempt in 0..<40 {
            let delay = backoff.nextDelay()
            let base = min(1000 * pow(2, Double(min(attempt, 31))), 1e12)
            #expect(Double(delay) >= min(base * 0.5, 5000) - 1 && delay <= 5000, "attempt \(attempt): \(delay)")
        }
    }
}

@Suite struct ServerAddressTests {
    @Test func parsesSchemesHostsPortsAndNamespaces() throws {
        let plain = try ServerAddress.parse("http://localhost:8080")
        #expect(plain == ServerAddress(secure: false, host: "localhost", port: 8080, namespace: "/", query: ""))
        #expect(try ServerAddress.parse("https://example.com/chat?token=a%20b") ==
                ServerAddress(secure: true, host: "example.com", port: 443, namespace: "/chat", query: "token=a%20b"))
        #expect(try ServerAddress.parse("ws://[::1]:9000/").namespace == "/")
        #expect(try ServerAddress.parse("ws://[::1]:9000/").host == "::1")
        #expect(try ServerAddress.parse("wss://h").port == 443)
        #expect(try ServerAddress.parse("example.org:81/admin#frag") ==
                ServerAddress(secure: false, host: "example.org", port: 81, namespace: "/admin", query: ""))
        #expect(try ServerAddress.parse("http://127.0.0.1:80").hostHeader == "127.0.0.1")
        #expect(try ServerAddress.parse("http://[::1]:81").hostHeader == "[::1]:81")
        #expect(try ServerAddress.parse("http://127.0.0.1").hostIsIPAddress)
        #expect(try !ServerAddress.parse("http://example.com").hostIsIPAddress)
    }

    @Test func rejectsUnusableURLs() {
        for bad in ["ftp://x", "http://", "http://:80", "http://h:0", "http://h:65536", "http://h:8a",
                    "http://u@h", "http://[::1", "http://h h", "http://h/a b"] {
            #expect(throws: ServerAddress.ParseError.self, "\(bad)") { try ServerAddress.parse(bad) }
        }
    }

    @Test func buildsEngineIORequestTargets() throws {
        let address = try ServerAddress.parse("http://h:1/ns?x=1")
        #expect(address.target(path: "/socket.io/", transport: .polling, sid: nil, extraQuery: []) ==
                "/socket.io/?EIO=4&transport=polling&x=1")
        #expect(address.target(path: "io", transport: .polling, sid: "a+b", extraQuery: [("k y", "é&")]) ==
                "/io?EIO=4&transport=polling&sid=a%2Bb&x=1&k%20y=%C3%A9%26")
        #expect(address.webSocketURL(path: "/socket.io/", sid: "s", extraQuery: []) ==
                "ws://h:1/socket.io/?EIO=4&transport=websocket&sid=s&x=1")
    }
}

@Suite struct EngineIOHandshakeTests {
    @Test func parsesTheOpenPacket() throws {
        let h = try #require(EngineIOHandshake(json: #"{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#))
        #expect(h.sid == "abc" && h.upgrades == ["websocket"] && h.maxPayload == 1_000_000)
        #expect(h.pingInterval == .milliseconds(25000) && h.pingTimeout == .milliseconds(20000))
        #expect(EngineIOHandshake(json: #"{"sid":"a","pingInterval":1,"pingTimeout":1}"#)?.maxPayload == 1_000_000)
    }

    @Test func refusesIncompleteOrOddOpenPackets() {
        for bad in ["", "[]", #"{"sid":"","pingInterval":1,"pingTimeout":1}"#, #"{"sid":"a","pingTimeout":1}"#,
                    #"{"sid":"a","pingInterval":-5,"pingTimeout":1}"#, #"{"sid":1,"pingInterval":1,"pingTimeout":1}"#,
                    #"{"sid":"a","pingInterval":1.5,"pingTimeout":1}"#] {
            #expect(EngineIOHandshake(json: bad) == nil, "\(bad)")
        }
    }
}

/// Records a socket's events for the tests of this file.
final class Recorder: @unchecked Sendable {
    private let lock = NIOLock()
    private var events: [SocketIOEvent] = []

    init(_ socket: SocketIOClient) {
        for name in ["connect", "disconnect", "connect_error", "reconnect_attempt", "reconnect", "reconnect_failed"] {
            socket.on(name) { [self] event in lock.withLock { events.append(event) } }
        }
        socket.onAny { [self] event in lock.withLock { events.append(event) } }
    }

    func all(_ name: String) -> [SocketIOEvent] { lock.withLock { events.filter { $0.name == name } } }

    @discardableResult
    func wait(_ name: String, count: Int = 1, timeout: Double = 10) async throws -> [SocketIOEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let found = all(name)
            if found.count >= count { return found }
            if Date() >= deadline {
                Issue.record("timed out waiting for \(name); saw \(lock.withLock { events.map(\.name) })")
                throw CancellationError()
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

/// Collects results delivered to callbacks.
final class Box<T: Sendable>: @unchecked Sendable {
    private let lock = NIOLock()
    private var items: [T] = []
    func append(_ item: T) { lock.withLock { items.append(item) } }
    var all: [T] { lock.withLock { items } }
}

func offlineOptions() -> SocketIOClientOptions {
    var options = SocketIOClientOptions()
    options.autoConnect = false
    options.reconnection = false
    return options
}

@Suite struct EmitBufferTests {
    @Test func buffersUpToTheLimitThenRefuses() async throws {
        var options = offlineOptions()
        options.maxBufferedEmits = 3
        let socket = io("http://127.0.0.1:9", options: options)
        #expect(socket.emit("a", 1))
        #expect(socket.emit("b", ["x": 1]))
        #expect(socket.emit("c"))
        #expect(socket.bufferedEmits == 3)
        let results = Box<Result<[JSONValue], SocketIOError>>()
        #expect(!socket.emit("d", 4) { results.append($0) })
        #expect(!socket.emit("e"))
        #expect(socket.bufferedEmits == 3)
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(results.all.count == 1)
        if case .failure(.disconnected) = results.all.first {} else { Issue.record("dropped emit's ack: \(results.all)") }
    }

    @Test func reservedNamesAreRefused() async throws {
        let socket = io("http://127.0.0.1:9", options: offlineOptions())
        for name in ["connect", "disconnect", "connect_error"] { #expect(!socket.emit(name)) }
        await #expect(throws: SocketIOError.reservedEventName("connect")) { try await socket.emitWithAck("connect") }
        #expect(socket.bufferedEmits == 0)
    }

    @Test func ackTimeoutRemovesTheBufferedEmit() async throws {
        let socket = io("http://127.0.0.1:9", options: offlineOptions())
        await #expect(throws: SocketIOError.ackTimeout) {
            try await socket.emitWithAck("late", 1, timeout: .milliseconds(50))
        }
        #expect(socket.bufferedEmits == 0)
    }
}

@Suite struct HandlerTests {
    @Test func onceOffAndOnAny() {
        let handlers = EventHandlers()
        let seen = Box<String>()
        handlers.add("a", once: false) { seen.append("a:\($0.data)") }
        handlers.add("a", once: true) { seen.append("once:\($0.data)") }
        let b = handlers.add("b", once: false) { seen.append("b:\($0.data)") }
        handlers.add(nil, once: false) { seen.append("any:\($0.name)") }
        handlers.dispatch(SocketIOEvent(name: "a", args: [1]), includeAny: true)
        handlers.dispatch(SocketIOEvent(name: "a", args: [2]))
        handlers.dispatch(SocketIOEvent(name: "b", args: [3]), includeAny: true)
        handlers.remove(b)
        handlers.dispatch(SocketIOEvent(name: "b", args: [4]))
        handlers.removeAll("a")
        handlers.dispatch(SocketIOEvent(name: "a", args: [5]))
        #expect(seen.all == ["a:1", "once:1", "any:a", "a:2", "b:3", "any:b"])
    }

    @Test func designExampleShape() {
        // The API as ../shared/DESIGN.md shows it, without a server: emits wait in the buffer.
        var options = offlineOptions()
        options.auth = ["token": "t"]
        let socket = SocketIOClient(host: "127.0.0.1", port: 9, options: options)
        socket.on("connect") { print("Client has connected to the server") }
        socket.on("message") { data in print("Message \(data) received from the server") }
        socket.on("disconnect") { print("Client has disconnected") }
        socket.emit("channel", ["hello": 1]) { ack in print(ack) }
        #expect(socket.manager.url == "http://127.0.0.1:9")
        #expect(socket.namespace == "/" && !socket.connected && socket.id == nil)
        #expect(socket.bufferedEmits == 1)
        #expect(socket.manager.socket("/") === socket)
        #expect(SocketIOClient(host: "::1", port: 80, namespace: "chat", options: options).manager.url == "http://[::1]:80")
    }
}

@Suite struct CodableTests {
    struct Message: Codable, Equatable {
        var user: String
        var count: Int
        var tags: [String]
        var blob: Data
    }

    @Test func roundTripsThroughJSONValue() throws {
        let message = Message(user: "ann", count: 3, tags: ["a", "b"], blob: Data([1, 2, 3]))
        let value = try JSONValue(encoding: message)
        #expect(value["user"] == "ann" && value["count"] == 3)
        #expect(try value.decode(Message.self) == message)
        // Binary decodes into Data (base64 in between).
        let withBinary: JSONValue = ["user": "bo", "count": 1, "tags": [], "blob": .binary([9, 8])]
        #expect(try withBinary.decode(Message.self).blob == Data([9, 8]))
        #expect(throws: (any Error).self) { try JSONValue.string("x").decode(Message.self) }
    }
}

// MARK: - Against small Engine.IO servers

/// An Engine.IO WebSocket endpoint that scripts its side: `onText` gets each text
/// message and the socket to answer on.
func fakeEngineIOServer(open: String?, onText: @escaping @Sendable (String, WebSocket) -> Void = { _, _ in },
                        http: (@Sendable (HTTPRequest) -> HTTPResponse)? = nil) async throws -> WebSocketServer {
    let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0, http: http)
    server.onconnection = { ws, _ in
        if let open { try? ws.send("0" + open) }
        ws.onmessage = { event in
            if case .text(let text) = event.data { onText(text, ws) }
        }
    }
    return server
}

let fakeOpen = #"{"sid":"fake","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}"#

@Suite(.serialized) struct MisbehavingServerTests {
    @Test func badPacketClosesWithParseError() async throws {
        let server = try await fakeEngineIOServer(open: fakeOpen) { text, ws in
            if text == "40" {
                try? ws.send(#"40{"sid":"ns-sid"}"#)
                try? ws.send(#"42["unterminated""#)
            }
        }
        var options = offlineOptions()
        options.transports = [.websocket]
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        let log = Recorder(socket)
        let ids = Box<String>()
        socket.on("connect") { ids.append(socket.id ?? "none") }
        socket.connect()
        try await log.wait("connect")
        #expect(try await log.wait("disconnect")[0].data == "parse error")
        #expect(ids.all == ["ns-sid"], "the id while connected")
        #expect(!socket.connected)
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func attachmentsOutOfStepAreAParseError() async throws {
        let server = try await fakeEngineIOServer(open: fakeOpen) { text, ws in
            if text == "40" {
                try? ws.send(#"40{"sid":"x"}"#)
                try? ws.send(#"451-["bin",{"_placeholder":true,"num":0}]"#)
                try? ws.send(#"42["text where an attachment was due"]"#)
            }
        }
        var options = offlineOptions()
        options.transports = [.websocket]
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        let log = Recorder(socket)
        socket.connect()
        #expect(try await log.wait("disconnect")[0].data == "parse error")
        #expect(log.all("bin").isEmpty)
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func binaryEventFromAttachments() async throws {
        let server = try await fakeEngineIOServer(open: fakeOpen) { text, ws in
            if text == "40" {
                try? ws.send(#"40{"sid":"x"}"#)
                try? ws.send(#"452-["bin",{"a":{"_placeholder":true,"num":1}},{"_placeholder":true,"num":0}]"#)
                try? ws.send([1, 2])
                try? ws.send([3])
            }
        }
        var options = offlineOptions()
        options.transports = [.websocket]
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        let log = Recorder(socket)
        socket.connect()
        #expect(try await log.wait("bin")[0].args == [["a": .binary([3])], .binary([1, 2])])
        socket.disconnect()
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func silentServerIsAPingTimeout() async throws {
        let open = #"{"sid":"s","upgrades":[],"pingInterval":200,"pingTimeout":200,"maxPayload":100000}"#
        let pongs = Box<String>()
        let server = try await fakeEngineIOServer(open: open) { text, ws in
            if text == "40" {
                try? ws.send(#"40{"sid":"x"}"#)
                try? ws.send("2")  // one ping, then silence
            } else {
                pongs.append(text)
            }
        }
        var options = offlineOptions()
        options.transports = [.websocket]
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        let log = Recorder(socket)
        socket.connect()
        try await log.wait("connect")
        let start = Date()
        #expect(try await log.wait("disconnect")[0].data == "ping timeout")
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(pongs.all.contains("3"), "the ping was answered: \(pongs.all)")
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func badOpenPacketOverPollingIsAConnectError() async throws {
        let server = try await fakeEngineIOServer(open: nil, http: { _ in .text("0{\"no\":\"sid\"}") })
        let socket = io("http://127.0.0.1:\(server.port)", options: offlineOptions())
        let log = Recorder(socket)
        socket.connect()
        let error = try await log.wait("connect_error")
        #expect(error[0].data.stringValue?.hasPrefix("parse error") == true, "\(error[0])")
        #expect(!socket.connected)
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func postsRespectMaxPayload() async throws {
        // A polling server answering at once: the open packet (maxPayload 100), the
        // namespace CONNECT once it was POSTed, otherwise noops. It keeps the POST bodies.
        let posts = Box<String>()
        let connected = NIOLockedValueBox(false)
        let server = try await fakeEngineIOServer(open: nil, http: { request in
            if request.method == "POST" {
                let body = String(decoding: request.body, as: UTF8.self)
                posts.append(body)
                if body.hasPrefix("40") { connected.withLockedValue { $0 = true } }
                return .text("ok")
            }
            if !request.query.contains("sid=") {
                return .text(#"0{"sid":"p","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100}"#)
            }
            let connect = connected.withLockedValue { was in defer { was = false }; return was }
            return .text(connect ? #"40{"sid":"ns"}"# : "6")
        })
        var options = offlineOptions()
        options.transports = [.polling]
        options.maxBufferedEmits = 100
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        let log = Recorder(socket)
        // Buffered before connecting, so they leave together: 40 packets of 27 bytes.
        for i in 0..<40 { socket.emit("e", .string(String(repeating: "x", count: 10 + i % 2))) }
        socket.connect()
        try await log.wait("connect")
        let deadline = Date().addingTimeInterval(10)
        var packets: [Substring] = []
        while Date() < deadline {
            packets = posts.all.flatMap { $0.split(separator: "\u{1E}") }.filter { $0.hasPrefix("42") }
            if packets.count >= 40 { break }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        #expect(packets.count == 40)
        let batches = posts.all.filter { $0.contains("42[") }
        #expect(batches.count >= 10, "40 packets of ~27 bytes need at least 10 POSTs of 100 bytes")
        for body in posts.all {
            #expect(body.utf8.count <= 100, "POST of \(body.utf8.count) bytes")
            #expect(body.split(separator: "\u{1E}").count <= EngineIOClient.maxPacketsPerPost)
        }
        socket.disconnect()
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func httpErrorIsATransportError() async throws {
        let server = try await fakeEngineIOServer(open: nil, http: { _ in .text("no", status: 503) })
        let socket = io("http://127.0.0.1:\(server.port)", options: offlineOptions())
        let log = Recorder(socket)
        socket.connect()
        let error = try await log.wait("connect_error")
        #expect(error[0].data.stringValue?.contains("HTTP 503") == true, "\(error[0])")
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func refusedConnectionsRetryThenGiveUp() async throws {
        // A port that was just free: nothing listens there.
        let probe = try await WebSocketServer.listen(host: "127.0.0.1", port: 0)
        let port = probe.port
        await probe.shutdown(deadline: .seconds(1))
        var options = offlineOptions()
        options.reconnection = true
        options.reconnectionAttempts = 2
        options.reconnectionDelay = .milliseconds(20)
        options.reconnectionDelayMax = .milliseconds(40)
        let socket = io("http://127.0.0.1:\(port)", options: options)
        let log = Recorder(socket)
        socket.connect()
        try await log.wait("reconnect_failed")
        #expect(log.all("connect_error").count == 3)  // the first try and two attempts
        #expect(log.all("reconnect_attempt").map { $0.data.intValue } == [1, 2])
        #expect(log.all("connect").isEmpty)
        // connect() after giving up starts over: one try and two more attempts.
        socket.connect()
        try await log.wait("reconnect_failed", count: 2)
        #expect(log.all("connect_error").count == 6)
        #expect(log.all("reconnect_attempt").map { $0.data.intValue } == [1, 2, 1, 2])
        socket.disconnect()
        #expect(!socket.active)
    }

    @Test func invalidURLReportsConnectError() async throws {
        let socket = io("ftp://nowhere", options: offlineOptions())
        let log = Recorder(socket)
        socket.connect()
        let error = try await log.wait("connect_error")
        #expect(error[0].data.stringValue?.contains("unsupported scheme") == true)
    }
}
