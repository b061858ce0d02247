import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSockets
@testable import SocketIO

/// A server for raw protocol tests, with the events it saw.
final class ProtocolTestServer: @unchecked Sendable {
    let http: WebSocketServer
    let io: SocketIOServer
    private let lock = NIOLock()
    private var _events: [String] = []
    private var _disconnects: [String] = []
    var events: [String] { lock.withLock { _events } }
    var disconnects: [String] { lock.withLock { _disconnects } }
    var port: Int { http.port }

    init(configure: (inout SocketIOServerConfiguration) -> Void = { _ in }) async throws {
        http = try await WebSocketServer.listen(host: "127.0.0.1", port: 0) { _ in .text("home\n") }
        var config = SocketIOServerConfiguration()
        configure(&config)
        io = SocketIOServer(attachingTo: http, configuration: config)
        io.on("connection") { [self] socket in
            socket.onAny { [self] event in
                lock.withLock { _events.append("\(event.name) \(event.description)") }
                if event.name == "send-binary" { socket.emit("bytes", .binary([0, 1, 2, 255])) }
            }
            socket.on("disconnect") { [self] event in lock.withLock { _disconnects.append(event.data.stringValue ?? "") } }
        }
    }

    func stop() async {
        io.close()
        await http.shutdown(deadline: .seconds(1))
    }

    /// An Engine.IO session over polling: returns the sid and the open packet.
    func handshake(headers: [(String, String)] = []) throws -> (sid: String, open: JSONValue, response: RawHTTP.Response) {
        let r = try RawHTTP.request(port: port, path: "/socket.io/?EIO=4&transport=polling", headers: headers)
        guard r.status == 200, r.body.hasPrefix("0"), let open = try? JSONText.parse(String(r.body.dropFirst())),
              let sid = open["sid"]?.stringValue else { throw RawHTTP.Failure(description: "bad handshake: \(r.status) \(r.body)") }
        return (sid, open, r)
    }

    /// A polling session that joined "/" (CONNECT sent, its answer polled): the sid.
    func joinedSession() throws -> String {
        let (sid, _, _) = try handshake()
        _ = try post(sid, "40")
        _ = try poll(sid)
        return sid
    }

    func poll(_ sid: String) throws -> RawHTTP.Response {
        try RawHTTP.request(port: port, path: "/socket.io/?EIO=4&transport=polling&sid=\(sid)")
    }

    func post(_ sid: String, _ body: String) throws -> RawHTTP.Response {
        try RawHTTP.request(port: port, method: "POST", path: "/socket.io/?EIO=4&transport=polling&sid=\(sid)", body: Array(body.utf8))
    }
}

@Suite(.serialized) struct ServerProtocolTests {
    @Test func pollingHandshakeAnnouncesSettings() async throws {
        let server = try await ProtocolTestServer()
        let (sid, open, response) = try server.handshake()
        #expect(sid.count == 20 && sid.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(open["upgrades"] == ["websocket"])
        #expect(open["pingInterval"] == 25000 && open["pingTimeout"] == 20000 && open["maxPayload"] == 1_000_000)
        #expect(response.header("Access-Control-Allow-Origin") == nil)
        // Session ids do not repeat.
        #expect(try server.handshake().sid != sid)
        // The rest of the port still answers plain HTTP.
        #expect(try RawHTTP.request(port: server.port, path: "/").body == "home\n")
        await server.stop()
    }

    @Test func refusesBadRequestsWithEngineIOErrorCodes() async throws {
        let server = try await ProtocolTestServer()
        let cases: [(String, String, Int)] = [
            ("GET", "/socket.io/?EIO=3&transport=polling", 5),
            ("GET", "/socket.io/?transport=polling", 5),
            ("GET", "/socket.io/?EIO=4&transport=carrier-pigeon", 0),
            ("GET", "/socket.io/?EIO=4&transport=polling&sid=nope", 1),
            ("POST", "/socket.io/?EIO=4&transport=polling", 2),
            ("PUT", "/socket.io/?EIO=4&transport=polling&sid=nope", 1),
        ]
        for (method, path, code) in cases {
            let r = try RawHTTP.request(port: server.port, method: method, path: path)
            #expect(r.status == 400, "\(method) \(path)")
            #expect(try JSONText.parse(r.body)["code"] == .number(Double(code)), "\(method) \(path): \(r.body)")
        }
        await server.stop()
    }

