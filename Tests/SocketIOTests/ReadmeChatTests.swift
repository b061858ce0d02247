import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import Testing
import WebSockets

/// The README's chat example, as shown there (the prints kept), run with three clients:
/// our client against our server, over the default transports (polling, then upgrade).
@Suite(.serialized) struct ReadmeChatTests {
    @Test func chatExampleWorksAsShown() async throws {
        // Server, as in the README (port 0 instead of 8080).
        let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0,
            http: { _ in .html("<h1>Welcome to WebSockets</h1>") })
        let chat = SocketIOServer(attachingTo: server)
        chat.use { socket, next in
            next(socket.handshake.auth["name"] == nil ? SocketIOMiddlewareError("who are you?") : nil)
        }
        chat.on("connection") { client in
            client.on("message") { event in
                print("Message \(event) received from the client")
                client.broadcast.emit("message", event.data)
                event.ack("delivered")
            }
            client.on("join") { event in client.join(event.data.stringValue ?? "lobby") }
            client.on("disconnect") { print("Client has disconnected") }
        }
        let url = "http://127.0.0.1:\(server.port)"

        // Clients, as in the README, recording what they see.
        let seen = NIOLockedValueBox<[String: [String]]>([:])
        func client(_ name: String?) -> SocketIOClient {
            var options = SocketIOClientOptions()
            if let name { options.auth = ["name": .string(name)] }
            let socket = io(url, options: options)
            let label = name ?? "anonymous"
            socket.on("connect") { seen.withLockedValue { $0[label, default: []].append("connect") } }
            socket.on("connect_error") { event in seen.withLockedValue { $0[label, default: []].append("refused \(event.data.stringValue ?? "")") } }
            socket.on("message") { data in seen.withLockedValue { $0[label, default: []].append("message \(data)") } }
            socket.on("news") { data in seen.withLockedValue { $0[label, default: []].append("news \(data)") } }
            return socket
        }
        let ann = client("ann"), bob = client("bob"), eve = client(nil)
        defer { ann.disconnect(); bob.disconnect(); eve.disconnect() }
        try await until("step 1", seen) { ann.connected && bob.connected }
        try await until("step 2", seen) { seen.withLockedValue { $0["anonymous"]?.contains("refused who are you?") == true } }
        #expect(!eve.connected)

        let acked = NIOLockedValueBox<Result<[JSONValue], SocketIOError>?>(nil)
        ann.emit("message", "hi all") { ack in acked.withLockedValue { $0 = ack } }
        try await until("step 3", seen) { acked.withLockedValue { $0 } != nil }
        #expect(try acked.withLockedValue { $0 }?.get() == ["delivered"])
        try await until("step 4", seen) { seen.withLockedValue { $0["bob"]?.contains("message \"hi all\"") == true } }
        // The sender does not get its own broadcast.
        #expect(seen.withLockedValue { $0["ann"]?.contains { $0.hasPrefix("message") } } == false)

        let answer = try await bob.emitWithAck("message", ["n": 1], timeout: .seconds(5))
        #expect(answer == ["delivered"])
        try await until("step 5", seen) { seen.withLockedValue { $0["ann"]?.contains("message {\"n\":1}") == true } }

        // Rooms: only "bob" joined the lobby.
        bob.emit("join", "lobby")
        try await until("step 6", seen) { chat.sockets.sockets.contains { $0.rooms.contains("lobby") } }
        chat.to("lobby").emit("news", ["text": "hello lobby"])
        try await until("step 7", seen) { seen.withLockedValue { $0["bob"]?.contains("news {\"text\":\"hello lobby\"}") == true } }
        #expect(seen.withLockedValue { $0["ann"]?.contains { $0.hasPrefix("news") } } == false)

        ann.disconnect()
        try await until("step 8", seen) { chat.sockets.sockets.count == 1 }
        chat.close()
        await server.shutdown(deadline: .seconds(1))
    }
}

/// Polls a condition for up to 10 s.
private func until(_ what: String, _ seen: NIOLockedValueBox<[String: [String]]>, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        if ContinuousClock.now > deadline {
            throw SocketIOError.transport("\(what) not reached within 10 s; clients saw \(seen.withLockedValue { $0 })")
        }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
}
