import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

/// How a callback sender's overflow is handled, and the close code expected.
struct ConnOverflowCase: Sendable, CustomTestStringConvertible {
    var policy: OverflowPolicy
    var code: UInt16
    var testDescription: String { "\(policy) → \(code)" }
}

@Suite struct LimitsAndTimeoutsTests {
    // MARK: Message and frame size limits

    /// The server's maxMessageSize: exactly the limit passes, one byte more closes with
    /// 1009; with deflate the limit applies to the inflated size.
    @Test(arguments: [false, true])
    func messageOverServerMaxMessageSize(deflate: Bool) async throws {
        let server = try await WebSocketServer.conn { $0.connection.maxMessageSize = 1000 }
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client { if !deflate { $0.deflate = nil } })
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        #expect(ws.extensions.hasPrefix("permessage-deflate") == deflate)
        let exact = String(repeating: "z", count: 1000)  // compresses to a few bytes
        try ws.sendNow(exact)
        _ = try await events.waitMessages(1)
        #expect(events.messages == [.text(exact)])
        try ws.sendNow(exact + "z")
        let close = try await events.waitClose()
        #expect(close.code == 1009, "client saw \(close.code)")
        let serverEvents = try await sockets.socket().events
        let theirs = try await serverEvents.waitClose()
        #expect(theirs.code == 1009 && !theirs.wasClean)
        if case .protocolViolation(let e)? = serverEvents.errors.first {
            #expect(e == .messageTooBig)
        } else {
            Issue.record("expected protocolViolation(messageTooBig), got \(serverEvents.errors)")
        }
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A 1 MiB message to a server whose limit is 64 KiB: the server refuses at the frame
    /// header, with most of the payload still unread; the client must still get the 1009.
    @Test func largeMessageOverServerLimitStillReports1009() async throws {
        let server = try await WebSocketServer.conn { $0.connection.maxMessageSize = 64 << 10 }
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client { $0.deflate = nil })
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        try ws.sendNow(Conn.bytes(1 << 20))
        let close = try await events.waitClose()
        #expect(close.code == 1009, "client saw \(close.code) wasClean=\(close.wasClean) errors=\(events.errors)")
        #expect(try await sockets.socket().events.waitClose().code == 1009)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The client's maxMessageSize, with the message in one frame and in fragments.
    @Test(arguments: [1 << 20, 300])
    func messageOverClientMaxMessageSize(serverFragmentSize: Int) async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.fragmentSize = serverFragmentSize
            $0.deflate.enabled = false
        }
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client { $0.connection.maxMessageSize = 1000 })
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        try ws.sendNow(Conn.bytes(1000))
        _ = try await events.waitMessages(1)
        try ws.sendNow(Conn.bytes(1001))
        let close = try await events.waitClose()
        #expect(close.code == 1009 && !close.wasClean)
        #expect(events.messages.count == 1)
        if case .protocolViolation(let e)? = events.errors.first {
            #expect(e == .messageTooBig)
        } else {
            Issue.record("expected protocolViolation(messageTooBig), got \(events.errors)")
        }
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1009, "the server should receive the client's 1009 close frame")
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A frame header announcing more than maxFrameSize (or a message over maxMessageSize)
    /// is refused with 1009 before any payload is sent.
    @Test func frameOverMaxFrameSizeRefusedBeforePayload() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.maxFrameSize = 1 << 20
            $0.connection.maxMessageSize = 4 << 20
        }
        let sockets = ConnServerSockets(server)
        let header = { (opcode: UInt8, fin: Bool, length: UInt64) in
            RawWS.frame(opcode, [], fin: fin, length: length)  // header and mask only
        }

        // One frame of 2 MiB (over the frame limit, under the message limit).
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(header(RawWS.binary, true, 2 << 20))
        let close = try await raw.readFrame(seconds: 3)
        #expect(close.opcode == RawWS.close && close.closeCode == 1009, "\(close)")
        #expect(await raw.waitEOF())
        let theirs = try await sockets.socket(0).events.waitClose()
        #expect(theirs.code == 1009 && !theirs.wasClean)

        // Exactly maxFrameSize is fine (its payload is then sent).
        let raw2 = try await RawPeer.upgraded(port: server.port)
        try await raw2.send(RawWS.frame(RawWS.binary, Conn.bytes(1 << 20)))
        let echo = try await raw2.readFrame(seconds: 10)
        #expect(echo.opcode == RawWS.binary && echo.payload.count == 1 << 20)

        // Fragments of 1 MiB: the fifth pushes the message over 4 MiB, refused at its header.
        let raw3 = try await RawPeer.upgraded(port: server.port)
        let mib = Conn.bytes(1 << 20)
        try await raw3.send(RawWS.frame(RawWS.binary, mib, fin: false))
        for _ in 0..<3 { try await raw3.send(RawWS.frame(RawWS.continuation, mib, fin: false)) }
        try await raw3.send(header(RawWS.continuation, true, 1))
        let close3 = try await raw3.readFrame(seconds: 5)
        #expect(close3.opcode == RawWS.close && close3.closeCode == 1009, "\(close3)")
        #expect(await raw3.waitEOF())
        await raw.close()
        await raw2.close()
        await raw3.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The client applies maxFrameSize too: a raw server announcing a 2 MiB frame gets a
    /// masked 1009 close frame back at once.
    @Test func clientRefusesFrameOverMaxFrameSize() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client { $0.connection.maxFrameSize = 1 << 20 })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        try await peer.send(RawWS.frame(RawWS.binary, [], mask: nil, length: 2 << 20))
        let close = try await peer.readFrame(seconds: 3)
        #expect(close.opcode == RawWS.close && close.closeCode == 1009 && close.masked, "\(close)")
        let event = try await events.waitClose()
        #expect(event.code == 1009 && !event.wasClean)
        await rawServer.close()
    }

    // MARK: Keepalive ping timeout

    /// A raw peer that reads but never answers pings: after pingTimeout the server closes
    /// with 1011 and drops TCP.
    @Test func pingTimeoutClosesServerSide() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.pingInterval = .milliseconds(50)
            $0.connection.pingTimeout = .milliseconds(150)
        }
        let sockets = ConnServerSockets(server)
        let start = ContinuousClock.now  // before the server-side connection exists
        let raw = try await RawPeer.upgraded(port: server.port)
        let (close, skipped) = try await raw.readFrame(opcode: RawWS.close, seconds: 5)
        let elapsed = Conn.elapsed(since: start)
        #expect(close.closeCode == 1011, "\(close)")
        #expect(!skipped.isEmpty && skipped.allSatisfy { $0.opcode == RawWS.ping && !$0.masked }, "\(skipped)")
        #expect(elapsed >= 0.19, "closed \(elapsed) s after connecting, before pingInterval + pingTimeout (0.2 s)")
        #expect(await raw.waitEOF())
        let events = try await sockets.socket().events
        let event = try await events.waitClose()
        #expect(event.code == 1011 && !event.wasClean)
        if case .timeout? = events.errors.first {} else { Issue.record("expected timeout, got \(events.errors)") }
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func pingTimeoutClosesClientSide() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client {
            $0.connection.pingInterval = .milliseconds(50)
            $0.connection.pingTimeout = .milliseconds(150)
        })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        let (close, skipped) = try await peer.readFrame(opcode: RawWS.close, seconds: 5)
        #expect(close.masked && close.closeCode == 1011, "\(close)")
        #expect(!skipped.isEmpty && skipped.allSatisfy { $0.opcode == RawWS.ping && $0.masked }, "\(skipped)")
        let event = try await events.waitClose()
        #expect(event.code == 1011 && !event.wasClean)
        if case .timeout? = events.errors.first {} else { Issue.record("expected timeout, got \(events.errors)") }
        #expect(await peer.waitEOF())
        await rawServer.close()
    }

    /// Pongs that do not echo the ping's payload do not count: the ping still times out.
    @Test func pongWithWrongPayloadDoesNotAnswerPing() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.pingInterval = .milliseconds(50)
            $0.connection.pingTimeout = .milliseconds(200)
        }
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        var close: RawFrame?
        let deadline = ContinuousClock.now + .seconds(5)
        while close == nil && ContinuousClock.now < deadline {
            guard let f = try? await raw.readFrame() else { break }
            if f.opcode == RawWS.ping {
                try? await raw.send(RawWS.frame(RawWS.pong, f.payload + [0x21]))
            } else if f.opcode == RawWS.close {
                close = f
            }
        }
        #expect(close?.closeCode == 1011, "\(String(describing: close))")
        #expect(try await sockets.socket().events.waitClose().code == 1011)
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Idle timeout

    /// idleTimeout: traffic keeps the connection open; silence closes it with 1001.
    @Test func idleTimeoutServerSide() async throws {
        // Own event loop, and the client's traffic driven by a timer on it: the test does
        // not depend on how busy the shared loops and the cooperative pool are.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await WebSocketServer.conn({
            $0.connection.idleTimeout = .milliseconds(600)
            $0.connection.pingInterval = nil
        }, group: group)
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client { $0.connection.pingInterval = nil },
                           eventLoopGroup: group)
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        let ticks = NIOLockedValueBox<(count: Int, last: NIODeadline, closedAt: Int?)>((0, .now(), nil))
        let ticker = ws.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(100)) { task in
            let n = ticks.withLockedValue { t -> Int in
                if ws.readyState != .open && t.closedAt == nil { t.closedAt = t.count }
                return t.count
            }
            if n == 10 { return task.cancel() }  // 1 s of traffic, every 100 ms
            try? ws.sendNow("tick \(n)")
            ticks.withLockedValue { $0.count += 1; $0.last = .now() }
        }
        #expect(await Conn.waitUntil(seconds: 5) { ticks.withLockedValue { $0.count } == 10 })
        let close = try await events.waitClose(seconds: 5)
        let (closedAt, lastTick) = ticks.withLockedValue { ($0.closedAt, $0.last) }
        let quiet = Double((NIODeadline.now() - lastTick).nanoseconds) / 1e9
        #expect(closedAt == nil, "closed after tick \(closedAt ?? -1) although the client kept sending")
        #expect(close.code == 1001 && close.reason == "idle timeout" && close.wasClean, "\(close)")
        #expect(quiet >= 0.55 && quiet < 3, "idle close \(quiet) s after the last message; idleTimeout is 0.6 s")
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1001 && theirs.wasClean)
        ticker.cancel()
        await server.shutdown(deadline: .milliseconds(300))
        try await group.shutdownGracefully()
    }

    @Test func idleTimeoutClientSide() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server)
        let start = ContinuousClock.now
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client {
            $0.connection.idleTimeout = .milliseconds(200)
            $0.connection.pingInterval = nil
        })
        let events = ConnRecorder()
        events.attach(ws)
        let close = try await events.waitClose(seconds: 5)
        let elapsed = Conn.elapsed(since: start)
        let server0 = try await sockets.socket().events
        let theirs = try await server0.waitClose()
        let diagnostics = "client: \(events.lines) \(events.errors); server: \(server0.lines) \(server0.errors)"
        #expect(elapsed >= 0.2, "\(diagnostics)")
        #expect(close.code == 1001 && close.wasClean, "\(close) \(diagnostics)")
        #expect(theirs.code == 1001 && theirs.reason == "idle timeout" && theirs.wasClean, "\(theirs)")
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Close timeout

    /// The server closes; the raw peer never answers its close frame: after closeTimeout
    /// the server drops TCP and reports 1006.
    @Test func closeTimeoutServerSide() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.closeTimeout = .milliseconds(200)
            $0.connection.pingInterval = nil
        }
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        let (sws, events, _) = try await sockets.socket()
        let start = ContinuousClock.now
        try sws.closeNow(code: 1000, reason: "bye")
        let frame = try await raw.readFrame()
        #expect(frame.opcode == RawWS.close && frame.closeCode == 1000)
        #expect(await raw.waitEOF(seconds: 5))
        let elapsed = Conn.elapsed(since: start)
        #expect(elapsed >= 0.18 && elapsed < 3, "dropped after \(elapsed) s")
        let event = try await events.waitClose()
        #expect(event.code == 1006 && !event.wasClean)
        if case .timeout? = events.errors.first {} else { Issue.record("expected timeout, got \(events.errors)") }
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func closeTimeoutClientSide() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client {
            $0.connection.closeTimeout = .milliseconds(200)
            $0.connection.pingInterval = nil
        })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        let start = ContinuousClock.now
        try ws.closeNow(code: 1000)
        let frame = try await peer.readFrame()
        #expect(frame.opcode == RawWS.close && frame.closeCode == 1000)
        let event = try await events.waitClose()
        let elapsed = Conn.elapsed(since: start)
        #expect(event.code == 1006 && !event.wasClean)
        #expect(elapsed >= 0.18 && elapsed < 3, "dropped after \(elapsed) s")
        #expect(await peer.waitEOF())
        await rawServer.close()
    }

    /// The server answers the close frame but never closes TCP: the client closes it
    /// after closeTimeout, and the close is still clean.
    @Test func closeTimeoutClientSideAfterHandshake() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client {
            $0.connection.closeTimeout = .milliseconds(800)
            $0.connection.pingInterval = nil
        })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        try ws.closeNow(code: 3000)
        _ = try await peer.readFrame()
        try await peer.send(RawWS.frame(RawWS.close, RawWS.closePayload(3000), mask: nil))
        let answered = ContinuousClock.now
        await Conn.sleep(ms: 100)
        #expect(!peer.eof, "the client should wait for the server to close TCP first")
        #expect(await peer.waitEOF(seconds: 3), "the client should drop TCP after closeTimeout")
        #expect(Conn.elapsed(since: answered) < 2)
        let event = try await events.waitClose()
        #expect(event.code == 3000 && event.wasClean)
        await rawServer.close()
    }

    // MARK: Handshake timeout

    /// Slowloris: request bytes trickling in, a half request, nothing at all: all dropped
    /// after handshakeTimeout; a normal client connects and outlives the timeout.
    @Test func handshakeTimeoutDropsSlowClients() async throws {
        let server = try await WebSocketServer.conn {
            $0.handshakeTimeout = .milliseconds(500)
            $0.connection.pingInterval = nil
        }
        _ = ConnServerSockets(server)
        let start = ContinuousClock.now

        let slow = try await RawPeer.connect(port: server.port)
        let request = RawWS.upgradeRequest(port: server.port)
        let trickle = Task {
            for byte in request {
                if slow.eof { return }
                try? await slow.send([byte])
                await Conn.sleep(ms: 40)
            }
        }
        let half = try await RawPeer.connect(port: server.port)
        try await half.send(Array(request[0..<(request.count / 2)]))
        let silent = try await RawPeer.connect(port: server.port)

        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client { $0.connection.pingInterval = nil })

        for (name, peer) in [("trickling", slow), ("half request", half), ("silent", silent)] {
            #expect(await peer.waitEOF(seconds: 3), "\(name) client not dropped")
            let elapsed = Conn.elapsed(since: start)
            #expect(elapsed >= 0.45, "\(name) dropped after \(elapsed) s")
            #expect(!String(decoding: peer.unread, as: UTF8.self).contains("101"), "\(name) got upgraded")
        }
        trickle.cancel()

        await Conn.sleep(ms: 600)  // well past the handshake timeout
        #expect(ws.readyState == .open, "an upgraded connection must not be dropped by the handshake timer")
        try await ws.send(.text("alive"))
        #expect(try await ws.nextMessage() == .text("alive"))
        try await Conn.withTimeout(seconds: 5) { try await ws.close() }
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Connect timeout

    /// A server that accepts TCP but never answers the upgrade: the client gives up after
    /// connectTimeout with error + close 1006 and drops the TCP connection.
    @Test func connectTimeoutAgainstSilentServer() async throws {
        let rawServer = try await RawServer.listen()
        let start = ContinuousClock.now
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client { $0.connectTimeout = .milliseconds(300) })
        let events = ConnRecorder()
        events.attach(ws)
        let close = try await events.waitClose(seconds: 5)
        let elapsed = Conn.elapsed(since: start)
        #expect(close.code == 1006 && !close.wasClean)
        #expect(elapsed >= 0.25 && elapsed < 3, "gave up after \(elapsed) s")
        #expect(events.lines == ["error", "close[3] 1006 false"])
        // The upgrade timed out (`.timeout`); on a loaded machine the TCP connect itself may
        // already take longer than 300 ms (`.connectFailed("Connect timeout")`).
        let isConnectTimeout = { (e: WebSocketError?) -> Bool in
            switch e {
            case .timeout?: true
            case .connectFailed(let why)?: why.lowercased().contains("timeout")
            default: false
            }
        }
        #expect(isConnectTimeout(events.errors.first), "expected a timeout, got \(events.errors)")
        if case .timeout? = events.errors.first {
            #expect(try await rawServer.peer().waitEOF(), "the client should drop the TCP connection")
        }

        // The async API throws.
        let asyncStart = ContinuousClock.now
        do {
            _ = try await Conn.connect(Conn.url(rawServer), configuration: Conn.client { $0.connectTimeout = .milliseconds(300) })
            Issue.record("connect succeeded against a silent server")
        } catch let error as WebSocketError {
            #expect(isConnectTimeout(error), "expected a timeout, got \(error)")
        }
        #expect(Conn.elapsed(since: asyncStart) < 3)
        await rawServer.close()
    }

    // MARK: Backpressure

    /// A raw peer that never reads: the server-side async sender suspends once the kernel
    /// buffers and highWaterMark are full; bufferedAmount stays bounded; reading again
    /// lets it finish.
    @Test func asyncSendSuspendsWhilePeerDoesNotRead() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.highWaterMark = 64 << 10
            $0.connection.lowWaterMark = 16 << 10
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let sws = try await sockets.socket().ws
        let chunk = Message.binary(Conn.bytes(16 << 10))
        let total = 1500  // 24 MiB: far more than loopback buffers hold
        let sent = NIOLockedValueBox(0)
        let maxBuffered = NIOLockedValueBox(0)
        let sender = Task {
            for _ in 0..<total {
                try await sws.send(chunk)
                sent.withLockedValue { $0 += 1 }
                let b = sws.bufferedAmount
                maxBuffered.withLockedValue { $0 = max($0, b) }
            }
        }
        // Wait until the sender makes no progress for 300 ms.
        var last = -1
        var stalled = false
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            await Conn.sleep(ms: 300)
            let now = sent.withLockedValue { $0 }
            if now == last { stalled = true; break }
            last = now
        }
        let sentWhileStalled = sent.withLockedValue { $0 }
        #expect(stalled && sentWhileStalled < total, "the async sender never suspended (\(sentWhileStalled) sent)")
        #expect(sws.bufferedAmount <= (64 << 10) + (16 << 10), "bufferedAmount \(sws.bufferedAmount)")
        #expect(maxBuffered.withLockedValue { $0 } <= (64 << 10) + (16 << 10))
        #expect(sws.readyState == .open)

        try await raw.setReading(true)
        try await Conn.withTimeout(seconds: 30, "sender to finish") { try await sender.value }
        #expect(sent.withLockedValue { $0 } == total)
        let expectedBytes = total * ((16 << 10) + 4)  // 4-byte header each
        #expect(await Conn.waitUntil(seconds: 20) { raw.receivedCount >= expectedBytes }, "received \(raw.receivedCount)")
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A sender suspended on backpressure is released (with an error) when the connection drops.
    @Test func suspendedSenderReleasedWhenConnectionDrops() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.highWaterMark = 64 << 10
            $0.connection.lowWaterMark = 16 << 10
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let sws = try await sockets.socket().ws
        let chunk = Message.binary(Conn.bytes(64 << 10))
        let sender = Task { () -> Int in
            var n = 0
            do {
                for _ in 0..<1000 {
                    try await sws.send(chunk)
                    n += 1
                }
            } catch {}
            return n
        }
        var last = -1
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {  // until the kernel buffers are full and the sender waits
            await Conn.sleep(ms: 300)
            let b = sws.bufferedAmount
            if b == last && b > (16 << 10) { break }
            last = b
        }
        await raw.close()  // RST/FIN with unread data
        let n = try await Conn.withTimeout(seconds: 5, "suspended sender to be released") { await sender.value }
        #expect(n < 1000)
        let event = try await sockets.socket().events.waitClose()
        #expect(event.code == 1006 && !event.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A callback sender over maxBufferedBytes: the connection closes with the policy's
    /// code (1008 or 1013); `.unbounded` keeps queueing.
    @Test(arguments: [
        ConnOverflowCase(policy: .closePolicyViolation, code: 1008),
        ConnOverflowCase(policy: .closeTryAgainLater, code: 1013),
    ])
    func callbackSenderOverflowCloses(_ overflow: ConnOverflowCase) async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.maxBufferedBytes = 256 << 10
            $0.connection.overflowPolicy = overflow.policy
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let (sws, events, _) = try await sockets.socket()
        let chunk = Conn.bytes(64 << 10)
        var sent = 0
        while sws.readyState == .open && sent < 2000 {  // at most 128 MiB
            try sws.sendNow(chunk)
            sent += 1
            if sent % 16 == 0 { await Conn.sleep(ms: 5) }
        }
        let event = try await events.waitClose()
        #expect(event.code == overflow.code && !event.wasClean, "\(event) after \(sent) messages")
        if case .bufferOverflow(let n)? = events.errors.first {
            #expect(n > 256 << 10)
        } else {
            Issue.record("expected bufferOverflow, got \(events.errors)")
        }
        try await raw.setReading(true)
        #expect(await raw.waitEOF(), "the raw peer should see the connection end")
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func callbackSenderUnboundedKeepsQueueing() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.maxBufferedBytes = 256 << 10
            $0.connection.overflowPolicy = .unbounded
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let (sws, events, _) = try await sockets.socket()
        let chunk = Conn.bytes(64 << 10)
        for _ in 0..<256 { try sws.sendNow(chunk) }  // 16 MiB
        await Conn.sleep(ms: 300)
        #expect(sws.readyState == .open)
        #expect(events.errors.isEmpty)
        #expect(sws.bufferedAmount > 256 << 10, "bufferedAmount \(sws.bufferedAmount)")
        try await raw.setReading(true)
        #expect(await Conn.waitUntil(seconds: 20) { sws.bufferedAmount == 0 }, "bufferedAmount \(sws.bufferedAmount)")
        #expect(await Conn.waitUntil(seconds: 20) { raw.receivedCount >= 256 * ((64 << 10) + 10) })
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }
}
