import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import Testing
import WebSockets

// python-socketio 5.x clients against our Socket.IO server, in-process, on 127.0.0.1:
// default transports (polling, then the upgrade) and WebSocket-only.

/// Our server for these tests: echoes and acks every event; "join", "to-room" and
/// "broadcast" as wsecho socketio does; "ask-client" makes the server ask the client
/// (with an ack) and send back what it answered; token "bad" is refused.
final class TestSocketIOServer: @unchecked Sendable {
    let http: WebSocketServer
    let io: SocketIOServer
    private let lock = NIOLock()
    private var _disconnects: [String] = []
    private var _connectTransports: [EngineIOTransport] = []

    var disconnects: [String] { lock.withLock { _disconnects } }
    /// The transport each socket's connection started with.
    var connectTransports: [EngineIOTransport] { lock.withLock { _connectTransports } }

    static func start(port: Int = 0, configure: (inout SocketIOServerConfiguration) -> Void = { _ in }) async throws -> TestSocketIOServer {
        let http = try await WebSocketServer.listen(host: "127.0.0.1", port: port) { _ in .text("not socket.io\n", status: 404) }
        var config = SocketIOServerConfiguration()
        configure(&config)
        return TestSocketIOServer(http: http, io: SocketIOServer(attachingTo: http, configuration: config))
    }

    private init(http: WebSocketServer, io: SocketIOServer) {
        self.http = http
        self.io = io
        io.use { socket, next in
            next(socket.handshake.auth["token"] == "bad" ? SocketIOMiddlewareError("not authorized", data: ["reason": "bad token"]) : nil)
        }
        wire(io.of("/"))
        wire(io.of("/chat"))
    }

    private func wire(_ namespace: SocketIONamespace) {
        namespace.on("connection") { [self] socket in
            // The transport of the session's first request (the Engine.IO handshake).
            let first: EngineIOTransport = socket.handshake.request.query.contains("transport=polling") ? .polling : .websocket
            lock.withLock { _connectTransports.append(first) }
            socket.on("disconnect") { [self] event in
                lock.withLock { _disconnects.append(event.data.stringValue ?? "") }
            }
            socket.onAny { event in
                switch event.name {
                case "join":
                    if let room = event.data.stringValue { socket.join(room) }
                case "to-room":
                    if let room = event.args.first?.stringValue, let name = event.args.dropFirst().first?.stringValue {
                        namespace.to(room).emit(name, with: Array(event.args.dropFirst(2)))
                    }
                    return
                case "broadcast":
                    if let name = event.data.stringValue { socket.broadcast.emit(name, with: Array(event.args.dropFirst())) }
                    return
                case "ask-client":
                    socket.emit("question", with: event.args, timeout: .seconds(10)) { result in
                        switch result {
                        case .success(let answer): socket.emit("answer", with: answer)
                        case .failure(let error): socket.emit("answer", .string("failed: \(error)"))
                        }
                    }
                    return
                default:
                    break
                }
                if event.wantsAck { event.ack(with: event.args) } else { socket.emit(event.name, with: event.args) }
            }
        }
    }

    var url: String { "http://127.0.0.1:\(http.port)" }

    func stop() async {
        io.close()
        await http.shutdown(deadline: .seconds(2))
    }
}

/// The JSON lines of a python-socketio client.
func sioEvents(_ peer: PythonProcess, _ name: String) -> [[String: Any]] {
    peer.stdoutLines.compactMap { line in
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              object["event"] as? String == name else { return nil }
        return object
    }
}

/// Waits for a line with `"event": name` (failing on an "error" line) and returns it.
@discardableResult
func sioWait(_ peer: PythonProcess, _ name: String, timeout: Double = 20) async throws -> [String: Any] {
    let line = try await peer.waitForLine(timeout: timeout) { line in
        line.contains("\"event\": \"\(name)\"") || line.contains("\"event\": \"error\"")
    }
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    if object["event"] as? String == "error" { throw PeerError("python client failed: \(line)\n\(peer.transcript)") }
    return object
}

/// Compares a JSON value the Python side printed with what we expect.
func sameJSON(_ a: Any?, _ b: Any) -> Bool {
    guard let a else { return false }
    return (try? JSONSerialization.data(withJSONObject: ["v": a], options: .sortedKeys))
        == (try? JSONSerialization.data(withJSONObject: ["v": b], options: .sortedKeys))
}

