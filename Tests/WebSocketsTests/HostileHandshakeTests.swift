import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

/// One hostile upgrade request and the status class the server must answer with.
struct HostileRequest: Sendable, CustomTestStringConvertible {
    var name: String
    var request: String
    /// The exact status expected, or nil for "any 4xx".
    var status: Int?
    var testDescription: String { name }

    private static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    /// Request smuggling and header tricks: each must be refused with a 4xx, never upgraded.
    static let smuggling: [HostileRequest] = [
        .init(name: "same Sec-WebSocket-Key twice",
              request: serverUpgradeRequest(extra: ["Sec-WebSocket-Key: \(key)"]), status: 400),
        .init(name: "two different Sec-WebSocket-Keys",
              request: serverUpgradeRequest(extra: ["Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="]), status: 400),
        .init(name: "two keys in one Sec-WebSocket-Key line",
              request: serverUpgradeRequest(key: "\(key), x3JJHMbDL1EzLkh9GBhXDw=="), status: 400),
        .init(name: "Sec-WebSocket-Version twice",
              request: serverUpgradeRequest(extra: ["Sec-WebSocket-Version: 13"]), status: nil),
        .init(name: "conflicting Sec-WebSocket-Versions",
              request: serverUpgradeRequest(extra: ["Sec-WebSocket-Version: 8"]), status: nil),
        .init(name: "Content-Length with a body",
              request: serverUpgradeRequest(extra: ["Content-Length: 5"]) + "hello", status: 400),
        .init(name: "Content-Length announcing a body that never comes",
              request: serverUpgradeRequest(extra: ["Content-Length: 100"]), status: 400),
        .init(name: "two Content-Lengths",
              request: serverUpgradeRequest(extra: ["Content-Length: 0", "Content-Length: 5"]) + "hello", status: 400),
        .init(name: "Transfer-Encoding: chunked",
              request: serverUpgradeRequest(extra: ["Transfer-Encoding: chunked"]) + "5\r\nhello\r\n0\r\n\r\n", status: 400),
        .init(name: "Transfer-Encoding whose body never ends",
              request: serverUpgradeRequest(extra: ["Transfer-Encoding: chunked"]) + "5\r\nhello\r\n", status: 400),
        .init(name: "Transfer-Encoding and Content-Length",
              request: serverUpgradeRequest(extra: ["Transfer-Encoding: chunked", "Content-Length: 5"]) + "0\r\n\r\n",
              status: 400),
        .init(name: "obs-fold in an unrelated header",
              request: serverUpgradeRequest(extra: ["X-Folded: first", " second"]), status: 400),
        .init(name: "obs-fold continuing Sec-WebSocket-Key",
              request: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  + "Sec-WebSocket-Key:\r\n\t\(key)\r\nSec-WebSocket-Version: 13\r\n\r\n", status: 400),
        .init(name: "obs-fold continuing Upgrade",
              request: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade:\r\n websocket\r\nConnection: Upgrade\r\n"
                  + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n", status: 400),
        .init(name: "space before the colon of Sec-WebSocket-Key",
              request: serverUpgradeRequest(extra: ["Sec-WebSocket-Key : \(key)"], key: nil), status: 400),
        .init(name: "bare LF line ends",
              request: serverUpgradeRequest().replacingOccurrences(of: "\r\n", with: "\n"), status: 400),
    ]

    /// Unsupported versions: 426 with `Sec-WebSocket-Version: 13`.
    static let badVersions: [HostileRequest] = ([String])(["8", "12", "14", "", "13.0", "013", "13, 8", "+13"]).map {
        .init(name: "Sec-WebSocket-Version \"\($0)\"", request: serverUpgradeRequest(version: $0), status: 426)
    } + [.init(name: "no Sec-WebSocket-Version", request: serverUpgradeRequest(version: nil), status: 426)]

    /// Bad keys: 400.
    static let badKeys: [HostileRequest] = ([String])([
        "", "abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZSE=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "dGhlIHNhbXBs ZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ?==",
    ]).map { .init(name: "Sec-WebSocket-Key \"\($0)\"", request: serverUpgradeRequest(key: $0), status: 400) }
        + [.init(name: "no Sec-WebSocket-Key", request: serverUpgradeRequest(key: nil), status: 400)]
}

/// Hostile clients at the HTTP stage: slowloris, oversized heads, request smuggling,
/// bad versions and keys. Every refusal is an HTTP error followed by the server closing
/// the connection, and no WebSocket ever opens.
@Suite struct HostileHandshakeTests {
    /// Sends `request` on a fresh connection; returns the response (nil if none came
    /// before the server closed) after the server closed the connection.
    private func refusal(_ server: WebSocketServer, _ request: String, sourceLocation: SourceLocation = #_sourceLocation)
        async throws -> ServerRawResponse?
    {
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send(request)
        let closed = await client.waitClosed(timeout: .seconds(5))
        #expect(closed, "the server keeps the connection open", sourceLocation: sourceLocation)
        return ServerRawResponse.parse(client.received, closed: true)
    }

    @Test(arguments: HostileRequest.smuggling + HostileRequest.badVersions + HostileRequest.badKeys)
    func hostileUpgradeIsRefused(_ hostile: HostileRequest) async throws {
        let opened = ServerBox(0)
        let server = try await serverStart()
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        let response = try await refusal(server, hostile.request)
        let r = try #require(response, "no HTTP response before the close")
        #expect((400..<500).contains(r.status), "got \(r.statusLine)")
        if let status = hostile.status { #expect(r.status == status, "got \(r.statusLine): \(r.bodyText)") }
        if r.status == 426 { #expect(r.header("Sec-WebSocket-Version") == "13") }
        #expect(r.header("Sec-WebSocket-Accept") == nil)
        #expect(opened.get == 0)
        #expect(server.connectionCount == 0)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A head over maxRequestHeaderSize gets 431, whether one huge field or many small ones,
    /// and whether sent at once or in pieces.
    @Test func oversizedHeadersGet431() async throws {
        var config = ServerConfiguration()
        config.maxRequestHeaderSize = 4096
        let server = try await serverStart(config)
        let opened = ServerBox(0)
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        let huge = serverUpgradeRequest(extra: ["X-Pad: " + String(repeating: "a", count: 8000)])
        let many = serverUpgradeRequest(extra: (0..<200).map { "X-F\($0): \(String(repeating: "b", count: 40))" })
        for request in [huge, many] {
            let r = try #require(try await refusal(server, request))
            #expect(r.status == 431, "got \(r.statusLine)")
        }
        // Trickled in 1 KiB pieces: the limit holds across reads.
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        let bytes = Array(many.utf8)
        for start in stride(from: 0, to: bytes.count, by: 1024) where !client.isClosed {
            try? await client.send(Array(bytes[start..<min(start + 1024, bytes.count)]))
        }
        #expect(await client.waitClosed())
        #expect(ServerRawResponse.parse(client.received, closed: true)?.status == 431)
        #expect(opened.get == 0)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Slowloris: one client sends its request one byte per second, another sends half a
    /// request and stops; both are dropped at the 1 s handshake timeout, while a third
    /// client connects and exchanges a message meanwhile.
    @Test func slowlorisClientsAreDroppedAtTheHandshakeTimeout() async throws {
        let server = try await WebSocketServer.conn {
            $0.handshakeTimeout = .seconds(1)
            $0.connection.pingInterval = nil
        }
        serverEcho(server)
        let request = RawWS.upgradeRequest(port: server.port)
        let start = ContinuousClock.now
        let trickler = try await RawPeer.connect(port: server.port)
        let bytesSent = NIOLockedValueBox(0)
        let trickle = Task {
            for byte in request {  // bounded: the request is ~150 bytes, and we stop at EOF
                if trickler.eof || Task.isCancelled { return }
                try? await trickler.send([byte])
                bytesSent.withLockedValue { $0 += 1 }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let stalled = try await RawPeer.connect(port: server.port)
        try await stalled.send(Array(request[0..<(request.count / 2)]))

        // A well-behaved client during the attack.
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client { $0.connection.pingInterval = nil })
        try await ws.send(.text("still served"))
        #expect(try await ws.nextMessage() == .text("still served"))

        for (name, peer) in [("one byte per second", trickler), ("never finishes", stalled)] {
            #expect(await peer.waitEOF(seconds: 5), "\(name): not dropped")
            let elapsed = Conn.elapsed(since: start)
            #expect(elapsed >= 0.9 && elapsed < 4, "\(name): dropped after \(elapsed) s")
            #expect(peer.receivedCount == 0, "\(name): got an answer: \(String(decoding: peer.unread, as: UTF8.self))")
        }
        trickle.cancel()
        #expect(bytesSent.withLockedValue { $0 } < 6, "the trickler should have sent only a few bytes")
        #expect(ws.readyState == .open)
        try await ws.send(.text("after"))
        #expect(try await ws.nextMessage() == .text("after"))
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        #expect(await Conn.waitUntil(seconds: 3) { server.connectionCount == 0 })
        await server.shutdown(deadline: .milliseconds(300))
    }
}
