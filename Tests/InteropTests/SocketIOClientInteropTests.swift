import Foundation
import NIOCore
import SocketIO
import Testing

// Our Socket.IO client against python-socketio 5.x (AsyncServer on aiohttp): transports
// and the upgrade, events and acks both ways, binary, rooms and broadcast, namespaces,
// auth rejection, heartbeat timeout, and reconnection after a server restart. Every
// wait is bounded and every Python process is stopped at the end.

/// A JSON field of a Python report line.
private func field(_ event: PyEvent, _ key: String) -> Any? {
    (try? JSONSerialization.jsonObject(with: Data(event.raw.utf8)) as? [String: Any])?[key]
}

@Suite("SocketIOClient interop (python-socketio)", .serialized)
struct SocketIOClientInteropTests {
    @Test("polling opens, then upgrades to WebSocket; events flow before and after")
    func pollingUpgradesToWebSocket() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (socket, log) = try await connectedClient(port: port, testClientOptions())
        defer { socket.disconnect() }
        let connect = try await server.waitFor("connect", timeout: 10) { $0.event == "connect" }
        #expect(connect.kind == "polling", "the handshake should use polling")
        #expect(connect.id == socket.id)

        // The upgrade follows the handshake; ask the server until it reports WebSocket.
        var transport = ""
        let deadline = Date().addingTimeInterval(10)
        while transport != "websocket" && Date() < deadline {
            transport = try await socket.emitWithAck("transport", timeout: .seconds(5)).first?.stringValue ?? ""
            if transport != "websocket" { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(transport == "websocket")
        #expect(socket.manager.transport == .websocket)

        socket.emit("hello", "after upgrade", 2)
        let echo = try await log.wait("hello")
        #expect(echo[0].args == ["after upgrade", 2])
    }

    @Test("WebSocket-only connects without polling", arguments: [false, true])
    func webSocketOnly(compression: Bool) async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        var options = testClientOptions([.websocket])
        options.webSocketCompression = compression
        let (socket, log) = try await connectedClient(port: port, options)
        defer { socket.disconnect() }
        let connect = try await server.waitFor("connect", timeout: 10) { $0.event == "connect" }
        #expect(connect.kind == "websocket")
        #expect(try await socket.emitWithAck("transport") == ["websocket"])
        #expect(socket.manager.transport == .websocket)
        socket.emit("hello", ["n": 1])
        #expect(try await log.wait("hello")[0].args == [["n": 1]])
    }

    @Test("https: polling over TLS, then the upgrade to wss")
    func overTLS() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        guard Openssl.path != nil else { return print("skipped: openssl not found") }
        let (certificate, key) = try await Openssl.selfSignedCertificate()
        let (server, port) = try await SocketIOPeer.server(tls: (certificate, key))
        defer { server.stop() }
        var options = testClientOptions()
        options.tls.trustRoots = .file(certificate)
        let socket = io("https://localhost:\(port)", options: options)
        let log = EventLog(socket)
        socket.connect()
        defer { socket.disconnect() }
        try await log.wait("connect")
        let connect = try await server.waitFor("connect", timeout: 10) { $0.event == "connect" }
        #expect(connect.kind == "polling")
        socket.emit("hello", .binary([1, 2, 3]), "secure")
        #expect(try await log.wait("hello")[0].args == [.binary([1, 2, 3]), "secure"])
        var transport = ""
        let deadline = Date().addingTimeInterval(10)
        while transport != "websocket" && Date() < deadline {
            transport = try await socket.emitWithAck("transport", timeout: .seconds(5)).first?.stringValue ?? ""
            if transport != "websocket" { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(transport == "websocket")

        // A client that does not trust the certificate does not get in.
        var untrusting = testClientOptions()
        untrusting.reconnection = false
        let refused = io("https://localhost:\(port)", options: untrusting)
        let refusedLog = EventLog(refused)
        refused.connect()
        let error = try await refusedLog.wait("connect_error")
        #expect(error[0].data.stringValue?.hasPrefix("transport error") == true, "\(error[0])")
    }

    @Test("events both ways", arguments: [
        [SocketIOClientOptions.Transport.polling], [.polling, .websocket], [.websocket],
    ])
    func eventsBothWays(transports: [SocketIOClientOptions.Transport]) async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (socket, log) = try await connectedClient(port: port, testClientOptions(transports))
        defer { socket.disconnect() }
        let values: [JSONValue] = [
            "text with \"quotes\", \\ and unicode \u{e9}\u{6f22}\u{1F600}", 42, -1.5, true, nil,
            ["nested": ["list": [1, "two", ["three": 3]]]], [],
        ]
        for (i, value) in values.enumerated() { socket.emit("value", .number(Double(i)), value) }
        socket.emit("no-args")
        socket.emit("many", 1, 2, 3, 4, 5)
        let received = try await log.wait("value", count: values.count)
        for (i, event) in received.enumerated() {
            #expect(event.args == [.number(Double(i)), values[i]], "value \(i) came back different")
        }
        #expect(try await log.wait("no-args")[0].args == [])
        #expect(try await log.wait("many")[0].args == [1, 2, 3, 4, 5])
        // The server saw them in order, with the right argument counts.
        let seen = try await server.waitFor("the events", count: values.count, timeout: 10) {
            $0.event == "received" && (field($0, "name") as? String) == "value"
        }
        #expect(seen.map { $0.count ?? -1 } == Array(repeating: 2, count: values.count))
        // Many small emits at once (more than one POST can carry when polling).
        for i in 0..<60 { socket.emit("burst", .number(Double(i))) }
        let burst = try await log.wait("burst", count: 60)
        #expect(burst.map { $0.data.intValue ?? -1 } == Array(0..<60))
    }