    @Test func webSocketOnlyServerRefusesPolling() async throws {
        let server = try await ProtocolTestServer { $0.transports = [.websocket] }
        let r = try RawHTTP.request(port: server.port, path: "/socket.io/?EIO=4&transport=polling")
        #expect(r.status == 400)
        #expect(try JSONText.parse(r.body)["code"] == 0)
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket")
        let dog = watchdog(ws)
        defer { dog.cancel() }
        var messages = ws.messages.makeAsyncIterator()
        guard case .text(let open)? = try await messages.next() else { throw RawHTTP.Failure(description: "no open packet") }
        #expect(open.hasPrefix("0{") && open.contains("\"upgrades\":[]"))
        try await ws.close()
        await server.stop()
    }

    @Test func pollingCarriesEventsBothWays() async throws {
        let server = try await ProtocolTestServer()
        let (sid, _, _) = try server.handshake()
        #expect(try server.post(sid, "40").body == "ok")
        let connect = try server.poll(sid)
        #expect(connect.body.hasPrefix("40{\"sid\":"), "\(connect.body)")
        // Two packets in one body, separated by 0x1E.
        #expect(try server.post(sid, "42[\"hello\",\"x\"]\u{1E}42[\"send-binary\"]").status == 200)
        // Binary goes as "b" + base64 after the placeholder packet.
        let binary = try server.poll(sid)
        #expect(binary.body == "451-[\"bytes\",{\"_placeholder\":true,\"num\":0}]\u{1E}bAAEC/w==", "\(binary.body)")
        #expect(server.events == ["hello \"x\"", "send-binary []"])
        // A binary event from the client, over polling.
        #expect(try server.post(sid, "451-[\"up\",{\"_placeholder\":true,\"num\":0}]\u{1E}bAQID").status == 200)
        try await waitFor { server.events.count == 3 }
        #expect(server.events.last == "up \"<binary 3 bytes>\"")
        await server.stop()
    }

    @Test func heldPollIsAnsweredWhenAnEventArrives() async throws {
        let server = try await ProtocolTestServer()
        let sid = try server.joinedSession()
        let poll = Task.detached { try server.poll(sid) }
        try await Task.sleep(nanoseconds: 200_000_000)
        server.io.emit("news", "late")
        let body = try await poll.value.body
        #expect(body == "42[\"news\",\"late\"]")
        await server.stop()
    }

    @Test func malformedPacketsCloseOnlyThatClient() async throws {
        let server = try await ProtocolTestServer()
        let bodies = ["9zz", "4", "42[\"unterminated\"", "452-[\"x\",{\"_placeholder\":true,\"num\":7}]\u{1E}bAA==\u{1E}bAA==",
                      "42" + String(repeating: "[", count: 5000), "b!!!", "40\u{1E}", "4\u{FFFD}"]
        for body in bodies {
            let sid = try server.joinedSession()
            let r = try server.post(sid, body)
            #expect(r.status == 400 || r.status == 200, "\(body.prefix(40))")
            // The session is gone (or answers only its close packet).
            let after = try server.poll(sid)
            #expect(after.status == 400 || after.body == "1", "\(body.prefix(40)): \(after.status) \(after.body)")
        }
        // The server still serves new clients.
        let (sid, _, _) = try server.handshake()
        #expect(try server.post(sid, "40").body == "ok")
        #expect(try server.poll(sid).body.hasPrefix("40"))
        await server.stop()
    }

    @Test func oversizedPollingBodyGets413AndClosesTheSession() async throws {
        let server = try await ProtocolTestServer { $0.maxPayload = 1000 }
        let sid = try server.joinedSession()
        let big = "42[\"x\",\"" + String(repeating: "a", count: 2000) + "\"]"
        #expect(try server.post(sid, big).status == 413)
        #expect(try server.poll(sid).status == 400)
        try await waitFor { server.disconnects == ["transport error"] }
        await server.stop()
    }

