import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

/// A protocol violation a raw client commits, and the close code the server must answer with.
struct ConnViolation: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var code: UInt16
    var testDescription: String { "\(name) → \(code)" }

    static let all: [ConnViolation] = [
        .init(name: "unmasked text frame", bytes: RawWS.frame(RawWS.text, "hi", mask: nil), code: 1002),
        .init(name: "reserved data opcode 0x3", bytes: RawWS.frame(0x3, "x"), code: 1002),
        .init(name: "reserved control opcode 0xB", bytes: RawWS.frame(0xB, "x"), code: 1002),
        .init(name: "RSV1 without extension", bytes: RawWS.frame(RawWS.text, Array("x".utf8), rsv: 0x40), code: 1002),
        .init(name: "RSV2", bytes: RawWS.frame(RawWS.binary, [1], rsv: 0x20), code: 1002),
        .init(name: "RSV3", bytes: RawWS.frame(RawWS.binary, [1], rsv: 0x10), code: 1002),
        .init(name: "invalid UTF-8 text", bytes: RawWS.frame(RawWS.text, [0x61, 0xC3, 0x28]), code: 1007),
        .init(name: "UTF-8 surrogate in text", bytes: RawWS.frame(RawWS.text, [0xED, 0xA0, 0x80]), code: 1007),
        .init(name: "invalid UTF-8 in a first fragment (fail fast)", bytes: RawWS.frame(RawWS.text, [0x61, 0xFF], fin: false), code: 1007),
        .init(name: "truncated UTF-8 at message end", bytes: RawWS.frame(RawWS.text, [0x61, 0xE2, 0x82]), code: 1007),
        .init(name: "fragmented ping", bytes: RawWS.frame(RawWS.ping, [1], fin: false), code: 1002),
        .init(name: "ping payload of 126 bytes", bytes: RawWS.frame(RawWS.ping, [UInt8](repeating: 7, count: 126)), code: 1002),
        .init(name: "continuation without a message", bytes: RawWS.frame(RawWS.continuation, [1]), code: 1002),
        .init(name: "new message inside a fragmented one",
              bytes: RawWS.frame(RawWS.text, "a", fin: false) + RawWS.frame(RawWS.text, "b"), code: 1002),
        .init(name: "non-minimal 16-bit length",
              bytes: [0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 5), code: 1002),
        .init(name: "close with a 1-byte body", bytes: RawWS.frame(RawWS.close, [3]), code: 1002),
        .init(name: "close code 999", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(999)), code: 1002),
        .init(name: "close code 1004", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1004)), code: 1002),
        .init(name: "close code 1005", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1005)), code: 1002),
        .init(name: "close code 1006", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1006)), code: 1002),
        .init(name: "close code 1015", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1015)), code: 1002),
        .init(name: "close code 1016", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1016)), code: 1002),
        .init(name: "close code 2999", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(2999)), code: 1002),
        .init(name: "close code 5000", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(5000)), code: 1002),
        .init(name: "close reason not UTF-8", bytes: RawWS.frame(RawWS.close, RawWS.closePayload(1000) + [0xFF]), code: 1007),
    ]
}

@Suite struct ClosingTests {
    // MARK: Browser semantics: readyState and events

