import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import WebSockets

/// The server side: plain HTTP on the WebSocket port, upgrade validation and refusals,
/// the hooks, graceful shutdown, TLS and the legacy draft-76 handshake. Requests are
/// written byte for byte on raw TCP connections (`ServerRawClient`).
@Suite struct ServerHTTPTests {
    // MARK: Plain HTTP on the WebSocket port

    @Test func plainGetIsAnsweredByTheHTTPHandler() async throws {
        let seen = ServerBox<[String]>([])
        let server = try await serverStart { request in
            seen.update { $0.append("\(request.method) \(request.uri) host=\(request.header("host") ?? "-")") }
            if request.path == "/" {
                return HTTPResponse(
                    status: 200,
                    headers: [("Content-Type", "text/html; charset=utf-8"), ("X-Served-By", "swift-websockets")],
                    body: Array("<h1>Welcome to WebSockets</h1>".utf8))
            }
            return .text("not found\n", status: 404)
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
        let response = try #require(await client.readResponse())
        #expect(response.statusLine == "HTTP/1.1 200 OK")
        #expect(response.bodyText == "<h1>Welcome to WebSockets</h1>")
        #expect(response.header("Content-Type") == "text/html; charset=utf-8")
        #expect(response.header("X-Served-By") == "swift-websockets")
        #expect(response.header("Content-Length") == "30")

        try await client.send("GET /missing?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let missing = try #require(await client.readResponse())
        #expect(missing.status == 404)
        #expect(missing.bodyText == "not found\n")
        #expect(seen.get == ["GET / host=127.0.0.1", "GET /missing?x=1 host=127.0.0.1"])
    }

    @Test func keepAliveServesTwoRequestsOnOneConnection() async throws {
        let peers = ServerBox<[String]>([])
        let server = try await serverStart { request in
            peers.update { $0.append(request.remoteAddress ?? "?") }
            return .text("you asked for \(request.path)\n")
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET /one HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let first = try #require(await client.readResponse())
        #expect(first.status == 200)
        #expect(first.bodyText == "you asked for /one\n")
        #expect(first.header("Connection")?.lowercased() != "close")
        try await Task.sleep(for: .milliseconds(50))
        #expect(!client.isClosed, "the connection must stay open after a keep-alive response")

        try await client.send("GET /two HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let second = try #require(await client.readResponse())
        #expect(second.bodyText == "you asked for /two\n")
        #expect(peers.get.count == 2)
        #expect(Set(peers.get).count == 1, "both requests came over one connection: \(peers.get)")

        // Connection: close is honoured.
        try await client.send("GET /three HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let third = try #require(await client.readResponse())
        #expect(third.bodyText == "you asked for /three\n")
        #expect(await client.waitClosed(timeout: .seconds(3)))
    }

    @Test func withoutAHandlerPlainHTTPGets426() async throws {
        let server = try await serverStart()
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let response = try #require(await client.readResponse())
        #expect(response.status == 426)
        #expect(response.header("Upgrade")?.lowercased() == "websocket")
        #expect(!response.body.isEmpty)
        #expect(server.connectionCount == 0)
    }

    @Test func postBodyIsDeliveredToTheHandler() async throws {
        let bodies = ServerBox<[String]>([])
        let server = try await serverStart { request in
            bodies.update { $0.append("\(request.method) \(request.path) \(String(decoding: request.body, as: UTF8.self))") }
            return .text("got \(request.body.count) bytes\n", status: 201)
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world")
        let response = try #require(await client.readResponse())
        #expect(response.status == 201)
        #expect(response.bodyText == "got 11 bytes\n")

        // Chunked bodies are reassembled.
        try await client.send("POST /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        let chunked = try #require(await client.readResponse())
        #expect(chunked.bodyText == "got 11 bytes\n")
        #expect(bodies.get == ["POST /submit hello world", "POST /chunked hello world"])
    }

    @Test func bodyOverMaxRequestBodySizeGets413() async throws {
        var config = ServerConfiguration()
        config.maxRequestBodySize = 100
        let calls = ServerBox(0)
        let server = try await serverStart(config) { _ in
            calls.update { $0 += 1 }
            return .text("ok\n")
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        let body = String(repeating: "x", count: 1000)
        try await client.send("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n\(body)")
        let response = try #require(await client.readResponse())
        #expect(response.status == 413)
        #expect(response.header("Connection")?.lowercased() == "close")
        #expect(await client.waitClosed(timeout: .seconds(3)))
        #expect(calls.get == 0, "the handler must not see an oversized request")

        // Exactly at the limit is fine.
        let ok = try await ServerRawClient.connect(port: server.port)
        defer { ok.close() }
        try await ok.send("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + String(repeating: "y", count: 100))
        #expect(try #require(await ok.readResponse()).status == 200)
        #expect(calls.get == 1)
    }

    @Test func headOverMaxRequestHeaderSizeGets431AndNoUpgrade() async throws {
        var config = ServerConfiguration()
        config.maxRequestHeaderSize = 1024
        let opened = ServerBox(0)
        let server = try await serverStart(config) { _ in .text("ok\n") }
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        // One huge field on an upgrade request.
        let big = try await ServerRawClient.connect(port: server.port)
        defer { big.close() }
        try await big.send(serverUpgradeRequest(extra: ["X-Pad: " + String(repeating: "a", count: 2000)]))
        let r1 = try #require(await big.readResponse())
        #expect(r1.status == 431 || r1.status == 400, "got \(r1.statusLine)")
        #expect(await big.waitClosed(timeout: .seconds(3)))

        // Many small fields adding up past the limit, on a plain GET.
        let many = try await ServerRawClient.connect(port: server.port)
        defer { many.close() }
        let fields = (0..<60).map { "X-Field-\($0): \(String(repeating: "b", count: 30))" }.joined(separator: "\r\n")
        try await many.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\(fields)\r\n\r\n")
        let r2 = try #require(await many.readResponse())
        #expect(r2.status == 431 || r2.status == 400, "got \(r2.statusLine)")

        #expect(opened.get == 0)
        #expect(server.connectionCount == 0)
    }

    // Handshake timers of about a second: long enough that a loaded machine (parallel
    // suites, Python peers) still gets the first bytes out in time.
    @Test func handshakeTimeoutDropsASlowClient() async throws {
        var config = ServerConfiguration()
        config.handshakeTimeout = .seconds(1)
        let server = try await serverStart(config) { _ in .text("ok\n") }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let slow = try await ServerRawClient.connect(port: server.port)
        defer { slow.close() }
        try await slow.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  // never finishes the head
        #expect(await slow.waitClosed(timeout: .seconds(5)))
        #expect(slow.received.isEmpty)
    }

    @Test func headRequestGetsHeadersButNoBody() async throws {
        let server = try await serverStart { _ in .html("<h1>Welcome to WebSockets</h1>") }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        // The head announces Content-Length 30 but a HEAD answer has no body: wait for the
        // blank line, then make sure nothing follows it.
        #expect(await client.wait { b, _ in String(decoding: b, as: UTF8.self).contains("\r\n\r\n") })
        try await Task.sleep(for: .milliseconds(100))
        let bytes = client.received
        let text = String(decoding: bytes, as: UTF8.self)
        let head = try #require(text.range(of: "\r\n\r\n").map { String(text[..<$0.upperBound]) })
        #expect(head.hasPrefix("HTTP/1.1 200"))
        // RFC 9110 §9.3.2: a response to HEAD has no content; bytes after the head would be
        // read as the start of the next response on this keep-alive connection.
        #expect(text == head, "bytes after the HEAD response's head: \(text.dropFirst(head.count).debugDescription)")
    }

    @Test func unsafeHandlerHeadersAreDropped() async throws {
        let server = try await serverStart { _ in
            HTTPResponse(status: 200, headers: [("X-Good", "fine"), ("X-Bad", "a\r\nInjected: yes"), ("Bad Name", "x"), ("Content-Length", "999")],
                         body: Array("body".utf8))
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let response = try #require(await client.readResponse())
        #expect(response.header("X-Good") == "fine")
        #expect(response.header("Injected") == nil)
        #expect(response.header("X-Bad") == nil)
        #expect(response.headers("Content-Length") == ["4"])
        #expect(response.bodyText == "body")
    }

    @Test func idleKeepAliveConnectionIsDroppedAfterTheHandshakeTimeout() async throws {
        var config = ServerConfiguration()
        config.handshakeTimeout = .seconds(1)
        let server = try await serverStart(config) { _ in .text("ok\n") }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(try #require(await client.readResponse()).status == 200)
        #expect(await client.waitClosed(timeout: .seconds(3)))
    }

    // MARK: Upgrade requests

    /// Sends `request` on a fresh connection and returns the response; the server must
    /// close afterwards.
    private func refused(_ server: WebSocketServer, _ request: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ServerRawResponse {
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send(request)
        let response = try #require(await client.readResponse(), "no response to \(request.debugDescription)", sourceLocation: sourceLocation)
        #expect(await client.waitClosed(timeout: .seconds(3)), "the server keeps the connection open after \(response.status)", sourceLocation: sourceLocation)
        return response
    }

    @Test func validUpgradeGets101AndLaterBytesReachTheSocket() async throws {
        let server = try await serverStart()
        serverEcho(server)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        // The request and a first frame in one write.
        try await client.send(Array(serverUpgradeRequest(path: "/chat").utf8) + serverClientFrame(opcode: 1, Array("early".utf8)))
        let response = try #require(await client.readResponse())
        #expect(response.statusLine.hasPrefix("HTTP/1.1 101"))
        #expect(response.header("Upgrade")?.lowercased() == "websocket")
        #expect(response.header("Connection")?.lowercased() == "upgrade")
        #expect(response.header("Sec-WebSocket-Accept") == serverSampleAccept)
        #expect(response.header("Sec-WebSocket-Protocol") == nil)
        #expect(response.header("Sec-WebSocket-Extensions") == nil, "no extension was offered")
        let echo = await client.read(count: 7)
        #expect(echo == [0x81, 5] + Array("early".utf8))
        try await client.send(serverClientFrame(opcode: 8, [0x03, 0xE8]))
        #expect(await client.read(count: 4) == [0x88, 2, 0x03, 0xE8])
        #expect(await client.waitClosed())
    }

    @Test func upgradeAfterAPlainRequestOnTheSameConnection() async throws {
        let server = try await serverStart { _ in .html("<h1>Welcome to WebSockets</h1>") }
        serverEcho(server)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        // A page request, then the upgrade, pipelined in one write.
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + serverUpgradeRequest(path: "/ws"))
        let page = try #require(await client.readResponse())
        #expect(page.status == 200)
        #expect(page.bodyText == "<h1>Welcome to WebSockets</h1>")
        let upgrade = try #require(await client.readResponse())
        #expect(upgrade.status == 101)
        #expect(upgrade.header("Sec-WebSocket-Accept") == serverSampleAccept)
        try await client.send(serverClientFrame(opcode: 1, Array("hi".utf8)))
        #expect(await client.read(count: 4) == [0x81, 2] + Array("hi".utf8))
    }

    @Test func browserStyleConnectionHeaderListIsAccepted() async throws {
        let server = try await serverStart()
        serverEcho(server)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        // Firefox sends "Connection: keep-alive, Upgrade"; Upgrade's value is case-insensitive.
        let request = serverUpgradeRequest()
            .replacingOccurrences(of: "Connection: Upgrade", with: "Connection: keep-alive, Upgrade")
            .replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: WebSocket")
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send(request)
        let response = try #require(await client.readResponse())
        #expect(response.status == 101, "got \(response.statusLine)")
    }

    @Test func handshakeTimerStopsOnceUpgraded() async throws {
        var config = ServerConfiguration()
        config.handshakeTimeout = .seconds(1)
        let server = try await serverStart(config)
        serverEcho(server)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send(serverUpgradeRequest())
        #expect(try #require(await client.readResponse()).status == 101)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(!client.isClosed, "an open WebSocket must not be dropped by the handshake timer")
        try await client.send(serverClientFrame(opcode: 1, Array("still here".utf8)))
        #expect(await client.read(count: 12) == [0x81, 10] + Array("still here".utf8))
    }

    @Test func http10UpgradeGets400() async throws {
        let server = try await serverStart()
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let request = serverUpgradeRequest().replacingOccurrences(of: "GET / HTTP/1.1", with: "GET / HTTP/1.0")
        let response = try await refused(server, request)
        #expect(response.status == 400)
    }

    @Test func missingOrInvalidKeyGets400() async throws {
        let opened = ServerBox(0)
        let server = try await serverStart()
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        for key in [nil, "abc", "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] as [String?] {
            let response = try await refused(server, serverUpgradeRequest(key: key))
            #expect(response.status == 400, "key \(key ?? "nil"): \(response.statusLine)")
            #expect(!response.body.isEmpty && response.body.count < 200, "a short explanation: \(response.bodyText)")
            #expect(response.header("Sec-WebSocket-Accept") == nil)
        }
        #expect(opened.get == 0)
    }

    @Test func version8Gets426WithSupportedVersion() async throws {
        let server = try await serverStart()
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let response = try await refused(server, serverUpgradeRequest(version: "8"))
        #expect(response.status == 426)
        #expect(response.header("Sec-WebSocket-Version") == "13")
        let none = try await refused(server, serverUpgradeRequest(version: nil))
        #expect(none.status == 426 || none.status == 400)
    }

    @Test func duplicateKeyGets400() async throws {
        let server = try await serverStart()
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let response = try await refused(server, serverUpgradeRequest(extra: ["Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="]))
        #expect(response.status == 400)
    }

    @Test func upgradeWithABodyGets400() async throws {
        let opened = ServerBox(0)
        let server = try await serverStart()
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let withLength = try await refused(server, serverUpgradeRequest(extra: ["Content-Length: 5"]) + "hello")
        #expect(withLength.status == 400, "got \(withLength.statusLine)")
        let chunked = try await refused(server, serverUpgradeRequest(extra: ["Transfer-Encoding: chunked"]) + "5\r\nhello\r\n0\r\n\r\n")
        #expect(chunked.status == 400, "got \(chunked.statusLine)")
        #expect(opened.get == 0)
    }

    @Test func nonGetUpgradeGets400() async throws {
        let server = try await serverStart()
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let request = serverUpgradeRequest().replacingOccurrences(of: "GET / ", with: "POST / ")
        let response = try await refused(server, request)
        #expect(response.status == 400)
    }

    @Test func disallowedOriginGets403() async throws {
        var config = ServerConfiguration()
        config.allowedOrigins = ["https://good.example"]
        let opened = ServerBox(0)
        let server = try await serverStart(config)
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let response = try await refused(server, serverUpgradeRequest(extra: ["Origin: https://evil.example"]))
        #expect(response.status == 403)
        #expect(opened.get == 0)

        let good = try await ServerRawClient.connect(port: server.port)
        defer { good.close() }
        try await good.send(serverUpgradeRequest(extra: ["Origin: https://good.example"]))
        #expect(try #require(await good.readResponse()).status == 101)
        #expect(await serverEventually { opened.get == 1 })
    }

    @Test func authenticateRefusesByHeaderPathAndQuery() async throws {
        let server = try await serverStart()
        let requests = ServerBox<[String]>([])
        server.authenticate = { request in
            requests.update { $0.append(request.uri) }
            if request.path == "/admin" { return .text("forbidden path\n", status: 403) }
            if request.query.contains("token=bad") { return .text("bad token\n", status: 403) }
            guard request.header("Authorization") == "Bearer secret" else {
                return HTTPResponse(status: 401, headers: [("WWW-Authenticate", "Bearer realm=\"ws\"")], body: Array("who are you?\n".utf8))
            }
            return nil
        }
        let opened = ServerBox<[String]>([])
        server.onconnection = { ws, request in
            opened.update { $0.append("\(request.path) \(request.query) \(request.header("authorization") ?? "")") }
            ws.onmessage = { event in try? ws.send(event.data) }
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        // Raw: the refusal is the hook's response, verbatim.
        let unauthorized = try await refused(server, serverUpgradeRequest(path: "/chat?token=good"))
        #expect(unauthorized.status == 401)
        #expect(unauthorized.header("WWW-Authenticate") == "Bearer realm=\"ws\"")
        #expect(unauthorized.bodyText == "who are you?\n")

        // Through the client: the status shows up in the handshake error.
        func status(_ path: String, auth: Bool) async -> Int? {
            var config = ClientConfiguration()
            if auth { config.headers = [("Authorization", "Bearer secret")] }
            do {
                let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)\(path)", configuration: config)
                try? await ws.close()
                return 101
            } catch WebSocketError.handshakeFailed(let error) {
                return error.status
            } catch {
                Issue.record("unexpected error \(error)")
                return nil
            }
        }
        #expect(await status("/chat?token=good", auth: false) == 401)
        #expect(await status("/admin", auth: true) == 403)
        #expect(await status("/chat?token=bad", auth: true) == 403)
        #expect(opened.get.isEmpty)
        #expect(await status("/chat?token=good", auth: true) == 101)
        #expect(opened.get == ["/chat token=good Bearer secret"])
        #expect(requests.get.count == 5)
    }

    @Test func selectProtocolPicksFromTheClientsList() async throws {
        let server = try await serverStart()
        let offered = ServerBox<[[String]]>([])
        server.selectProtocol = { list, _ in
            offered.update { $0.append(list) }
            return list.first { $0 == "chat.v1" }
        }
        let serverSide = ServerBox<String?>(nil)
        server.onconnection = { ws, _ in serverSide.set(ws.protocol) }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/", protocols: ["chat.v2", "chat.v1"])
        #expect(ws.protocol == "chat.v1")
        #expect(offered.get == [["chat.v2", "chat.v1"]], "the hook sees the list in the client's order")
        #expect(await serverEventually { serverSide.get == "chat.v1" })
        try await ws.close()

        // Picking nothing: no header, protocol "".
        let none = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/", protocols: ["mqtt", "stomp"])
        #expect(none.protocol == "")
        try await none.close()
        let raw = try await ServerRawClient.connect(port: server.port)
        defer { raw.close() }
        try await raw.send(serverUpgradeRequest(extra: ["Sec-WebSocket-Protocol: mqtt, stomp"]))
        let response = try #require(await raw.readResponse())
        #expect(response.status == 101)
        #expect(response.header("Sec-WebSocket-Protocol") == nil)

        // No offer: the hook is not asked.
        let count = offered.get.count
        let plain = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/")
        #expect(plain.protocol == "")
        #expect(offered.get.count == count)
        try await plain.close()
    }

    @Test func selectProtocolAnswerNotOfferedIsIgnored() async throws {
        let server = try await serverStart()
        server.selectProtocol = { _, _ in "evil" }
        serverEcho(server)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let raw = try await ServerRawClient.connect(port: server.port)
        defer { raw.close() }
        try await raw.send(serverUpgradeRequest(extra: ["Sec-WebSocket-Protocol: chat"]))
        let response = try #require(await raw.readResponse())
        #expect(response.status == 101)
        #expect(response.headers("Sec-WebSocket-Protocol").isEmpty, "got \(response.headers("Sec-WebSocket-Protocol"))")

        // The library's client would fail on a protocol it did not offer; it must connect.
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/", protocols: ["chat"])
        #expect(ws.protocol == "")
        var it = ws.messages.makeAsyncIterator()
        try await ws.send("still works")
        #expect(try await it.next() == .text("still works"))
        try await ws.close()
    }

    // MARK: Graceful shutdown

    @Test func shutdownSends1001ToEveryClientAndRefusesNewOnes() async throws {
        let server = try await serverStart()
        serverEcho(server)
        let port = server.port
        let closes = ServerBox<[String]>([])
        var clients: [WebSocket] = []
        for i in 0..<3 {
            let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/\(i)")
            ws.onclose = { event in closes.update { $0.append("\(i) \(event.code) \(event.reason) \(event.wasClean)") } }
            clients.append(ws)
        }
        // A fourth client that never answers the close frame keeps shutdown waiting.
        let stubborn = try await ServerRawClient.connect(port: port)
        defer { stubborn.close() }
        try await stubborn.send(serverUpgradeRequest())
        #expect(try #require(await stubborn.readResponse()).status == 101)
        #expect(await serverEventually { server.connectionCount == 4 })

        let shutdown = Task { await server.shutdown(deadline: .milliseconds(1500)) }
        #expect(await serverEventually { closes.get.count == 3 }, "closes: \(closes.get)")
        #expect(Set(closes.get) == ["0 1001 server shutting down true", "1 1001 server shutting down true", "2 1001 server shutting down true"])
        for ws in clients { #expect(ws.readyState == .closed) }
        // The stubborn client got an unmasked close frame with 1001.
        #expect(await stubborn.wait { b, _ in b.count >= 4 })
        #expect(Array(stubborn.received.prefix(4)) == [0x88, UInt8(2 + "server shutting down".utf8.count), 0x03, 0xE9])

        // Shutdown is still waiting for the stubborn client: new connections are refused.
        #expect(server.connectionCount == 1)
        let late: String
        do {
            let raw = try await ServerRawClient.connect(port: port)
            defer { raw.close() }
            try await raw.send(serverUpgradeRequest())
            late = (await raw.readResponse(timeout: .seconds(2))).map { "status \($0.status)" } ?? "no answer"
        } catch {
            late = "connect failed"
        }
        #expect(late == "connect failed", "a connection attempted during shutdown got: \(late)")
        await #expect(throws: (any Error).self) {
            _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/late")
        }

        await shutdown.value
        #expect(server.connectionCount == 0, "shutdown() returned with connections still registered")
        #expect(await serverEventually(timeout: .seconds(2)) { server.connectionCount == 0 })
        #expect(await stubborn.waitClosed(timeout: .seconds(2)), "shutdown drops connections past the deadline")
    }

    @Test func upgradeOnAConnectionAcceptedBeforeShutdownIsRefused() async throws {
        let server = try await serverStart { _ in .text("ok\n") }
        serverEcho(server)
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/")
        // Connected at the TCP level before shutdown, request sent during it.
        let early = try await ServerRawClient.connect(port: server.port)
        defer { early.close() }
        try await Task.sleep(for: .milliseconds(50))
        let shutdown = Task { await server.shutdown(deadline: .seconds(2)) }
        await ws.closed()
        // Shutdown closes idle plain-HTTP connections; one that still gets its request in
        // must be refused with 503, never upgraded.
        let sent = (try? await early.send(serverUpgradeRequest())) != nil
        if sent, let response = await early.readResponse(timeout: .seconds(3)) {
            #expect(response.status == 503, "an upgrade during shutdown got \(response.statusLine)")
        } else {
            #expect(await early.waitClosed(timeout: .seconds(3)), "the idle connection was neither refused nor closed")
        }
        await shutdown.value
        #expect(await serverEventually(timeout: .seconds(2)) { server.connectionCount == 0 })
    }

    @Test func shutdownAlsoEndsIdleHTTPConnections() async throws {
        let served = ServerBox<[String]>([])
        let server = try await serverStart { request in
            served.update { $0.append(request.path) }
            return .text("ok\n")
        }
        // A keep-alive HTTP connection (a browser that loaded the page) before shutdown.
        let early = try await ServerRawClient.connect(port: server.port)
        defer { early.close() }
        try await early.send("GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(try #require(await early.readResponse()).status == 200)
        await server.shutdown(deadline: .seconds(1))
        // After shutdown() returns the handler must not run any more: the connection is
        // closed (or at least the request refused).
        try? await early.send("GET /after-shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let response = await early.readResponse(timeout: .seconds(1))
        #expect(served.get == ["/page"], "the HTTP handler still ran after shutdown() returned: \(served.get)")
        #expect(response == nil || response?.status == 503, "got \(response?.statusLine ?? "-") after shutdown")
    }

    // MARK: TLS

    @Test func tlsEchoWithATrustedSelfSignedCertificate() async throws {
        guard let files = try ServerTLSFiles.make() else { return }
        defer { files.remove() }
        let certificate = try #require(try NIOSSLCertificate.fromPEMFile(files.certificate).first)
        let key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        var config = ServerConfiguration()
        config.tls = .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
        let server = try await serverStart(config)
        let serverRequests = ServerBox<[String]>([])
        server.onconnection = { ws, request in
            serverRequests.update { $0.append(request.uri) }
            ws.onmessage = { event in try? ws.send(event.data) }
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        var client = ClientConfiguration()
        client.tls.trustRoots = .certificates([certificate])
        let ws = try await WebSocket.connect(to: "wss://127.0.0.1:\(server.port)/secure", configuration: client)
        var it = ws.messages.makeAsyncIterator()
        try await ws.send("over TLS")
        #expect(try await it.next() == .text("over TLS"))
        try await ws.send(.binary(Array(0...255)))
        #expect(try await it.next() == .binary(Array(0...255)))
        try await ws.close(code: 1000, reason: "bye")
        #expect(serverRequests.get == ["/secure"])

        // The hostname form works too (the certificate names localhost).
        let byName = try await WebSocket.connect(to: "wss://localhost:\(server.port)/name", configuration: client)
        try await byName.close()

        // Default trust roots do not know the certificate: onerror, then onclose 1006.
        let events = ServerEventLog()
        let untrusted = WebSocket(url: "wss://127.0.0.1:\(server.port)/")
        untrusted.onopen = { _ in events.add("open") }
        untrusted.onerror = { _ in events.add("error") }
        untrusted.onclose = { event in events.add("close \(event.code) \(event.wasClean)") }
        let closed: Void? = await serverWithTimeout(.seconds(10)) { await untrusted.closed() }
        #expect(closed != nil)
        #expect(events.all == ["error", "close 1006 false"])

        // A plain ws:// client on the TLS port does not get a connection either.
        await #expect(throws: (any Error).self) {
            var quick = ClientConfiguration()
            quick.connectTimeout = .seconds(2)
            _ = try await WebSocket.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: quick)
        }
    }

    // MARK: LEGACY draft-76

    /// The exchange of the original design notes, with the double spaces that the
    /// notes' rendering collapsed restored (the keys are only valid with them).
    static let draft76Request =
        "GET /demo HTTP/1.1\r\n" + "Host: example.com\r\n" + "Connection: Upgrade\r\n"
        + "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n" + "Sec-WebSocket-Protocol: sample\r\n"
        + "Upgrade: WebSocket\r\n" + "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
        + "Origin: http://example.com\r\n" + "\r\n" + "^n:ds[4U"

    static let draft76Response =
        "HTTP/1.1 101 WebSocket Protocol Handshake\r\n" + "Upgrade: WebSocket\r\n" + "Connection: Upgrade\r\n"
        + "Sec-WebSocket-Origin: http://example.com\r\n" + "Sec-WebSocket-Location: ws://example.com/demo\r\n"
        + "Sec-WebSocket-Protocol: sample\r\n" + "\r\n" + "8jKS'y:G*Co,Wxa-"

    @Test func legacyDraft76ExchangeOfTheDesignNotes() async throws {
        var config = ServerConfiguration()
        config.acceptsLegacyDraft76 = true
        let server = try await serverStart(config)
        server.selectProtocol = { offered, _ in offered.contains("sample") ? "sample" : nil }
        let events = ServerEventLog()
        server.onconnection = { ws, request in
            events.add("connection \(request.path) \(ws.protocol)")
            ws.onmessage = { event in
                events.add("message \(event.data)")
                try? ws.send(event.data)
            }
            ws.onclose = { event in events.add("close \(event.code) \(event.wasClean)") }
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }

        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        try await client.send(Self.draft76Request)
        let expected = Array(Self.draft76Response.utf8)
        let answer = await client.read(count: expected.count)
        #expect(answer.map { String(decoding: $0, as: UTF8.self) } == Self.draft76Response)
        #expect(answer == expected)
        #expect(await serverEventually { events.all.first == "connection /demo sample" }, "\(events.all)")

        try await client.send([0x00] + Array("hello".utf8) + [0xFF])
        #expect(await client.read(count: 7) == [0x00] + Array("hello".utf8) + [0xFF])
        #expect(events.all.contains("message text(\"hello\")"))

        try await client.send([0xFF, 0x00])
        #expect(await client.read(count: 2) == [0xFF, 0x00])
        #expect(await client.waitClosed(timeout: .seconds(3)))
        #expect(await serverEventually { events.all.last == "close 1000 true" }, "\(events.all)")
        #expect(await serverEventually { server.connectionCount == 0 })
    }

    @Test func legacyDraft76KeyBodyArrivingLateAndServerInitiatedClose() async throws {
        var config = ServerConfiguration()
        config.acceptsLegacyDraft76 = true
        let server = try await serverStart(config)
        let events = ServerEventLog()
        server.onconnection = { ws, _ in
            ws.onmessage = { event in
                events.add("message \(event.data)")
                try? ws.close()
            }
            ws.onclose = { event in events.add("close \(event.code) \(event.wasClean)") }
        }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let request = Array(Self.draft76Request.utf8)
        let client = try await ServerRawClient.connect(port: server.port)
        defer { client.close() }
        // The head, then the 8-byte body in two pieces.
        try await client.send(Array(request.dropLast(8)))
        try await Task.sleep(for: .milliseconds(50))
        try await client.send(Array(request.suffix(8).prefix(3)))
        try await Task.sleep(for: .milliseconds(50))
        try await client.send(Array(request.suffix(5)))
        // No subprotocol was selected this time: the response lacks that line.
        let withoutProtocol = Array(Self.draft76Response.replacingOccurrences(of: "Sec-WebSocket-Protocol: sample\r\n", with: "").utf8)
        let answer = await client.read(count: withoutProtocol.count)
        #expect(answer == withoutProtocol, "\(answer.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")

        // The server closes: FF 00, we answer FF 00, the connection ends cleanly.
        try await client.send([0x00] + Array("bye".utf8) + [0xFF])
        #expect(await client.read(count: 2) == [0xFF, 0x00])
        try await client.send([0xFF, 0x00])
        #expect(await client.waitClosed(timeout: .seconds(3)))
        #expect(await serverEventually { events.all == ["message text(\"bye\")", "close 1000 true"] }, "\(events.all)")
    }

    @Test func legacyDraft76RespectsAllowedOriginsAndAuthenticate() async throws {
        var config = ServerConfiguration()
        config.acceptsLegacyDraft76 = true
        config.allowedOrigins = ["http://good.example"]
        let server = try await serverStart(config)
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let badOrigin = try await refused(server, Self.draft76Request)
        #expect(badOrigin.status == 403)

        let good = Self.draft76Request.replacingOccurrences(of: "Origin: http://example.com", with: "Origin: http://good.example")
        server.authenticate = { $0.path == "/demo" ? .text("no\n", status: 401) : nil }
        let unauthenticated = try await refused(server, good)
        #expect(unauthenticated.status == 401)
    }

    @Test func legacyDraft76IsRefusedByDefault() async throws {
        let server = try await serverStart()
        let opened = ServerBox(0)
        server.onconnection = { _, _ in opened.update { $0 += 1 } }
        server.selectProtocol = { _, _ in "sample" }
        defer { Task { await server.shutdown(deadline: .seconds(1)) } }
        let response = try await refused(server, Self.draft76Request)
        #expect(response.status == 400 || response.status == 426, "got \(response.statusLine)")
        #expect(!response.statusLine.contains("101"))
        #expect(opened.get == 0)
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI.
struct ServerTLSFiles {
    let directory: URL
    var certificate: String { directory.appendingPathComponent("cert.pem").path }
    var key: String { directory.appendingPathComponent("key.pem").path }

    /// Nil (with a printed reason) when openssl is not installed.
    static func make() throws -> ServerTLSFiles? {
        let candidates = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"]
        guard let openssl = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("ServerHTTPTests: skipping the TLS test: no openssl CLI in \(candidates)")
            return nil
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let files = ServerTLSFiles(directory: dir)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", files.key, "-out", files.certificate, "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            files.remove()
            throw ServerTLSError.opensslFailed(process.terminationStatus)
        }
        return files
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

enum ServerTLSError: Error { case opensslFailed(Int32) }