    @Test func corsAndOrigins() async throws {
        let server = try await ProtocolTestServer {
            $0.allowedOrigins = ["http://ok.example"]
            $0.cookie = "io"
        }
        let (sid, _, ok) = try server.handshake(headers: [("Origin", "http://ok.example")])
        #expect(ok.header("Access-Control-Allow-Origin") == "http://ok.example")
        #expect(ok.header("Access-Control-Allow-Credentials") == "true")
        #expect(ok.header("Set-Cookie")?.hasPrefix("io=\(sid);") == true)
        let bad = try RawHTTP.request(port: server.port, path: "/socket.io/?EIO=4&transport=polling", headers: [("Origin", "http://evil.example")])
        #expect(bad.status == 403)
        let preflight = try RawHTTP.request(port: server.port, method: "OPTIONS", path: "/socket.io/?EIO=4&transport=polling",
                                            headers: [("Origin", "http://ok.example"), ("Access-Control-Request-Headers", "content-type")])
        #expect(preflight.status == 204)
        #expect(preflight.header("Access-Control-Allow-Methods")?.contains("POST") == true)
        #expect(preflight.header("Access-Control-Allow-Headers") == "content-type")
        // The WebSocket upgrade checks the origin too.
        var config = ClientConfiguration()
        config.headers = [("Origin", "http://evil.example")]
        await #expect(throws: (any Error).self) {
            _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket", configuration: config)
        }
        await server.stop()
    }

    @Test func overlappingPollsCloseTheSession() async throws {
        let server = try await ProtocolTestServer()
        let sid = try server.joinedSession()
        let first = Task.detached { try server.poll(sid) }
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(try server.poll(sid).status == 400)
        // The held poll is released with the close packet.
        #expect(try await first.value.body == "1")
        await server.stop()
    }

    @Test func clientThatNeverJoinsANamespaceIsDropped() async throws {
        let server = try await ProtocolTestServer { $0.connectTimeout = .milliseconds(300) }
        let (sid, _, _) = try server.handshake()
        try await Task.sleep(nanoseconds: 600_000_000)
        let r = try server.poll(sid)
        #expect(r.status == 400 || r.body == "1")
        #expect(server.io.clientCount == 0)
        await server.stop()
    }

    @Test func unknownNamespaceGetsConnectError() async throws {
        let server = try await ProtocolTestServer()
        let (sid, _, _) = try server.handshake()
        _ = try server.post(sid, "40/nowhere,")
        let r = try server.poll(sid)
        #expect(r.body == "44/nowhere,{\"message\":\"Invalid namespace\"}")
        await server.stop()
    }

    @Test func webSocketMessagesAboveMaxPayloadClose1009() async throws {
        let server = try await ProtocolTestServer { $0.maxPayload = 1000 }
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket")
        let dog = watchdog(ws)
        defer { dog.cancel() }
        var messages = ws.messages.makeAsyncIterator()
        guard case .text(let open)? = try await messages.next() else { throw RawHTTP.Failure(description: "no open packet") }
        #expect(open.hasPrefix("0{\"") && open.contains("\"upgrades\":[]"))
        try await ws.send("40")
        guard case .text(let connected)? = try await messages.next() else { throw RawHTTP.Failure(description: "no CONNECT") }
        #expect(connected.hasPrefix("40{\"sid\":"))
        try await ws.send("42[\"x\",\"" + String(repeating: "a", count: 2000) + "\"]")
        let closed = await closeCode(ws)
        #expect(closed == 1009)
        try await waitFor { server.disconnects == ["transport error"] }
        await server.stop()
    }

    @Test func upgradeFromPollingToWebSocket() async throws {
        let server = try await ProtocolTestServer()
        let sid = try server.joinedSession()
        let held = Task.detached { try server.poll(sid) }
        try await Task.sleep(nanoseconds: 100_000_000)
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket&sid=\(sid)")
        let dog = watchdog(ws)
        defer { dog.cancel() }
        var messages = ws.messages.makeAsyncIterator()
        try await ws.send("2probe")
        #expect(try await messages.next() == .text("3probe"))
        // The held poll is released with a noop so the client can pause polling.
        #expect(try await held.value.body == "6")
        // Something emitted before the upgrade completes waits, then goes over WebSocket.
        server.io.emit("queued", 1)
        try await ws.send("5")
        #expect(try await messages.next() == .text("42[\"queued\",1]"))
        try await ws.send("42[\"over-ws\"]")
        try await waitFor { server.events.contains("over-ws []") }
        #expect(server.io.sockets.sockets.first?.transport == .websocket)
        // Polling is over for this session.
        #expect(try server.poll(sid).status == 400)
        try await ws.close()
        await server.stop()
    }

    @Test func probeWithoutUpgradeTimesOutAndPollingGoesOn() async throws {
        let server = try await ProtocolTestServer { $0.upgradeTimeout = .milliseconds(300) }
        let sid = try server.joinedSession()
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket&sid=\(sid)")
        let dog = watchdog(ws)
        defer { dog.cancel() }
        var messages = ws.messages.makeAsyncIterator()
        try await ws.send("2probe")
        #expect(try await messages.next() == .text("3probe"))
        #expect(await closeCode(ws) == 1008)
        server.io.emit("still-polling")
        #expect(try server.poll(sid).body == "42[\"still-polling\"]")
        await server.stop()
    }

    @Test func serverAcknowledgementsTimeOut() async throws {
        let server = try await ProtocolTestServer()
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket")
        let dog = watchdog(ws)
        defer { dog.cancel() }
        var messages = ws.messages.makeAsyncIterator()
        _ = try await messages.next()
        try await ws.send("40")
        _ = try await messages.next()
        try await waitFor { !server.io.sockets.sockets.isEmpty }
        let socket = server.io.sockets.sockets[0]
        let start = ContinuousClock.now
        await #expect(throws: SocketIOError.ackTimeout) {
            _ = try await socket.emitWithAck("question", 1, timeout: .milliseconds(200))
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        // The client saw the event with an ack id.
        guard case .text(let asked)? = try await messages.next() else { throw RawHTTP.Failure(description: "no event") }
        #expect(asked == "420[\"question\",1]")
        // An answered ack resolves.
        let answer = Task { try await socket.emitWithAck("question", 2, timeout: .seconds(10)) }
        guard case .text(let asked2)? = try await messages.next() else { throw RawHTTP.Failure(description: "no event") }
        #expect(asked2 == "421[\"question\",2]")
        try await ws.send("431[\"yes\",{\"n\":2}]")
        #expect(try await answer.value == ["yes", ["n": 2]])
        try await ws.close()
        await server.stop()
    }
}

