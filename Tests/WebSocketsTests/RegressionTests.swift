import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

// Regression tests for the review fixes of commit 1a3c099: each one fails on the
// behaviour before the fix (described on the test). Helpers come from RawClient.swift.

@Suite struct RegressionTests {
    // MARK: close() racing the opening handshake

    /// `close()` while CONNECTING, racing a handshake that completes. Before the fix the
    /// socket could fire `onopen` after `close()` (the handshake won, `didOpen` ignored the
    /// CLOSING state) and the TCP connection was never closed, so the server kept an open
    /// connection forever. Now: CLOSED, `onerror` then `onclose` 1006 exactly once, never
    /// `onopen`, and the server sees every connection end.
    @Test func closeWhileConnectingRacingTheHandshake() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let url = Conn.url(server)
        let config = Conn.client {
            $0.connection.pingInterval = nil
            $0.deflate = nil
        }
        // How long an open takes here (WebSocket(url:) to onopen), so the close() calls
        // can be spread around the moment the server's 101 arrives.
        var openTimes: [Duration] = []
        for _ in 0..<5 { openTimes.append(try await Self.timeToOpen(url, config)) }
        let openTime = openTimes.sorted()[2]
        #expect(await Conn.waitUntil(seconds: 2) { server.connectionCount == 0 })
        let calibration = sockets.count
        let attempts = 50
        var recorders: [(ws: WebSocket, events: ConnRecorder, attachedWhileConnecting: Bool)] = []
        for attempt in 0..<attempts {
            let ws = WebSocket(url: url, configuration: config)
            let events = ConnRecorder()
            events.attach(ws)
            // On a loaded machine the socket may open before the callbacks are set (then
            // onopen is not recorded): only possible when it is no longer CONNECTING here.
            let attachedWhileConnecting = ws.readyState == .connecting
            // From a third of the open time to a little past it: many close() calls
            // land while the handshake completes (a few after it: a normal close).
            let delay = openTime * (0.3 + 0.8 * Double(attempt) / Double(attempts))
            let closer = Task.detached {
                let until = ContinuousClock.now + delay
                while ContinuousClock.now < until {}
                try ws.closeNow()
            }
            try await closer.value
            _ = try await events.waitClose(seconds: 3)
            recorders.append((ws, events, attachedWhileConnecting))
        }
        await Conn.sleep(ms: 150)  // nothing may follow onclose (a late onopen, a second close)
        var closedWhileConnecting = 0
        for (attempt, (ws, events, attachedWhileConnecting)) in recorders.enumerated() {
            #expect(ws.readyState == .closed, "attempt \(attempt)")
            if events.lines == ["error", "close[3] 1006 false"] {
                // close() while CONNECTING: failed, CLOSED inside onerror, never opened.
                closedWhileConnecting += 1
                #expect(events.errorReadyStates == [WebSocket.ReadyState.closed.rawValue], "attempt \(attempt)")
            } else {
                // Only acceptable otherwise: the socket was OPEN when close() ran, so the
                // closing handshake ran (no code: 1005). Before the fix: onopen after
                // close(), then error and 1006 ("open[2]", CLOSING inside onopen).
                let lines = events.lines
                let openedFirst = lines.count == 2 && (lines[0] == "open[1] " || lines[0] == "open[2] ")
                let openedBeforeAttach = !attachedWhileConnecting && lines.count == 1
                #expect((openedFirst || openedBeforeAttach) && lines.last == "close[3] 1005 true", "attempt \(attempt): \(lines)")
            }
            #expect(events.closes.count == 1, "attempt \(attempt): onclose exactly once")
        }
        #expect(closedWhileConnecting > 0, "no close() landed while CONNECTING (open takes \(openTime))")
        // Upgrades the server completed must not linger: the client closed TCP.
        let closedOnServer = await Conn.waitUntil(seconds: 3) { server.connectionCount == 0 }
        #expect(closedOnServer, "\(server.connectionCount) connections still open on the server (of \(sockets.count) upgraded)")
        for i in calibration..<sockets.count {
            let serverSide = try await sockets.socket(i).events
            _ = try await serverSide.waitClose(seconds: 1)  // the server noticed the end
        }
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// The time from `WebSocket(url:)` to `onopen` of a connection closed right after.
    private static func timeToOpen(_ url: String, _ config: ClientConfiguration) async throws -> Duration {
        let start = ContinuousClock.now
        let opened = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        let ws = WebSocket(url: url, configuration: config)
        ws.onopen = { _ in opened.withLockedValue { $0 = ContinuousClock.now } }
        guard await Conn.waitUntil(seconds: 3, { ws.readyState == .open }) else {
            throw Conn.TimeoutError(what: "calibration connection to open")
        }
        // Opened before onopen was set (a loaded machine): an upper bound will do.
        let at = opened.withLockedValue { $0 } ?? ContinuousClock.now
        try ws.closeNow(code: 1000)
        try await ws.closedWithin()
        return at - start
    }

