import NIOConcurrencyHelpers
import SocketIO
import Testing
import WebSockets

/// `io(url)` connects at once; handlers for `connect` / `connect_error` registered after
/// the server already answered still hear it, once.
@Suite(.serialized) struct LateClientHandlerTests {
    @Test func connectRegisteredAfterConnectingStillFires() async throws {
        let server = try await ProtocolTestServer()
        let socket = io("http://127.0.0.1:\(server.port)")
        defer { socket.disconnect() }
        try await waitFor { socket.connected }
        let count = NIOLockedValueBox(0)
        socket.on("connect") { count.withLockedValue { $0 += 1 } }
        try await waitFor { count.withLockedValue { $0 } == 1 }
        // Only once: a second handler registered later does not get it again.
        socket.on("connect") { count.withLockedValue { $0 += 1 } }
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(count.withLockedValue { $0 } == 1)
        await server.stop()
    }

    @Test func connectErrorRegisteredLateStillFires() async throws {
        let server = try await ProtocolTestServer()
        server.io.use { _, next in next(SocketIOMiddlewareError("go away")) }
        var options = SocketIOClientOptions()
        options.reconnection = false
        let socket = io("http://127.0.0.1:\(server.port)", options: options)
        defer { socket.disconnect() }
        try await waitFor { !socket.active }
        let message = NIOLockedValueBox<String?>(nil)
        socket.on("connect_error") { event in message.withLockedValue { $0 = event.data.stringValue } }
        try await waitFor { message.withLockedValue { $0 } == "go away" }
        await server.stop()
    }
}