/// Polls a condition for up to 10 s.
func waitFor(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        if ContinuousClock.now > deadline { throw RawHTTP.Failure(description: "condition not met within 10 s") }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}

/// Closes `ws` after `seconds` unless cancelled, so a test waiting for a message that
/// never comes fails instead of hanging.
func watchdog(_ ws: WebSocket, seconds: UInt64 = 20) -> Task<Void, Never> {
    Task {
        try? await Task.sleep(nanoseconds: seconds * 1_000_000_000)
        if !Task.isCancelled { ws.close(status: .goingAway, reason: "test watchdog") }
    }
}

/// Waits for a WebSocket to close and returns the close code.
func closeCode(_ ws: WebSocket) async -> UInt16 {
    let box = NIOLockedValueBox<UInt16?>(nil)
    ws.onclose = { event in box.withLockedValue { $0 = event.code } }
    await ws.closed()
    for _ in 0..<100 where box.withLockedValue({ $0 }) == nil { try? await Task.sleep(nanoseconds: 10_000_000) }
    return box.withLockedValue { $0 } ?? 0
}

@Suite struct RedisAdapterTests {
    /// Without a reachable Redis, attaching fails after its timeout instead of waiting
    /// forever.
    @Test func attachFailsWhenRedisIsUnreachable() async throws {
        let server = try await ProtocolTestServer()
        let start = ContinuousClock.now
        await #expect(throws: SocketIOError.self) {
            _ = try await SocketIORedisAdapter.attach(to: server.io, url: "redis://127.0.0.1:1/0", timeout: .milliseconds(300))
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        await server.stop()
    }
}