    @Test func readyStateTransitionsAndEventOrder() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        // CONNECTING until the handshake is done; on a busy machine the event loop can
        // finish it before this line, and the handlers set below still get every event.
        #expect([.connecting, .open].contains(ws.readyState))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        #expect(ws.readyState == .open)
        try ws.sendNow("one")
        try ws.sendNow([2])
        _ = try await events.waitMessages(2)
        // On the event loop the close frame cannot have gone out yet: CLOSING is observable.
        let stateAfterClose = try await ws.eventLoop.submit { () -> WebSocket.ReadyState in
            try ws.closeNow(code: 1000, reason: "done")
            return ws.readyState
        }.get()
        #expect(stateAfterClose == .closing)
        let close = try await events.waitClose()
        #expect(ws.readyState == .closed)
        #expect(close.code == 1000 && close.wasClean)
        await Conn.sleep(ms: 150)  // nothing may follow onclose
        #expect(events.lines == ["open[1] ", "message text(one)", "message binary(1 B)", "close[3] 1000 true"])
        let server1 = try await sockets.socket().events.waitClose()
        #expect(server1.code == 1000 && server1.reason == "done" && server1.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A connection that cannot be established: error, then close 1006 exactly once,
    /// never open. WHATWG: readyState is CLOSED when the error event fires.
    @Test func connectFailureFiresErrorThenCloseOnce() async throws {
        let refusing = try ConnRefusingPort()  // bound, not listening: connections are refused
        let port = refusing.port
        let ws = WebSocket(url: "ws://127.0.0.1:\(port)/")
        let events = ConnRecorder()
        events.attach(ws)
        let close = try await events.waitClose()
        await Conn.sleep(ms: 150)
        #expect(close.code == 1006 && !close.wasClean)
        #expect(events.opens == 0)
        #expect(events.closes.count == 1)
        #expect(events.lines == ["error", "close[3] 1006 false"])
        #expect(ws.readyState == .closed)
        // WHATWG "the WebSocket connection is closed": readyState becomes CLOSED, then
        // error fires, then close.
        #expect(events.errorReadyStates == [WebSocket.ReadyState.closed.rawValue], "readyState inside onerror")
        await #expect(throws: WebSocketError.self) {
            _ = try await Conn.connect("ws://127.0.0.1:\(port)/")
        }
        withExtendedLifetime(refusing) {}
    }

    @Test func closeRejectsInvalidCodesAndLongReasons() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server))
        for code: UInt16 in [0, 999, 1001, 1002, 1005, 1006, 1015, 2000, 2999, 5000, 65535] {
            let error = #expect(throws: WebSocketError.self, "code \(code)") { try ws.closeNow(code: code) }
            if case .invalidAccess? = error {} else { Issue.record("code \(code): expected invalidAccess, got \(String(describing: error))") }
        }
        let tooLong = String(repeating: "é", count: 62)  // 124 bytes
        let error = #expect(throws: WebSocketError.self) { try ws.closeNow(code: 1000, reason: tooLong) }
        if case .syntax? = error {} else { Issue.record("expected syntax, got \(String(describing: error))") }
        #expect(throws: WebSocketError.self) { try ws.closeNow(code: 1000, reason: String(repeating: "a", count: 124)) }
        #expect(ws.readyState == .open, "rejected close calls must not start closing")
        try await ws.send(.text("still open"))
        #expect(try await ws.nextMessage() == .text("still open"))

        // 123 bytes exactly is allowed and reaches the peer.
        let longest = String(repeating: "é", count: 61) + "a"
        try ws.closeNow(code: 1000, reason: longest)
        try await ws.closedWithin()
        let seen = try await sockets.socket().events.waitClose()
        #expect(seen.code == 1000 && seen.reason == longest && seen.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test(arguments: [UInt16(1000), 3000, 4999])
    func closeAcceptsValidCodes(code: UInt16) async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        try ws.closeNow(code: code, reason: "r\(code)")
        let mine = try await events.waitClose()
        #expect(mine.code == code && mine.wasClean)
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == code && theirs.reason == "r\(code)" && theirs.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// WHATWG: send() after close() does not throw; the data is dropped but counted in bufferedAmount.
    @Test func sendAfterCloseIsDroppedButCounted() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server))
        try ws.closeNow(code: 1000)
        try ws.sendNow("late")
        try ws.sendNow([1, 2, 3])
        #expect(ws.bufferedAmount >= 7)
        try await ws.closedWithin()
        try ws.sendNow("later")
        #expect(ws.bufferedAmount >= 12)
        let serverSide = try await sockets.socket().events
        _ = try await serverSide.waitClose()
        #expect(serverSide.messages.isEmpty, "nothing may be sent after the close frame")
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Closing handshakes

    @Test func clientInitiatedClose() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        try ws.closeNow(code: 3001, reason: "client bye")
        let mine = try await events.waitClose()
        #expect(mine.code == 3001 && mine.wasClean)
        let (sws, serverEvents, _) = try await sockets.socket()
        let theirs = try await serverEvents.waitClose()
        #expect(theirs.code == 3001 && theirs.reason == "client bye" && theirs.wasClean)
        #expect(serverEvents.errors.isEmpty && events.errors.isEmpty)
        #expect(sws.readyState == .closed && ws.readyState == .closed)
        #expect(await Conn.waitUntil(seconds: 2) { server.connectionCount == 0 })
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func serverInitiatedClose() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        let (sws, serverEvents, _) = try await sockets.socket()
        await events.expectOpen()
        let state = try await sws.eventLoop.submit { () -> WebSocket.ReadyState in
            try sws.closeNow(code: 4000, reason: "server bye")
            return sws.readyState
        }.get()
        #expect(state == .closing)
        let mine = try await events.waitClose()
        #expect(mine.code == 4000 && mine.reason == "server bye" && mine.wasClean)
        let theirs = try await serverEvents.waitClose()
        #expect(theirs.code == 4000 && theirs.wasClean)
        #expect(serverEvents.errors.isEmpty && events.errors.isEmpty)
        #expect(events.lines.last == "close[3] 4000 true")
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The async reader's sequence ends without error at a clean close by the server.
    @Test func asyncMessagesEndAtCleanServerClose() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server))
        let sws = try await sockets.socket().ws
        try sws.sendNow("last words")
        try sws.closeNow(code: 1000)
        #expect(try await ws.nextMessage() == .text("last words"))
        #expect(try await ws.nextMessage() == nil)
        #expect(ws.readyState == .closed)
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func closeWithoutCodeIsSeenAs1005() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        // Client closes without a code.
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        try ws.closeNow()
        #expect(try await sockets.socket(0).events.waitClose().code == 1005)
        let mine = try await events.waitClose()
        #expect(mine.code == 1005 && mine.wasClean)

        // Server closes without a code.
        let ws2 = WebSocket(url: Conn.url(server))
        let events2 = ConnRecorder()
        events2.attach(ws2)
        let sws2 = try await sockets.socket(1).ws
        await events2.expectOpen()
        try sws2.closeNow()
        let seen = try await events2.waitClose()
        #expect(seen.code == 1005 && seen.reason == "" && seen.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// On the wire: a close without a code is an empty close frame, and the client waits
    /// for the server to close TCP (RFC 6455 §7.1.1) rather than closing it first.
    @Test func clientSendsEmptyCloseFrameAndLetsServerCloseTCP() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer), configuration: Conn.client { $0.connection.closeTimeout = .seconds(5) })
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        try ws.closeNow()
        let frame = try await peer.readFrame()
        #expect(frame.opcode == RawWS.close && frame.masked && frame.payload.isEmpty, "\(frame)")
        try await peer.send(RawWS.frame(RawWS.close, [], mask: nil))
        await Conn.sleep(ms: 300)
        #expect(!peer.eof, "the client closed TCP before the server did")
        #expect(events.closes.isEmpty)
        await peer.close()
        let close = try await events.waitClose()
        #expect(close.code == 1005 && close.wasClean)
        await rawServer.close()
    }

    /// After the closing handshake the server closes TCP at once: the raw client sees the
    /// echoed close frame, then EOF, and nothing else.
    @Test func serverClosesTCPRightAfterCloseFrame() async throws {
        let server = try await WebSocketServer.conn()  // closeTimeout stays 10 s: no timer involved
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        let start = ContinuousClock.now
        try await raw.send(RawWS.frame(RawWS.close, RawWS.closePayload(1000, "bye")))
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.close && echo.closeCode == 1000 && !echo.masked, "\(echo)")
        #expect(await raw.waitEOF(seconds: 2))
        #expect(Conn.elapsed(since: start) < 2)
        #expect(raw.unread.isEmpty, "bytes after the close frame: \(raw.unread)")
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1000 && theirs.reason == "bye" && theirs.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Valid codes are echoed back.
    @Test(arguments: [UInt16(1000), 1001, 1003, 1007, 1011, 1014, 3000, 4999])
    func serverEchoesValidCloseCode(code: UInt16) async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.close, RawWS.closePayload(code, "why")))
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.close && echo.closeCode == code, "\(echo)")
        #expect(await raw.waitEOF())
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == code && theirs.reason == "why" && theirs.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Data after the peer's close frame is ignored, and the server sends nothing after its own.
    @Test func nothingAfterCloseFrames() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.close, RawWS.closePayload(1000)) + RawWS.frame(RawWS.text, "ignored"))
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.close)
        #expect(await raw.waitEOF())
        #expect(raw.unread.isEmpty)
        _ = try await sockets.socket(0).events.waitClose()
        #expect(try await sockets.socket(0).events.messages.isEmpty)

        // Server side: close, then send.
        let raw2 = try await RawPeer.upgraded(port: server.port)
        let sws = try await sockets.socket(1).ws
        try sws.closeNow(code: 1000)
        try sws.sendNow("after close")
        let first = try await raw2.readFrame()
        #expect(first.opcode == RawWS.close && first.closeCode == 1000, "\(first)")
        await Conn.sleep(ms: 100)
        #expect(raw2.unread.isEmpty, "data frame after the close frame")
        await raw2.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The async reader's sequence throws when the connection drops without a closing handshake.
    @Test func asyncMessagesThrowOnAbruptDrop() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = try await Conn.connect(Conn.url(server))
        let sws = try await sockets.socket().ws
        try sws.sendNow("before the drop")
        #expect(try await ws.nextMessage() == .text("before the drop"))
        sws.abort()
        await #expect(throws: WebSocketError.self) { _ = try await ws.nextMessage() }
        #expect(ws.readyState == .closed)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// An async reader that stopped consuming (`for try await ... { break }`) and then
    /// closes: the closing handshake must still complete (RFC 6455 §1.4, §7.1.2: after
    /// sending a close frame the endpoint keeps reading until the peer's close frame),
    /// instead of the unread messages blocking the echo until closeTimeout.
    @Test func closeAfterAsyncReaderStoppedReading() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client {
            $0.connection.inboundMessageQueue = 8
            $0.connection.closeTimeout = .seconds(3)
            $0.connection.pingInterval = nil
            $0.deflate = nil
        })
        let sws = try await sockets.socket().ws
        let chunk = Conn.bytes(16 << 10)
        for _ in 0..<400 { try sws.sendNow(chunk) }  // 6.4 MiB: the client's queue fills and it stops reading
        #expect(try await ws.nextMessage() == .binary(chunk))
        await Conn.sleep(ms: 300)
        let start = ContinuousClock.now
        let events = ConnRecorder()
        events.attach(ws)  // onclose (messages still go to the async queue)
        try ws.closeNow(code: 1000, reason: "enough")
        let close = try await events.waitClose(seconds: 10)
        let elapsed = Conn.elapsed(since: start)
        #expect(elapsed < 2, "close took \(elapsed) s (closeTimeout is 3 s): the closing handshake did not complete")
        #expect(close.code == 1000 && close.wasClean, "\(close)")
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1000 && theirs.reason == "enough")
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Abrupt drops

    @Test func serverDropsTCP() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        let (sws, serverEvents, _) = try await sockets.socket()
        sws.abort()
        let mine = try await events.waitClose()
        #expect(mine.code == 1006 && !mine.wasClean)
        #expect(events.lines == ["open[1] ", "error", "close[3] 1006 false"])
        #expect(events.errorReadyStates == [WebSocket.ReadyState.closed.rawValue], "readyState inside onerror")
        let theirs = try await serverEvents.waitClose()
        #expect(theirs.code == 1006 && !theirs.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func clientDropsTCP() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        ws.abort()
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1006 && !theirs.wasClean)
        #expect(try await sockets.socket().events.lines == ["open[1] ", "error", "close[3] 1006 false"])
        let mine = try await events.waitClose()
        #expect(mine.code == 1006 && !mine.wasClean)
        #expect(events.errors.count == 1)
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func rawClientDropsTCP() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.text, "half a message", fin: false))
        await raw.close()
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1006 && !theirs.wasClean)
        #expect(try await sockets.socket().events.errors.count == 1)
        #expect(await Conn.waitUntil(seconds: 2) { server.connectionCount == 0 })
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func rawServerDropsTCP() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer))
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        await peer.close()
        let close = try await events.waitClose()
        #expect(close.code == 1006 && !close.wasClean)
        #expect(events.lines == ["open[1] ", "error", "close[3] 1006 false"])
        await rawServer.close()
    }

    /// Clients created by a thread that the scheduler keeps preempting (SCHED_IDLE next to
    /// a busy thread on the same core): every client that opened must stay open.
    ///
    /// Bug: `ClientConnector.start` starts the connect and only then registers its
    /// completion callback; when the calling thread is preempted in between, the
    /// event loop finishes TCP connect *and* the opening handshake first, the callback
    /// then runs late, sees `readyState != .connecting` (it is OPEN) and closes the
    /// channel of an open connection: onerror + onclose 1006 on both ends.
    @Test func clientsCreatedByPreemptedThreadStayOpen() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let url = Conn.url(server)
        // The creating thread runs at SCHED_IDLE on CPU 0 next to a spinner pinned there,
        // so it is preempted all the time; the other cores stay free for everything else.
        @Sendable func pinToCPU0() {
            // sched_setaffinity(0, ...) pins the calling thread (Linux; not in the Glibc module map).
            typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
            guard let sym = dlsym(nil, "sched_setaffinity") else { return }
            var mask = [UInt8](repeating: 0, count: 128)
            mask[0] = 1
            _ = unsafeBitCast(sym, to: SetAffinity.self)(0, mask.count, &mask)
        }
        let stop = NIOLockedValueBox(false)
        Thread.detachNewThread {
            pinToCPU0()
            while !stop.withLockedValue({ $0 }) {}
        }
        let clients = NIOLockedValueBox<[(WebSocket, ConnRecorder)]>([])
        let creating = NIOLockedValueBox(true)
        Thread.detachNewThread {
            pinToCPU0()
            var param = sched_param()
            _ = sched_setscheduler(0, 5 /* SCHED_IDLE */, &param)
            while creating.withLockedValue({ $0 }) && clients.withLockedValue({ $0.count }) < 200 {
                let ws = WebSocket(url: url, configuration: Conn.client { $0.connection.pingInterval = nil })
                let r = ConnRecorder()
                r.attach(ws)
                clients.withLockedValue { $0.append((ws, r)) }
            }
            creating.withLockedValue { $0 = false }
        }
        // Up to 1.5 s of creating (less once a drop shows up), then let everything settle.
        _ = await Conn.waitUntil(seconds: 1.5) {
            clients.withLockedValue { $0.contains { $0.0.readyState == .closed } } || !creating.withLockedValue { $0 }
        }
        creating.withLockedValue { $0 = false }
        stop.withLockedValue { $0 = true }
        let allSettled = await Conn.waitUntil(seconds: 10) {
            !creating.withLockedValue { $0 } && clients.withLockedValue { $0.allSatisfy { $0.0.readyState != .connecting } }
        }
        await Conn.sleep(ms: 300)
        let n = clients.withLockedValue { $0.count }
        #expect(allSettled)
        let all = clients.withLockedValue { $0 }
        let dropped = all.filter { $0.0.readyState != .open }.count
        // `extensions` is only set once the opening handshake completed.
        let droppedAfterOpen = all.filter { $0.0.readyState != .open && !$0.0.extensions.isEmpty }.count
        var serverSide: [String] = []
        for i in 0..<sockets.count { serverSide.append(try await sockets.socket(i).events.lines.joined(separator: ",")) }
        let serverDropped = serverSide.filter { $0.contains("1006") }
        #expect(dropped == 0, "\(dropped) of \(n) clients closed (\(droppedAfterOpen) after their handshake completed); server side of the first: \(serverDropped.first ?? "-")")
        #expect(n > 0 && sockets.count == n)
        for (ws, _) in all { try? ws.closeNow() }
        await server.shutdown(deadline: .seconds(2))
    }

    // MARK: Closing while connecting

    /// close() during CONNECTING fails the connection: readyState CLOSING at once, then
    /// error and close 1006; the TCP connection is dropped and onopen never fires.
    @Test func closeDuringConnecting() async throws {
        let rawServer = try await RawServer.listen()  // never answers the upgrade
        let ws = WebSocket(url: Conn.url(rawServer))
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.readHead()  // the request arrived; the client waits for the answer
        #expect(ws.readyState == .connecting)
        try ws.closeNow(code: 1000, reason: "never mind")
        #expect(ws.readyState == .closing || ws.readyState == .closed)
        let close = try await events.waitClose()
        #expect(close.code == 1006 && !close.wasClean)
        #expect(events.lines == ["error", "close[3] 1006 false"])
        #expect(await peer.waitEOF(), "the TCP connection should be dropped")
        // A late answer changes nothing.
        try? await peer.send(Array("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8))
        await Conn.sleep(ms: 100)
        #expect(events.opens == 0 && events.closes.count == 1)
        await rawServer.close()
    }

    /// close() right after creating the socket, against a real server: never opens.
    @Test func closeImmediatelyAfterCreation() async throws {
        let server = try await WebSocketServer.conn()
        _ = ConnServerSockets(server)
        let ws = WebSocket(url: Conn.url(server))
        let events = ConnRecorder()
        events.attach(ws)
        try ws.closeNow()
        #expect(ws.readyState == .closing || ws.readyState == .closed)
        let close = try await events.waitClose()
        await Conn.sleep(ms: 200)
        #expect(close.code == 1006 && !close.wasClean)
        #expect(events.opens == 0)
        #expect(events.lines == ["error", "close[3] 1006 false"])
        #expect(ws.readyState == .closed)
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Protocol violations from a raw client

    @Test(arguments: ConnViolation.all)
    func protocolViolationClosesWithCode(_ violation: ConnViolation) async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(violation.bytes)
        let (close, skipped) = try await raw.readFrame(opcode: RawWS.close)
        #expect(skipped.isEmpty, "frames before the close frame: \(skipped)")
        #expect(close.closeCode == violation.code, "\(close) \(close.closeReason)")
        #expect(!close.masked)
        #expect(await raw.waitEOF(), "the server should close TCP after failing")
        let events = try await sockets.socket().events
        let event = try await events.waitClose()
        #expect(!event.wasClean)
        #expect(event.code == violation.code)
        #expect(events.errors.count == 1)
        if case .protocolViolation(let e)? = events.errors.first {
            #expect(e.closeCode.rawValue == violation.code)
        } else {
            Issue.record("expected protocolViolation, got \(events.errors)")
        }
        #expect(events.messages.isEmpty)
        #expect(events.lines == ["open[1] ", "error", "close[3] \(violation.code) false"])
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A close frame between the fragments of a message: the server answers it (control
    /// frames may be interleaved) and drops the partial message.
    @Test func closeInsideFragmentedMessage() async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        try await raw.send(RawWS.frame(RawWS.text, "part", fin: false) + RawWS.frame(RawWS.close, RawWS.closePayload(1000)))
        let echo = try await raw.readFrame()
        #expect(echo.opcode == RawWS.close && echo.closeCode == 1000, "\(echo)")
        #expect(await raw.waitEOF())
        let events = try await sockets.socket().events
        let event = try await events.waitClose()
        #expect(event.code == 1000 && event.wasClean)
        #expect(events.messages.isEmpty)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// With permessage-deflate negotiated: RSV1 on a continuation frame is 1002, corrupt
    /// compressed data is 1007.
    @Test(arguments: ["rsv1 on continuation", "corrupt deflate data"])
    func compressedProtocolViolations(_ kind: String) async throws {
        let server = try await WebSocketServer.conn()
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.connect(port: server.port)
        try await raw.send(RawWS.upgradeRequest(port: server.port, extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate"]))
        #expect(try await raw.readHead().contains("permessage-deflate"))
        let expected: UInt16
        if kind == "rsv1 on continuation" {
            try await raw.send(RawWS.frame(RawWS.text, Array("ab".utf8), fin: false, rsv: 0x40)
                + RawWS.frame(RawWS.continuation, Array("cd".utf8), fin: true, rsv: 0x40))
            expected = 1002
        } else {
            try await raw.send(RawWS.frame(RawWS.binary, [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01], rsv: 0x40))
            expected = 1007
        }
        let (close, _) = try await raw.readFrame(opcode: RawWS.close)
        #expect(close.closeCode == expected, "\(close)")
        #expect(await raw.waitEOF())
        let event = try await sockets.socket().events.waitClose()
        #expect(event.code == expected && !event.wasClean)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The client side fails the connection too: a masked frame from a raw server → 1002.
    @Test func clientRejectsMaskedFrameFromServer() async throws {
        let rawServer = try await RawServer.listen()
        let ws = WebSocket(url: Conn.url(rawServer))
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer()
        _ = try await peer.acceptUpgrade()
        await events.expectOpen()
        try await peer.send(RawWS.frame(RawWS.text, "masked"))  // servers must not mask
        let close = try await peer.readFrame()
        #expect(close.opcode == RawWS.close && close.closeCode == 1002 && close.masked, "\(close)")
        let event = try await events.waitClose()
        #expect(!event.wasClean)
        #expect(events.messages.isEmpty)
        #expect(events.lines.first == "open[1] " && events.lines.dropFirst().first == "error", "\(events.lines)")
        await rawServer.close()
    }
}