    @Test("emits from several threads while connecting and upgrading: none lost, each thread's in order")
    func concurrentEmits() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let socket = SocketIOClient(host: "127.0.0.1", port: port, options: testClientOptions())
        let log = EventLog(socket)
        socket.connect()
        defer { socket.disconnect() }
        // The threads start before the connection is up: their first emits are buffered,
        // later ones go over polling, then over the WebSocket once upgraded.
        let threads = 4
        let perThread = 150
        for t in 0..<threads {
            Thread.detachNewThread {
                for i in 0..<perThread {
                    socket.emit("seq", .number(Double(t)), .number(Double(i)))
                    if i % 10 == 9 { Thread.sleep(forTimeInterval: 0.002) }
                }
            }
        }
        try await log.wait("connect")
        let all = try await log.wait("seq", count: threads * perThread, timeout: 30)
        #expect(all.count == threads * perThread)
        for t in 0..<threads {
            let order = all.filter { $0.args.first?.intValue == t }.compactMap { $0.args.last?.intValue }
            #expect(order == Array(0..<perThread), "thread \(t)")
        }
        #expect(socket.manager.transport == .websocket)
    }

    @Test("acknowledgements both ways, and an ack timeout", arguments: [[SocketIOClientOptions.Transport.polling], [.websocket]])
    func acksBothWays(transports: [SocketIOClientOptions.Transport]) async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (socket, log) = try await connectedClient(port: port, testClientOptions(transports))
        defer { socket.disconnect() }

        // Client asks, server acknowledges with the same arguments.
        #expect(try await socket.emitWithAck("ack-me", "a", ["b": 2], timeout: .seconds(5)) == ["a", ["b": 2]])
        // The callback form.
        let result = try await withTimeout(10, "callback ack") {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[JSONValue], any Error>) in
                socket.emit("ack-cb", 7, timeout: .seconds(5)) { c.resume(with: $0.mapError { $0 as any Error }) }
            }
        }
        #expect(result == [7])

        // Server asks (sio.call), client acknowledges; the server emits what it got back.
        socket.on("question") { event in event.ack(with: [.string("answer to"), event.data]) }
        socket.emit("call-me", "question", 41)
        let answer = try await log.wait("call-result")
        #expect(answer[0].args == ["answer to", 41])

        // A server slower than the timeout.
        await #expect(throws: SocketIOError.ackTimeout) {
            try await socket.emitWithAck("slow-ack", timeout: .milliseconds(300))
        }
    }

    @Test("binary payloads both ways, nested in objects and arrays", arguments: [
        [SocketIOClientOptions.Transport.polling], [.polling, .websocket], [.websocket],
    ])
    func binaryBothWays(transports: [SocketIOClientOptions.Transport]) async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (socket, log) = try await connectedClient(port: port, testClientOptions(transports))
        defer { socket.disconnect() }
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let payload: JSONValue = [
            "name": "file", "blob": .binary([0, 1, 2, 255, 0x1E]),
            "parts": [.binary([]), .binary(big), ["inner": .binary([9])]],
        ]
        socket.emit("bin", payload, .binary([42]))
        let echo = try await log.wait("bin")
        #expect(echo[0].args == [payload, .binary([42])])
        let seen = try await server.waitFor("binary event", timeout: 10) {
            $0.event == "received" && (field($0, "name") as? String) == "bin"
        }
        // The server decoded real bytes objects (its report replaces them by their length).
        #expect((field(seen, "args") as? String)?.contains(#"{"bytes": 100000}"#) == true)

        // Binary in an acknowledgement, both ways.
        #expect(try await socket.emitWithAck("bin-ack", .binary([7, 8, 9])) == [.binary([7, 8, 9])])
        socket.on("bin-question") { event in event.ack(.binary([1, 2, 3]), event.data) }
        socket.emit("call-me", "bin-question", .binary([4, 5]))
        let answer = try await log.wait("call-result")
        #expect(answer[0].args == [.binary([1, 2, 3]), .binary([4, 5])])
    }

    @Test("rooms and broadcast with several clients")
    func roomsAndBroadcast() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (a, logA) = try await connectedClient(port: port, testClientOptions())
        let (b, logB) = try await connectedClient(port: port, testClientOptions([.websocket]))
        let (c, logC) = try await connectedClient(port: port, testClientOptions([.polling]))
        defer { for s in [a, b, c] { s.disconnect() } }
        #expect(try await a.emitWithAck("join", "room1") == ["joined"])
        #expect(try await b.emitWithAck("join", "room1") == ["joined"])

        #expect(try await a.emitWithAck("to-room", "room1", "news", "hi", 1) == ["sent"])
        #expect(try await logA.wait("news")[0].args == ["hi", 1])
        #expect(try await logB.wait("news")[0].args == ["hi", 1])

        #expect(try await a.emitWithAck("broadcast", "shout", ["x": true]) == ["sent"])
        #expect(try await logB.wait("shout")[0].args == [["x": true]])
        #expect(try await logC.wait("shout")[0].args == [["x": true]])
        // A marker sent after the broadcast arrives after it; by then nothing else came.
        a.emit("marker")
        try await logA.wait("marker")
        c.emit("marker")
        try await logC.wait("marker")
        #expect(logA.all("shout").isEmpty, "the sender is excluded from a broadcast")
        #expect(logC.all("news").isEmpty, "C is not in room1")
    }

    @Test("two namespaces over one manager (one Engine.IO connection)")
    func namespaces() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let manager = SocketIOManager("http://127.0.0.1:\(port)", options: testClientOptions())
        defer { manager.close() }
        let root = manager.socket("/")
        let chat = manager.socket("/chat")
        #expect(manager.socket("/chat") === chat)
        let rootLog = EventLog(root)
        let chatLog = EventLog(chat)
        root.connect()
        chat.connect()
        try await rootLog.wait("connect")
        try await chatLog.wait("connect")
        #expect(root.id != nil && chat.id != nil && root.id != chat.id)

        let connects = try await server.waitFor("two connects", count: 2, timeout: 10) { $0.event == "connect" }
        #expect(Set(connects.compactMap(\.detail)) == ["/", "/chat"])
        let eio = connects.compactMap { field($0, "eio") as? String }
        #expect(eio.count == 2 && eio[0] == eio[1], "both namespaces share one Engine.IO session")

        chat.emit("hello", "chat")
        root.emit("hello", "root")
        #expect(try await chatLog.wait("hello")[0].args == ["chat"])
        #expect(try await rootLog.wait("hello")[0].args == ["root"])
        #expect(try await chat.emitWithAck("transport", timeout: .seconds(5)).count == 1)
        #expect(chatLog.all("hello").count == 1 && rootLog.all("hello").count == 1)

        // Leaving one namespace keeps the other connected.
        chat.disconnect()
        #expect(try await chatLog.wait("disconnect")[0].data == "io client disconnect")
        _ = try await server.waitFor("chat disconnect", timeout: 10) { $0.event == "disconnect" && $0.detail == "/chat" }
        #expect(root.connected)
        #expect(try await root.emitWithAck("still-here") == [])
    }

    @Test("auth: a bad token is refused with connect_error, a good one connects")
    func authRejection() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        var options = testClientOptions()
        options.auth = ["token": "bad"]
        let socket = io("http://127.0.0.1:\(port)", options: options)
        let log = EventLog(socket)
        socket.connect()
        let error = try await log.wait("connect_error")
        #expect(error[0].args == ["bad token", ["code": 42]])
        #expect(!socket.connected && !socket.active && socket.id == nil)
        // No automatic retry of a refused namespace.
        try await Task.sleep(nanoseconds: 1_000_000_000)
        #expect(server.events.filter { $0.event == "rejected" }.count == 1)
        #expect(log.all("reconnect_attempt").isEmpty && log.all("connect").isEmpty)

        options.auth = ["token": "good", "user": "ann"]
        let (good, _) = try await connectedClient(port: port, options)
        defer { good.disconnect() }
        let connect = try await server.waitFor("connect", timeout: 10) { $0.event == "connect" }
        #expect((field(connect, "auth") as? [String: Any])?["user"] as? String == "ann")
    }

    @Test("the server disconnects the client: io server disconnect, no reconnection")
    func serverDisconnect() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server()
        defer { server.stop() }
        let (socket, log) = try await connectedClient(port: port, testClientOptions())
        socket.emit("server-disconnect")
        #expect(try await log.wait("disconnect")[0].data == "io server disconnect")
        try await Task.sleep(nanoseconds: 800_000_000)
        #expect(log.all("reconnect_attempt").isEmpty && !socket.active && !socket.connected)
        // It can connect again on request.
        socket.connect()
        try await log.wait("connect", count: 2)
        socket.disconnect()
    }

    @Test("heartbeat: a server that stops answering is detected (ping timeout)", arguments: [
        [SocketIOClientOptions.Transport.polling], [.polling, .websocket],
    ])
    func heartbeatTimeout(transports: [SocketIOClientOptions.Transport]) async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (server, port) = try await SocketIOPeer.server(pingInterval: 1, pingTimeout: 1)
        defer {
            server.signal(SIGCONT)
            server.stop()
        }
        var options = testClientOptions(transports)
        options.reconnection = false
        let (socket, log) = try await connectedClient(port: port, options)
        defer { socket.disconnect() }
        // Stay connected across several heartbeats (pongs reach the server).
        try await Task.sleep(nanoseconds: 2_500_000_000)
        #expect(socket.connected && log.all("disconnect").isEmpty)
        #expect(try await socket.emitWithAck("alive", timeout: .seconds(5)) == [])
        let stoppedAt = Date()
        server.signal(SIGSTOP)
        let disconnect = try await log.wait("disconnect", timeout: 10)
        #expect(disconnect[0].data == "ping timeout")
        // pingInterval + pingTimeout = 2 s after the last ping (well before the 12 s a
        // polling request may take, and a WebSocket would never notice by itself).
        #expect(Date().timeIntervalSince(stoppedAt) < 6)
    }

    @Test("reconnects after the server restarts; buffered emits are sent after reconnecting")
    func reconnectAfterRestart() async throws {
        guard SocketIOPeer.isAvailable else { return print("skipped:", SocketIOPeer.missing) }
        let (first, port) = try await SocketIOPeer.server()
        var firstStopped = false
        defer { if !firstStopped { first.stop() } }
        let (socket, log) = try await connectedClient(port: port, testClientOptions())
        defer { socket.disconnect() }
        #expect(try await socket.emitWithAck("before") == [])
        let firstID = socket.id

        first.signal(SIGKILL)
        firstStopped = true
        let disconnect = try await log.wait("disconnect")
        let reason = disconnect[0].data.stringValue ?? ""
        #expect(reason == "transport close" || reason == "transport error", "reason: \(reason)")
        #expect(!socket.connected)
        // Emitted while disconnected: buffered, sent after the reconnection.
        #expect(socket.emit("buffered", 1))
        #expect(socket.emit("buffered", 2))
        #expect(socket.bufferedEmits == 2)
        try await log.wait("reconnect_attempt")

        let (second, secondPort) = try await SocketIOPeer.server(port: port)
        defer { second.stop() }
        #expect(secondPort == port)
        try await log.wait("reconnect", timeout: 20)
        try await log.wait("connect", count: 2, timeout: 20)
        #expect(socket.connected && socket.id != nil && socket.id != firstID)
        let buffered = try await log.wait("buffered", count: 2)
        #expect(buffered.map(\.args) == [[1], [2]])
        #expect(try await socket.emitWithAck("after") == [])
        let attempts = log.all("reconnect_attempt").compactMap { $0.data.intValue }
        #expect(attempts.first == 1 && attempts == Array(1...attempts.count))
    }
}