@Suite(.serialized, .enabled(if: SocketIOPythonPeer.isAvailable, SocketIOPythonPeer.missing))
struct SocketIOServerInteropTests {
    static let transportCases = ["default", "websocket"]

    @Test(arguments: transportCases)
    func eventsAcksAndBinary(transports: String) async throws {
        let server = try await TestSocketIOServer.start()
        let peer = try SocketIOPythonPeer.client("basic", url: server.url, transports: transports)
        defer { peer.stop() }
        try await sioWait(peer, "connected")
        // The default client starts with polling, then upgrades to WebSocket.
        #expect(server.connectTransports == [transports == "default" ? .polling : .websocket])
        let transport = try await sioWait(peer, "transport")
        #expect(transport["transport"] as? String == "websocket")
        let echo = try await sioWait(peer, "echo")
        #expect(echo["ok"] as? Bool == true, "\(echo)")
        let ack = try await sioWait(peer, "ack")
        #expect(sameJSON(ack["args"], ["x", 2]), "\(ack)")
        #expect(try await sioWait(peer, "binary")["ok"] as? Bool == true)
        let big = try await sioWait(peer, "binary-ack")
        #expect(big["ok"] as? Bool == true, "\(big)")
        let answer = try await sioWait(peer, "answer")
        #expect(sameJSON(answer["args"], ["reply", "q", 1]), "\(answer)")
        try await sioWait(peer, "done")
        // The server saw the client leave.
        // python-socketio sends DISCONNECT and closes the transport at once; which one
        // the server sees first is a race in the client.
        try await waitUntil("the disconnect", timeout: 10) { !server.disconnects.isEmpty }
        #expect(["client namespace disconnect", "transport close"].contains(server.disconnects[0]))
        #expect(server.io.sockets.sockets.isEmpty)
        await server.stop()
    }

