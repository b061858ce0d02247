import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RedisPubSub
import Testing
@testable import WebSockets

// Helpers for the Redis tests: the Redis that scripts/test starts (WS_REDIS_URL), and
// Redis servers of a test's own (WS_REDIS_SERVER) that it can kill and restart.

enum RedisEnv {
    /// The shared Redis of scripts/test, or nil (the tests skip).
    static let url: String? = ProcessInfo.processInfo.environment["WS_REDIS_URL"]
    /// The redis-server binary, for tests that restart their own Redis.
    static let serverBinary: String? = ProcessInfo.processInfo.environment["WS_REDIS_SERVER"]
    static let skipReason: Comment = "WS_REDIS_URL is unset: scripts/test starts a Redis for these tests"
}

/// A redis-server process of a test's own on a loopback port, killed when stopped.
final class RedisTestServer: @unchecked Sendable {
    let port: Int
    private let binary: String
    private var process: Process?

    /// Starts one on a free port (or `port`); throws if it does not answer in 5 s.
    init(port: Int? = nil) async throws {
        guard let binary = RedisEnv.serverBinary else { throw Conn.TimeoutError(what: "WS_REDIS_SERVER unset") }
        self.binary = binary
        if let port {
            self.port = port
        } else {
            let probe = try ConnRefusingPort()  // a free port; freed again when probe goes
            self.port = probe.port
        }
        try await start()
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    /// (Re)starts the process on the same port.
    func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let port = self.port
        let up = await Conn.waitUntilAsync(seconds: 5) {
            guard let c = try? await ServerRawClient.connect(port: port) else { return false }
            c.close()
            return true
        }
        guard up else { throw Conn.TimeoutError(what: "redis-server on \(port) to accept connections") }
    }

    /// Kills the process (SIGKILL: no goodbye to clients) and waits for it to exit.
    func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { kill() }
}

extension Conn {
    /// `waitUntil` for an async condition.
    static func waitUntilAsync(seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return await condition()
    }
}

/// One node of a test cluster: a server whose topics are backed by Redis, and clients
/// subscribed to a topic on it.
struct TopicNode {
    let server: WebSocketServer
    let clients: [(ws: WebSocket, inbox: TopicInbox)]

    /// Starts a server on Redis `url` whose connections subscribe to `topic`, and
    /// `clients` clients; returns once the Redis subscription is live.
    static func start(redis url: String, nodeID: String, topic: String, clients count: Int,
                      prefix: String = "wstest:") async throws -> TopicNode {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        server.onconnection = { ws, _ in _ = try? ws.subscribe(topic) }
        var config = try RedisTopicsConfiguration(url: url)
        config.nodeID = nodeID
        config.channelPrefix = prefix
        try server.connectTopics(toRedis: config)
        let clients = try await TopicTest.clients(count, url: Conn.url(server))
        guard await Conn.waitUntil(seconds: 10, { server.subscriberCount(topic) == count && server.isTopicLiveOnRedis(topic) }) else {
            throw Conn.TimeoutError(what: "node \(nodeID) to subscribe on Redis")
        }
        return TopicNode(server: server, clients: clients)
    }

    func stop() async {
        for c in clients { try? c.ws.closeNow() }
        await server.shutdown(deadline: .seconds(1))
    }
}
