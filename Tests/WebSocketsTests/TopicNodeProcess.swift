import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import WebSockets

// A topic node in a second OS process, for `RedisTopicsTests.nodesInSeparateProcesses`:
// that test starts this test binary again with WS_TOPIC_NODE set, which enables the
// helper below (and nothing else is needed: no extra executable).

/// The child process's side: runs one node until its standard input closes.
@Suite struct TopicNodeProcess {
    static let spec = ProcessInfo.processInfo.environment["WS_TOPIC_NODE"]

    /// WS_TOPIC_NODE is `redisURL nodeID topic`. Prints `TOPIC-NODE-PORT <port>` once
    /// listening; its connections subscribe to the topic, and a client's text message
    /// `publish:<text>` is published on it. Stops when stdin closes (60 s at most).
    @Test(.enabled(if: spec != nil, "helper: runs only as the child process of nodesInSeparateProcesses"))
    func run() async throws {
        let parts = try #require(Self.spec).split(separator: " ").map(String.init)
        try #require(parts.count == 3)
        let (url, nodeID, topic) = (parts[0], parts[1], parts[2])
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        server.onconnection = { ws, _ in
            _ = try? ws.subscribe(topic)
            ws.onmessage = { event in
                if case .text(let t) = event.data, t.hasPrefix("publish:") { server.publish(topic, String(t.dropFirst(8))) }
            }
        }
        var config = try RedisTopicsConfiguration(url: url)
        config.nodeID = nodeID
        config.channelPrefix = "wsproc:"
        try server.connectTopics(toRedis: config)
        FileHandle.standardOutput.write(Data("TOPIC-NODE-PORT \(server.port)\n".utf8))
        let stdinClosed = NIOLockedValueBox(false)
        Thread.detachNewThread {
            _ = FileHandle.standardInput.readDataToEndOfFile()
            stdinClosed.withLockedValue { $0 = true }
        }
        _ = await Conn.waitUntil(seconds: 60) { stdinClosed.withLockedValue { $0 } }
        await server.shutdown(deadline: .seconds(1))
    }
}

/// The parent's handle on a node process.
final class TopicNodeChild: @unchecked Sendable {
    let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let output = NIOLockedValueBox("")
    private(set) var port = 0

    /// Starts the node; throws unless it reports its port within 20 s.
    init(redis url: String, nodeID: String, topic: String) async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        process.executableURL = binary
        process.arguments = ["--testing-library", "swift-testing", "--filter", "TopicNodeProcess"]
        var env = ProcessInfo.processInfo.environment
        env["WS_TOPIC_NODE"] = "\(url) \(nodeID) \(topic)"
        process.environment = env
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        let output = self.output
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            output.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        let found = await Conn.waitUntil(seconds: 20) { output.withLockedValue { $0.contains("TOPIC-NODE-PORT ") && $0.contains("\n") } }
        let text = output.withLockedValue { $0 }
        guard found, let line = text.split(separator: "\n").first(where: { $0.hasPrefix("TOPIC-NODE-PORT ") }),
              let port = Int(line.dropFirst("TOPIC-NODE-PORT ".count)) else {
            kill()
            throw Conn.TimeoutError(what: "node process to report its port (output: \(text.prefix(500)))")
        }
        self.port = port
    }

    /// Asks the node to stop (closes its stdin) and waits up to 10 s.
    func stop() async {
        try? stdin.fileHandleForWriting.close()
        let process = self.process
        if !(await Conn.waitUntil(seconds: 10) { !process.isRunning }) { kill() }
        stdout.fileHandleForReading.readabilityHandler = nil
    }

    /// Kills the node (SIGKILL: no shutdown, its Redis connections just drop).
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        stdout.fileHandleForReading.readabilityHandler = nil
    }
}