    @Test(arguments: transportCases)
    func roomsAndBroadcast(transports: String) async throws {
        let server = try await TestSocketIOServer.start()
        let peer = try SocketIOPythonPeer.client("rooms", url: server.url, transports: transports)
        defer { peer.stop() }
        try await sioWait(peer, "done", timeout: 30)
        let news = sioEvents(peer, "news")
        #expect(Set(news.compactMap { $0["client"] as? String }) == ["a", "b"])
        for n in news { #expect(sameJSON(n["args"], [["x": 1]])) }
        let hey = sioEvents(peer, "hey")
        #expect(Set(hey.compactMap { $0["client"] as? String }) == ["b", "c"])
        // Neither the room message reached "c" nor the broadcast its sender "a".
        let received = sioEvents(peer, "received")
        #expect(!received.contains { $0["client"] as? String == "c" && $0["name"] as? String == "news" })
        #expect(!received.contains { $0["client"] as? String == "a" && $0["name"] as? String == "hey" })
        await server.stop()
    }

    @Test(arguments: transportCases)
    func twoNamespacesOverOneConnection(transports: String) async throws {
        let server = try await TestSocketIOServer.start()
        let peer = try SocketIOPythonPeer.client("namespaces", url: server.url, transports: transports)
        defer { peer.stop() }
        let connected = try await sioWait(peer, "connected")
        let root = connected["root"] as? String
        let chat = connected["chat"] as? String
        #expect(root != nil && chat != nil && root != chat)
        #expect(sameJSON(try await sioWait(peer, "root")["args"], ["on root"]))
        #expect(sameJSON(try await sioWait(peer, "chat")["args"], ["on chat"]))
        #expect(sameJSON(try await sioWait(peer, "chat-ack")["args"], ["ack on chat"]))
        try await sioWait(peer, "done")
        #expect(server.io.clientCount <= 1)
        await server.stop()
    }

    @Test(arguments: transportCases)
    func middlewareRefusesABadToken(transports: String) async throws {
        let server = try await TestSocketIOServer.start()
        let peer = try SocketIOPythonPeer.client("auth", url: server.url, transports: transports)
        defer { peer.stop() }
        let refused = try await sioWait(peer, "refused")
        // The CONNECT_ERROR payload reached the client's connect_error handler.
        #expect(sameJSON(refused["data"], ["message": "not authorized", "data": ["reason": "bad token"]]), "\(refused)")
        #expect(sioEvents(peer, "connected").isEmpty)
        #expect(server.io.sockets.sockets.isEmpty)
        await server.stop()
    }

    @Test(arguments: transportCases)
    func heartbeatDropsAClientThatStopsAnswering(transports: String) async throws {
        let server = try await TestSocketIOServer.start {
            $0.pingInterval = .milliseconds(300)
            $0.pingTimeout = .milliseconds(300)
        }
        let peer = try SocketIOPythonPeer.client("idle", url: server.url, transports: transports)
        defer {
            peer.signal(SIGCONT)
            peer.stop()
        }
        try await sioWait(peer, "connected")
        // Answering pings for a while keeps it connected...
        try await Task.sleep(nanoseconds: 1_500_000_000)
        #expect(server.io.sockets.sockets.count == 1)
        #expect(server.disconnects.isEmpty)
        // ...a frozen client is dropped with "ping timeout".
        peer.signal(SIGSTOP)
        try await waitUntil("the ping timeout", timeout: 10) { server.disconnects.contains("ping timeout") }
        #expect(server.io.sockets.sockets.isEmpty)
        #expect(server.io.clientCount == 0)
        await server.stop()
    }

    @Test func clientReconnectsAfterTheServerRestarts() async throws {
        let first = try await TestSocketIOServer.start()
        let port = first.http.port
        let peer = try SocketIOPythonPeer.client("reconnect", url: first.url)
        defer { peer.stop() }
        let before = try await sioWait(peer, "connected")
        await first.stop()
        try await sioWait(peer, "disconnected")
        let second = try await TestSocketIOServer.start(port: port)
        let after = try await peer.waitForLine(timeout: 30) { $0.contains("\"n\": 2") || $0.contains("\"event\": \"error\"") }
        #expect(after.contains("\"n\": 2"), "\(peer.transcript)")
        #expect(!after.contains(before["sid"] as? String ?? "-"))
        #expect(sameJSON(try await sioWait(peer, "echo")["args"], ["after restart"]))
        try await sioWait(peer, "done")
        await second.stop()
    }
}

/// Polls `condition` until it holds, failing after `timeout` seconds.
func waitUntil(_ what: String, timeout: Double, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() >= deadline { throw PeerError("timed out after \(timeout) s waiting for \(what)") }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}

/// `wsecho socketio` (the DESIGN.md contract) with python-socketio clients: echo, acks,
/// rooms, broadcast, and a namespace nobody declared.
@Suite(.serialized, .enabled(if: SocketIOPythonPeer.isAvailable, SocketIOPythonPeer.missing),
       .enabled(if: Wsecho.url != nil, Wsecho.missing))
struct WsechoSocketIOTests {
    /// Starts `wsecho socketio --port 0` and returns it with its URL.
    static func start() async throws -> (PythonProcess, String) {
        let server = try PythonProcess(executable: Wsecho.url!, arguments: ["socketio", "--port", "0"], label: "wsecho socketio")
        let line = try await server.waitForLine(timeout: 20) { $0.hasPrefix("listening on ") }
        return (server, "http://" + line.dropFirst("listening on ".count))
    }

    @Test(arguments: SocketIOServerInteropTests.transportCases)
    func roomsAndBroadcast(transports: String) async throws {
        let (server, url) = try await Self.start()
        defer { server.stop() }
        let peer = try SocketIOPythonPeer.client("rooms", url: url, transports: transports)
        defer { peer.stop() }
        try await sioWait(peer, "done", timeout: 30)
        #expect(Set(sioEvents(peer, "news").compactMap { $0["client"] as? String }) == ["a", "b"])
        #expect(Set(sioEvents(peer, "hey").compactMap { $0["client"] as? String }) == ["b", "c"])
        let received = sioEvents(peer, "received")
        #expect(!received.contains { $0["client"] as? String == "a" && $0["name"] as? String == "hey" })
    }

    @Test(arguments: SocketIOServerInteropTests.transportCases)
    func echoesOnAnyNamespace(transports: String) async throws {
        let (server, url) = try await Self.start()
        defer { server.stop() }
        let peer = try SocketIOPythonPeer.client("namespaces", url: url, transports: transports)
        defer { peer.stop() }
        #expect(sameJSON(try await sioWait(peer, "root")["args"], ["on root"]))
        #expect(sameJSON(try await sioWait(peer, "chat")["args"], ["on chat"]))
        #expect(sameJSON(try await sioWait(peer, "chat-ack")["args"], ["ack on chat"]))
        try await sioWait(peer, "done")
    }

    @Test func exitsOnSIGTERM() async throws {
        let (server, _) = try await Self.start()
        defer { server.stop() }
        server.signal(SIGTERM)
        #expect(await server.waitForExit(timeout: 10) == 0)
    }
}
