import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

/// The large-message tests run on their own event loops, so their (de)compression work
/// does not delay the short timers of the other suites running in parallel.
let connHeavyGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// Which ends offer/accept permessage-deflate.
enum ConnDeflateMode: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case on, clientOff, serverOff
    var testDescription: String { "deflate \(rawValue)" }
}

enum ConnKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case text, binary
    var testDescription: String { rawValue }
    func message(_ size: Int) -> Message { self == .text ? .text(Conn.text(size)) : .binary(Conn.bytes(size)) }
}

@Suite struct MessagingTests {
    static let sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]

    // MARK: Sizes, deflate on and off

    @Test(arguments: ConnDeflateMode.allCases, ConnKind.allCases)
    func echoesEverySize(mode: ConnDeflateMode, kind: ConnKind) async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.maxMessageSize = 32 << 20  // compressed random data grows a little
            $0.deflate.enabled = mode != .serverOff
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let config = Conn.client {
            $0.connection.maxMessageSize = 32 << 20
            if mode == .clientOff { $0.deflate = nil }
        }
        let ws = try await Conn.connect(Conn.url(server), configuration: config, group: connHeavyGroup)
        let clientEvents = ConnRecorder()
        clientEvents.attach(ws)  // onerror/onclose (messages go to the async queue)
        #expect(ws.extensions.hasPrefix("permessage-deflate") == (mode == .on), "extensions: \(ws.extensions)")
        let (_, events, _) = try await sockets.socket()
        for size in Self.sizes {
            let sent = kind.message(size)
            do {
                try await ws.send(sent)
                let back = try await ws.nextMessage(seconds: 30)
                let same = back == sent
                #expect(same, "\(kind) of \(size) B, \(mode): got \(back.map(Conn.describe) ?? "nil")")
            } catch {
                Issue.record("\(kind) of \(size) B, \(mode): \(error); client \(clientEvents.lines) \(clientEvents.errors); server \(events.lines) \(events.errors)")
                throw error
            }
        }
        #expect(events.errors.isEmpty)
        #expect(events.messages.count == Self.sizes.count)
        try await Conn.withTimeout(seconds: 5) { try await ws.close(code: 1000) }
        #expect(try await events.waitClose().code == 1000)
        await server.shutdown(deadline: .milliseconds(500))
    }

    /// A raw client offering permessage-deflate: the server compresses its echo (RSV1,
    /// fewer bytes) when deflate is enabled, and neither accepts nor compresses when off.
    @Test(arguments: [true, false])
    func deflateIsReallyOnOrOffOnTheWire(enabled: Bool) async throws {
        let server = try await WebSocketServer.conn { $0.deflate.enabled = enabled }
        _ = ConnServerSockets(server)
        let raw = try await RawPeer.connect(port: server.port)
        try await raw.send(RawWS.upgradeRequest(port: server.port, extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate"]))
        let head = try await raw.readHead()
        #expect(head.hasPrefix("HTTP/1.1 101"))
        #expect(head.lowercased().contains("sec-websocket-extensions: permessage-deflate") == enabled, "\(head)")
        let text = String(repeating: "compressible ", count: 100)
        try await raw.send(RawWS.frame(RawWS.text, text))  // uncompressed input is always allowed
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.text && echo.fin && !echo.masked)
        if enabled {
            #expect(echo.rsv == 0x40, "echo should be compressed: \(echo)")
            #expect(echo.payload.count < text.utf8.count / 4)
        } else {
            #expect(echo.rsv == 0, "\(echo)")
            #expect(echo.text == text)
        }
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Order

    @Test func asyncOrderPreservedOver1000Messages() async throws {
        let server = try await WebSocketServer.conn()
        _ = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server))
        let sent: [Message] = (0..<1000).map { i in
            i % 3 == 0 ? .binary(Array("bin \(i)".utf8) + [UInt8](repeating: UInt8(i & 0xFF), count: i)) : .text("msg \(i) " + String(repeating: "x", count: i % 200))
        }
        for m in sent { try await ws.send(m) }
        var received: [Message] = []
        for _ in 0..<1000 {
            guard let m = try await ws.nextMessage(seconds: 10) else { break }
            received.append(m)
        }
        #expect(received.count == 1000)
        let firstMismatch = zip(received, sent).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstMismatch == nil, "first out-of-order message at \(firstMismatch ?? -1)")
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(500))
    }

    @Test func callbackOrderPreservedOver1000Messages() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        ws.onopen = { _ in
            for i in 0..<1000 { try? ws.send("n\(i)") }
        }
        let got = try await events.waitMessages(1000, seconds: 10)
        #expect(got == (0..<1000).map { .text("n\($0)") })
        #expect(try await sockets.socket().events.messages.count == 1000)
        try ws.closeNow(code: 1000)
        _ = try await events.waitClose()
        await server.shutdown(deadline: .milliseconds(500))
    }

    // MARK: Fragmentation

    /// The server splits outgoing messages into `fragmentSize` frames: the raw client sees
    /// a first frame with the message opcode, then continuations, FIN only on the last.
    @Test func serverFragmentsLargeMessages() async throws {
        let server = try await WebSocketServer.conn { $0.connection.fragmentSize = 10 }
        _ = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)

        let text = "0123456789abcdefghij0123456789héllo"  // 36 bytes: 10+10+10+6
        try await raw.send(RawWS.frame(RawWS.text, text))
        var frames: [RawFrame] = []
        repeat { frames.append(try await raw.readFrame()) } while frames.last?.fin == false && frames.count < 100
        #expect(frames.map(\.opcode) == [RawWS.text, 0, 0, 0])
        #expect(frames.map(\.fin) == [false, false, false, true])
        #expect(frames.map(\.payload.count) == [10, 10, 10, 6])
        #expect(frames.allSatisfy { !$0.masked && $0.rsv == 0 })
        #expect(String(decoding: frames.flatMap(\.payload), as: UTF8.self) == text)

        let bytes = Conn.bytes(25)
        try await raw.send(RawWS.frame(RawWS.binary, bytes))
        frames = []
        repeat { frames.append(try await raw.readFrame()) } while frames.last?.fin == false && frames.count < 100
        #expect(frames.map(\.opcode) == [RawWS.binary, 0, 0])
        #expect(frames.map(\.payload.count) == [10, 10, 5])
        #expect(frames.flatMap(\.payload) == bytes)

        // Exactly fragmentSize: one frame.
        try await raw.send(RawWS.frame(RawWS.binary, Array(bytes[0..<10])))
        let one = try await raw.readFrame()
        #expect(one.opcode == RawWS.binary && one.fin && one.payload.count == 10)
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Our client fragments too (masked frames), seen by a raw server.
    @Test func clientFragmentsLargeMessages() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client {
            $0.connection.fragmentSize = 10
            $0.deflate = nil
        })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        #expect(await Conn.waitUntil(seconds: 5) { ws.readyState == .open })
        let bytes = Conn.bytes(25)
        try ws.sendNow(bytes)
        var frames: [RawFrame] = []
        repeat { frames.append(try await peer.readFrame()) } while frames.last?.fin == false && frames.count < 100
        #expect(frames.map(\.opcode) == [RawWS.binary, 0, 0])
        #expect(frames.map(\.fin) == [false, false, true])
        #expect(frames.allSatisfy { $0.masked })
        #expect(frames.flatMap(\.payload) == bytes)
        await rawServer.close()
        _ = try await events.waitClose()
    }

    /// Small fragments both ways, with and without compression, between our client and server.
    @Test(arguments: [true, false])
    func fragmentedMessagesReassembled(deflate: Bool) async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.fragmentSize = 7
            $0.deflate.enabled = deflate
        }
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client { $0.connection.fragmentSize = 5 })
        #expect(ws.extensions.hasPrefix("permessage-deflate") == deflate)
        let text = Message.text(String(repeating: "fragmented héllo ", count: 60))
        let bin = Message.binary(Conn.bytes(1000))
        try await ws.send(text)
        try await ws.send(bin)
        #expect(try await ws.nextMessage() == text)
        #expect(try await ws.nextMessage() == bin)
        #expect(try await sockets.socket().events.messages == [text, bin])
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Fragmented input from a raw client, with a ping between fragments and an empty
    /// continuation, is reassembled into one message (echoed as one frame).
    @Test func fragmentedInputFromRawClientReassembled() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.text, "Hello, ", fin: false))
        try await raw.send(RawWS.frame(RawWS.ping, "between"))
        try await raw.send(RawWS.frame(RawWS.continuation, "fragmented ", fin: false))
        try await raw.send(RawWS.frame(RawWS.continuation, "", fin: false))
        try await raw.send(RawWS.frame(RawWS.continuation, "wörld", fin: true))
        let pong = try await raw.readFrame()
        #expect(pong.opcode == RawWS.pong && pong.text == "between")
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.text && echo.fin)
        #expect(echo.text == "Hello, fragmented wörld")

        // Binary, the fragments in one TCP write; a UTF-8 character split across text fragments.
        try await raw.send(RawWS.frame(RawWS.binary, [1, 2], fin: false) + RawWS.frame(RawWS.continuation, [3], fin: true))
        let binEcho = try await raw.readFrame()
        #expect(binEcho.opcode == RawWS.binary && binEcho.payload == [1, 2, 3])
        let e = Array("é".utf8)
        try await raw.send(RawWS.frame(RawWS.text, [0x61, e[0]], fin: false))
        try await raw.send(RawWS.frame(RawWS.continuation, [e[1], 0x62], fin: true))
        let split = try await raw.readFrame()
        #expect(split.text == "aéb")

        #expect(try await sockets.socket().events.messages == [.text("Hello, fragmented wörld"), .binary([1, 2, 3]), .text("aéb")])
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Bytes that arrive with the handshake

    /// A client that sends its first frames in the same TCP write as the upgrade request:
    /// the server must hand the bytes after the request head to the WebSocket handler.
    @Test func framesInSameWriteAsUpgradeRequest() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.connect(port: server.port)
        try await raw.send(RawWS.upgradeRequest(port: server.port) + RawWS.frame(RawWS.text, "early") + RawWS.frame(RawWS.binary, [7, 7]))
        let head = try await raw.readHead()
        #expect(head.hasPrefix("HTTP/1.1 101"))
        let first = try await raw.readFrame()
        let second = try await raw.readFrame()
        #expect(first.opcode == RawWS.text && first.text == "early", "\(first)")
        #expect(second.opcode == RawWS.binary && second.payload == [7, 7], "\(second)")
        #expect(try await sockets.socket().events.messages == [.text("early"), .binary([7, 7])])
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A server that sends a frame in the same TCP write as its 101 response: the client
    /// opens, then delivers the message.
    @Test func frameInSameWriteAsUpgradeResponse() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client { $0.deflate = nil })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        let head = try await peer.readHead()
        let key = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }?
            .split(separator: ":").last.map { String($0).filter { $0 != " " } } ?? ""
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(Handshake.acceptKey(for: key))\r\n\r\n"
        try await peer.send(Array(response.utf8) + RawWS.frame(RawWS.text, "hello with the 101", mask: nil))
        _ = try await events.waitMessages(1)
        #expect(events.lines == ["open[1] ", "message text(hello with the 101)"])
        await rawServer.close()
        _ = try await events.waitClose()
    }

    /// A server that sends from `onconnection`: the client sees open first, then the message.
    @Test func messageSentFromOnconnectionArrivesAfterOpen() async throws {
        let server = try await WebSocketServer.conn()
        _ = ConnServerSockets(server) { ws in try? ws.sendNow("welcome") }
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        _ = try await events.waitMessages(1)
        #expect(events.lines == ["open[1] ", "message text(welcome)"])
        try ws.closeNow()
        _ = try await events.waitClose()
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Compressed input from a raw client

    /// A raw client negotiates permessage-deflate and sends compressed messages (one
    /// frame, and fragmented with RSV1 on the first frame only): the server inflates them.
    @Test func compressedFramesFromRawClient() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.connect(port: server.port)
        try await raw.send(RawWS.upgradeRequest(port: server.port, extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate"]))
        let head = try await raw.readHead()
        #expect(head.contains("permessage-deflate"))
        let writer = MessageWriter(role: .client, deflate: DeflateParameters())
        let text = String(repeating: "squeeze me ", count: 50)
        var bytes: [UInt8] = []
        try writer.write(.text(text), into: &bytes)
        try writer.write(.text(text + "again"), fragmentSize: 5, into: &bytes)  // context takeover
        try await raw.send(bytes)
        let (f1, n1) = try #require(RawWS.parse(bytes[...]))
        #expect(f1.rsv == 0x40, "the test's own frame should be compressed")
        #expect(n1 < bytes.count)
        let messages = try await sockets.socket().events.waitMessages(2)
        #expect(messages == [.text(text), .text(text + "again")])
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Slow async reader

    /// An async reader that does not read: after `inboundMessageQueue` messages the
    /// client stops reading the socket, so the server's queue grows instead of the
    /// client's memory; reading again delivers everything in order.
    @Test func slowAsyncReaderPausesSocketReads() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.overflowPolicy = .unbounded
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server, echo: false)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client {
            $0.connection.inboundMessageQueue = 4
            $0.deflate = nil
        }, group: connHeavyGroup)
        let sws = try await sockets.socket().ws
        let count = 400
        let chunk = Conn.bytes(64 << 10)  // 400 x 64 KiB = 25 MiB, more than loopback buffers hold
        for i in 0..<count { try sws.sendNow([UInt8(i & 0xFF)] + chunk) }
        await Conn.sleep(ms: 1000)
        let b1 = sws.bufferedAmount
        await Conn.sleep(ms: 300)
        let b2 = sws.bufferedAmount
        // A client that kept reading would have drained the server's queue by now.
        #expect(b2 > 8 << 20 && b2 == b1, "server bufferedAmount \(b1) then \(b2): the client kept reading")
        var ok = true
        for i in 0..<count {
            guard case .binary(let b)? = try await ws.nextMessage(seconds: 10), b.count == chunk.count + 1, b[0] == UInt8(i & 0xFF) else {
                ok = false
                Issue.record("message \(i) missing or out of order")
                break
            }
        }
        #expect(ok)
        #expect(await Conn.waitUntil(seconds: 5) { sws.bufferedAmount == 0 })
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Ping and pong

    @Test func pingAnsweredWithPongCarryingSamePayload() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        for payload in [Array("hello ping".utf8), [], Array(Conn.bytes(125))] {
            try await raw.send(RawWS.frame(RawWS.ping, payload, mask: [9, 8, 7, 6]))
            let pong = try await raw.readFrame()
            #expect(pong.opcode == RawWS.pong && pong.fin && !pong.masked && pong.rsv == 0, "\(pong)")
            #expect(pong.payload == payload)
        }
        #expect(try await sockets.socket().events.messages.isEmpty)  // pings are not messages
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func unsolicitedPongIgnored() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.pong, "unsolicited"))
        try await raw.send(RawWS.frame(RawWS.pong, []))
        try await raw.send(RawWS.frame(RawWS.text, "after pongs"))
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.text && echo.text == "after pongs", "\(echo)")
        let (ws, events, _) = try await sockets.socket()
        #expect(ws.readyState == .open)
        #expect(events.errors.isEmpty && events.closes.isEmpty)
        #expect(events.messages == [.text("after pongs")])
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// With a short pingInterval the server pings an idle raw client; answering keeps the
    /// connection open well past pingTimeout.
    @Test func keepalivePingsAnsweredKeepRawConnectionOpen() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.pingInterval = .milliseconds(50)
            $0.connection.pingTimeout = .milliseconds(400)
        }
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        let start = ContinuousClock.now
        var pings: [[UInt8]] = []
        var others: [RawFrame] = []
        while Conn.elapsed(since: start) < 1.2 {
            guard let f = try? await raw.readFrame(seconds: 0.05) else { continue }
            if f.opcode == RawWS.ping {
                pings.append(f.payload)
                try await raw.send(RawWS.frame(RawWS.pong, f.payload))
            } else {
                others.append(f)
            }
        }
        #expect(pings.count >= 4, "pings: \(pings.count)")
        #expect(Set(pings).count == pings.count, "each keepalive ping carries a new payload")
        #expect(others.isEmpty, "unexpected frames: \(others)")
        #expect(!raw.eof)
        let (ws, events, _) = try await sockets.socket()
        #expect(ws.readyState == .open)
        #expect(events.closes.isEmpty && events.errors.isEmpty)
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Our client and server both ping every 30 ms and answer each other: an idle
    /// connection stays open and usable.
    @Test func keepaliveBetweenOurClientAndServer() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.pingInterval = .milliseconds(30)
            $0.connection.pingTimeout = .milliseconds(300)
        }
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client {
            $0.connection.pingInterval = .milliseconds(30)
            $0.connection.pingTimeout = .milliseconds(300)
        })
        let clientEvents = ConnRecorder()
        clientEvents.attach(ws)
        await Conn.sleep(ms: 800)
        let (sws, events, _) = try await sockets.socket()
        let diagnostics = "client: \(clientEvents.lines) \(clientEvents.errors); server: \(events.lines) \(events.errors)"
        #expect(ws.readyState == .open, "\(diagnostics)")
        #expect(sws.readyState == .open)
        #expect(events.closes.isEmpty && events.errors.isEmpty)
        try await ws.send(.text("still here"))
        #expect(try await ws.nextMessage() == .text("still here"))
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Browser API: sending, attributes

    @Test func sendWhileConnectingThrowsInvalidState() async throws {
        let rawServer = try await RawServer.listen()  // accepts TCP, never answers
        let ws = WebSocket(url: Conn.url(rawServer))
        #expect(ws.readyState == .connecting)
        let error = #expect(throws: WebSocketError.self) { try ws.sendNow("too early") }
        if case .invalidState? = error {} else { Issue.record("expected invalidState, got \(String(describing: error))") }
        #expect(throws: WebSocketError.self) { try ws.sendNow([1, 2, 3]) }
        #expect(ws.bufferedAmount == 0)
        // The async send refuses too.
        await #expect(throws: WebSocketError.self) { try await ws.send(.text("too early")) }
        try ws.closeNow()
        await rawServer.close()
    }

    @Test func protocolExtensionsAndURL() async throws {
        let server = try await WebSocketServer.conn()
        server.selectProtocol = { offered, _ in offered.contains("chat") ? "chat" : nil }
        let sockets = ConnServerSockets(server)
        let url = Conn.url(server, "/room/1?user=ann")
        let ws = WebSocket(url: url, protocols: ["superchat", "chat"])
        let (p0, e0) = (ws.protocol, ws.extensions)
        if ws.readyState == .connecting {
            #expect(p0 == "" && e0 == "", "before open")
        }
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        #expect(events.lines.first == "open[1] chat")
        #expect(ws.url == url)
        #expect(ws.protocol == "chat")
        #expect(ws.extensions.hasPrefix("permessage-deflate"), "\(ws.extensions)")
        let (sws, _, request) = try await sockets.socket()
        #expect(sws.url == "/room/1?user=ann")
        #expect(request.path == "/room/1" && request.query == "user=ann")
        #expect(sws.protocol == "chat")
        #expect(sws.extensions == ws.extensions)
        try ws.closeNow()
        _ = try await events.waitClose()

        // No protocol chosen, no deflate: both empty on both ends.
        let ws2 = try await Conn.connect(Conn.url(server), protocols: ["other"], configuration: Conn.client { $0.deflate = nil })
        #expect(ws2.protocol == "")
        #expect(ws2.extensions == "")
        let sws2 = try await sockets.socket(1).ws
        #expect(sws2.protocol == "" && sws2.extensions == "")
        try await Conn.withTimeout(seconds: 5) { try await ws2.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// bufferedAmount counts the UTF-8/binary bytes of queued messages and returns to 0
    /// once they reach the socket.
    @Test func bufferedAmountGrowsThenReturnsToZero() async throws {
        let server = try await WebSocketServer.conn()
        _ = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client { $0.deflate = nil })
        #expect(ws.bufferedAmount == 0)
        let big = Conn.bytes(300_000)
        let text = String(repeating: "é", count: 1000)  // 2,000 UTF-8 bytes
        // On the event loop nothing reaches the socket until the loop turns, so the
        // amounts are exact.
        let amounts = try await ws.eventLoop.submit { () -> [Int] in
            var seen = [ws.bufferedAmount]
            try ws.sendNow(big)
            seen.append(ws.bufferedAmount)
            try ws.sendNow(text)
            seen.append(ws.bufferedAmount)
            return seen
        }.get()
        #expect(amounts == [0, 300_000, 302_000])
        #expect(await Conn.waitUntil(seconds: 5) { ws.bufferedAmount == 0 }, "bufferedAmount stuck at \(ws.bufferedAmount)")
        #expect(try await ws.nextMessage() == .binary(big))
        #expect(try await ws.nextMessage() == .text(text))
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }
}