    // MARK: Messages after our close frame

    /// A peer that keeps sending data after our close frame and before its own close
    /// echo: RFC 6455 §7.1.2, the connection is CLOSING and those messages are dropped.
    /// Before the fix only messages after the peer's close frame were dropped, so these
    /// reached `onmessage` / `messages`. The close still completes cleanly with the code
    /// and reason of the peer's echo.
    @Test(arguments: [false, true])
    func messagesAfterOurCloseFrameAreDropped(asyncReader: Bool) async throws {
        let rawServer = try await RawServer.listen()
        let config = Conn.client {
            $0.connection.pingInterval = nil
            $0.deflate = nil
        }
        let events = ConnRecorder()
        let ws: WebSocket
        if asyncReader {
            async let connected = Conn.connect(Conn.url(rawServer), configuration: config)
            _ = try await rawServer.peer().acceptUpgrade()
            ws = try await connected
            events.attach(ws)  // onclose; messages go to the async sequence
        } else {
            ws = WebSocket(url: Conn.url(rawServer), configuration: config)
            events.attach(ws)
            _ = try await rawServer.peer().acceptUpgrade()
            await events.expectOpen()
        }
        let peer = try await rawServer.peer()
        try await peer.send(RawWS.frame(RawWS.text, "before", mask: nil))
        if asyncReader {
            #expect(try await ws.nextMessage() == .text("before"))
        } else {
            #expect(try await events.waitMessages(1) == [.text("before")])
        }

        try ws.closeNow(code: 3001, reason: "client bye")
        let ours = try await peer.readFrame(opcode: RawWS.close)
        #expect(ours.skipped.isEmpty)
        #expect(ours.frame.closeCode == 3001 && ours.frame.closeReason == "client bye" && ours.frame.masked)
        // Data after our close frame, in its own TCP segment, then (later) the echo.
        try await peer.send(
            RawWS.frame(RawWS.text, "after our close", mask: nil) + RawWS.frame(RawWS.binary, [1, 2, 3], mask: nil)
                + RawWS.frame(RawWS.text, "frag", fin: false, mask: nil)
                + RawWS.frame(RawWS.continuation, Array("mented".utf8), mask: nil))
        await Conn.sleep(ms: 50)
        try await peer.send(RawWS.frame(RawWS.text, "still after", mask: nil))
        await Conn.sleep(ms: 50)
        try await peer.send(RawWS.frame(RawWS.close, RawWS.closePayload(3001, "raw echo"), mask: nil))
        await peer.close()  // the server closes TCP after the closing handshake

        let close = try await events.waitClose()
        #expect(close.code == 3001 && close.reason == "raw echo" && close.wasClean, "\(close)")
        #expect(events.errors.isEmpty)
        #expect(ws.readyState == .closed)
        if asyncReader {
            let rest = try await Conn.withTimeout(seconds: 2, "rest of messages") {
                var got: [Message] = []
                for try await m in ws.messages { got.append(m) }
                return got
            }
            #expect(rest.isEmpty, "delivered after our close frame: \(rest.map(Conn.describe))")
        } else {
            #expect(events.messages == [.text("before")], "events: \(events.lines)")
            #expect(events.lines == ["open[1] ", "message text(before)", "close[3] 3001 true"])
        }
        await rawServer.close()
    }

    // MARK: Keepalive and read backpressure

    /// An async reader that is behind pauses our reads; the peer's pong then waits unread
    /// in the kernel. Before the fix the keepalive kept pinging and failed the connection
    /// with 1011 after pingTimeout, killing it for our own backpressure. Now the keepalive
    /// pauses with the reads: all 50 messages arrive and the connection stays OPEN.
    @Test func keepaliveSurvivesAsyncReaderBackpressure() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let payloads = (0..<50).map { "message \($0) " + String(repeating: "x", count: 1000) }
        let sockets = ConnServerSockets(server, echo: false) { ws in
            for p in payloads { try? ws.sendNow(p) }
        }
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client {
            $0.connection.inboundMessageQueue = 2
            $0.connection.pingInterval = .milliseconds(50)
            $0.connection.pingTimeout = .milliseconds(150)
            $0.deflate = nil
        })
        let events = ConnRecorder()
        events.attach(ws)  // onerror/onclose (messages go to the async sequence)
        #expect(try await ws.nextMessage() == .text(payloads[0]))
        await Conn.sleep(ms: 1000)  // behind: the queue is full and our reads are paused
        #expect(ws.readyState == .open, "closed while the reader was behind: \(events.lines) \(events.errors)")
        var received = [payloads[0]]
        for _ in 1..<payloads.count {
            guard let m = try await ws.nextMessage(seconds: 3) else { break }
            if case .text(let s) = m { received.append(s) }
        }
        #expect(received.count == payloads.count && received == payloads, "got \(received.count) of \(payloads.count)")
        #expect(ws.readyState == .open)
        await Conn.sleep(ms: 300)  // reading again: pings are answered, the connection lives on
        #expect(ws.readyState == .open, "\(events.lines) \(events.errors)")
        #expect(events.closes.isEmpty && events.errors.isEmpty)

        try ws.closeNow(code: 1000)
        try await ws.closedWithin()
        let close = try await events.waitClose()
        #expect(close.code == 1000 && close.wasClean, "\(close)")
        let theirs = try await sockets.socket().events.waitClose()
        #expect(theirs.code == 1000 && theirs.wasClean, "\(theirs)")
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: The async message sequence

    /// `messages` first accessed after the connection closed: before the fix it was a new,
    /// never-finished queue and `for try await` hung forever. Now it is an ended sequence,
    /// after a clean close and after a failed connection alike.
    @Test func messagesAccessedAfterCloseIsEnded() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let ws = WebSocket(url: Conn.url(server), configuration: Conn.client { $0.connection.pingInterval = nil })
        let events = ConnRecorder()
        events.attach(ws)
        #expect(await Conn.waitUntil(seconds: 5) { ws.readyState == .open })  // onopen may precede attach
        try await sockets.socket().ws.sendNow("to onmessage")
        _ = try await events.waitMessages(1)
        try ws.closeNow(code: 1000)
        let close = try await events.waitClose()
        #expect(close.code == 1000 && close.wasClean)

        let afterClean = try await Conn.withTimeout(seconds: 2, "for try await over messages of a closed socket") {
            var got: [Message] = []
            for try await m in ws.messages { got.append(m) }
            return got
        }
        #expect(afterClean.isEmpty)
        #expect(try await ws.nextMessage(seconds: 1) == nil, "a second iteration ends too")

        let refusing = try ConnRefusingPort()
        let failed = WebSocket(url: "ws://127.0.0.1:\(refusing.port)/")
        let failedEvents = ConnRecorder()
        failedEvents.attach(failed)
        #expect(try await failedEvents.waitClose().code == 1006)
        let afterFailure = try await Conn.withTimeout(seconds: 2, "for try await over messages of a failed socket") {
            var got: [Message] = []
            for try await m in failed.messages { got.append(m) }
            return got
        }
        #expect(afterFailure.isEmpty)
        withExtendedLifetime(refusing) {}
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Two tasks iterating the same `messages`. Before the fix the queue held a single
    /// waiting reader: the second overwrote the first, whose continuation was lost, so one
    /// loop never ended. Now every message goes to exactly one reader, each in order, and
    /// both loops end at the close.
    @Test func twoReadersOfMessagesShareThemAndBothEnd() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let ws = try await Conn.connect(Conn.url(server), configuration: Conn.client { $0.connection.pingInterval = nil })
        let sws = try await sockets.socket().ws
        let queue = ws.messages
        let count = 200
        let readers = Task { () throws -> [[Int]] in
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var got: [Int] = []
                        for try await m in queue {
                            if case .text(let s) = m, let n = Int(s) { got.append(n) }
                        }
                        return got
                    }
                }
                var all: [[Int]] = []
                for try await got in group { all.append(got) }
                return all
            }
        }
        await Conn.sleep(ms: 100)  // both readers are waiting
        for i in 0..<count { try sws.sendNow("\(i)") }
        try sws.closeNow(code: 1000)
        let perReader = try await Conn.withTimeout(seconds: 5, "both reader loops to end") { try await readers.value }
        #expect(perReader.count == 2)
        let all = perReader.flatMap { $0 }
        #expect(all.count == count, "\(all.count) messages received in total (\(perReader.map(\.count)) per reader)")
        #expect(all.sorted() == Array(0..<count), "every message exactly once")
        for got in perReader { #expect(got == got.sorted(), "each reader sees its messages in order") }
        try await ws.closedWithin()
        await server.shutdown(deadline: .milliseconds(300))
    }

    // MARK: Async senders and the overflow policy

    /// An async sender over `maxBufferedBytes`: async senders wait on the high-water mark
    /// instead. Before the fix the overflow policy applied to them too, so one 1 MiB
    /// message with maxBufferedBytes = 64 KiB closed the connection with 1008. Now the
    /// connection stays open and the message arrives (the callback sender's 1008 is
    /// covered by LimitsAndTimeoutsTests.callbackSenderOverflowCloses).
    @Test func asyncSenderIsNotFailedByOverflowPolicy() async throws {
        let server = try await WebSocketServer.conn {
            $0.connection.maxBufferedBytes = 64 << 10
            $0.connection.highWaterMark = 32 << 10
            $0.connection.lowWaterMark = 16 << 10
            $0.connection.overflowPolicy = .closePolicyViolation
            $0.connection.pingInterval = nil
        }
        let sockets = ConnServerSockets(server, echo: false)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096)
        try await raw.setReading(false)  // a slow reader: nothing read for now, small window
        let (sws, events, _) = try await sockets.socket()
        let big = Conn.bytes(1 << 20)
        try await Conn.withTimeout(seconds: 2, "async send of 1 MiB") { try await sws.send(.binary(big)) }
        // A second async send waits for the queue to drain below the low-water mark.
        let second = Task { try await sws.send(.text("after")) }
        await Conn.sleep(ms: 300)
        #expect(sws.readyState == .open, "async send tripped the overflow policy: \(events.lines) \(events.errors)")
        #expect(events.closes.isEmpty && events.errors.isEmpty)

        try await raw.setReading(true)
        let frame = try await raw.readFrame(seconds: 5)
        #expect(frame.opcode == RawWS.binary && frame.fin && !frame.masked, "\(frame)")
        #expect(frame.payload == big, "the 1 MiB message arrived intact")
        try await Conn.withTimeout(seconds: 5, "second async send") { try await second.value }
        let next = try await raw.readFrame(seconds: 5)
        #expect(next.opcode == RawWS.text && next.text == "after", "\(next)")
        #expect(sws.readyState == .open)
        #expect(await Conn.waitUntil(seconds: 2) { sws.bufferedAmount == 0 }, "bufferedAmount \(sws.bufferedAmount)")

        try await raw.send(RawWS.frame(RawWS.close, RawWS.closePayload(1000)))
        let echo = try await raw.readFrame(opcode: RawWS.close)
        #expect(echo.frame.closeCode == 1000)
        let close = try await events.waitClose()
        #expect(close.code == 1000 && close.wasClean, "\(close)")
        #expect(events.errors.isEmpty)
        #expect(await raw.waitEOF())
        await server.shutdown(deadline: .milliseconds(300))
    }
}

/// Handlers set after the connection already opened and received messages (a fast
/// handshake beating the line after `WebSocket(url:)`) still get the open event and
/// every message, in order.
@Suite struct EarlyEventTests {
    @Test func lateHandlersGetOpenAndEarlyMessages() async throws {
        let server = try await WebSocketServer.conn()
        server.onconnection = { ws, _ in
            for i in 0..<5 { try? ws.send("early \(i)") }
        }
        let ws = WebSocket(url: Conn.url(server))
        // Wait until it is open and the messages are surely in, before any handler exists.
        while ws.readyState != .open { await Conn.sleep(ms: 5) }
        await Conn.sleep(ms: 200)
        let events = ConnRecorder()
        events.attach(ws)
        await events.expectOpen()
        _ = try await events.waitMessages(5)
        #expect(events.lines == ["open[1] "] + (0..<5).map { "message text(early \($0))" })
        try ws.closeNow(code: 1000)
        _ = try await events.waitClose()
        await server.shutdown(deadline: .milliseconds(300))
    }

    @Test func lateAsyncReaderGetsEarlyMessagesFirst() async throws {
        let server = try await WebSocketServer.conn()
        server.onconnection = { ws, _ in
            for i in 0..<3 { try? ws.send("early \(i)") }
        }
        let ws = try await WebSocket.connect(to: Conn.url(server))
        await Conn.sleep(ms: 200)
        var received: [Message] = []
        for try await m in ws.messages {
            received.append(m)
            if received.count == 3 { break }
        }
        #expect(received == (0..<3).map { .text("early \($0)") })
        try await ws.close()
        await server.shutdown(deadline: .milliseconds(300))
    }
}
