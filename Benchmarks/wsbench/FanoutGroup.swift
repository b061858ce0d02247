// `fanout`: `WebSocketServer.publish` to 1,000 local subscribers over loopback, in this
// process. One operation is one round: the benchmark thread publishes `perRound` chat
// messages of 125 bytes on one topic, and the round ends when every subscriber has
// received every one of them. Times are per delivered message (the harness divides by
// subscribers x messages), so `ops_per_s` is messages delivered per second.
//
// Impls: `engine` (no compression: one shared frame per message), `shared` (deflate with
// server_no_context_takeover: one compression per message, one shared compressed frame),
// `takeover` (deflate with context takeover: every subscriber compresses the message
// itself, the price of the better ratio).
//
// Threads: a 2-thread MultiThreadedEventLoopGroup, like `echo`: the subscribers (lean
// NIO clients that only frame, inflate and count) on the first loop, the server on the
// second. The subscribers' work shares the machine with the server's: the numbers are
// for the whole loopback path, not the server alone.
//
// Sessions (a server and its 1,000 subscribers) open at a case's first run and close when
// another fan-out case starts, or at exit. Every wait is bounded.
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import WebSocketFraming
import WebSockets
#if canImport(Glibc)
import Glibc
#endif

private let fanoutSubscribers = 1000
private let fanoutPerRound = 20
private let fanoutMessageSize = 125

/// How the subscribers of an impl negotiate permessage-deflate.
private enum FanoutMode: String {
    case engine, shared, takeover

    var offer: DeflateClientOffer? {
        switch self {
        case .engine: nil
        case .shared: DeflateClientOffer(serverNoContextTakeover: true)
        case .takeover: DeflateClientOffer()
        }
    }
}

/// Counts deliveries on the subscribers' loop and completes a round's promise.
private final class FanoutCounter {
    var delivered = 0
    var target = Int.max
    var promise: EventLoopPromise<Void>?
    var failure: String?

    func add() {
        delivered += 1
        if delivered >= target, let p = promise {
            promise = nil
            p.succeed(())
        }
    }

    func fail(_ message: String) {
        failure = failure ?? message
        promise?.fail(EchoError(message))
        promise = nil
    }
}

/// One subscriber: the client handshake by hand, then frames parsed (and inflated) and
/// messages counted.
private final class FanoutSubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let offer: DeflateClientOffer?
    private let counter: FanoutCounter
    private let pool: DeflateCodecPool
    private let handshake: EventLoopPromise<Void>
    private var head: [UInt8] = []
    private var reader: MessageReader?

    init(offer: DeflateClientOffer?, counter: FanoutCounter, pool: DeflateCodecPool, handshake: EventLoopPromise<Void>) {
        self.offer = offer
        self.counter = counter
        self.pool = pool
        self.handshake = handshake
    }

    func channelActive(context: ChannelHandlerContext) {
        var request = "GET /fanout HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let offer { request += "Sec-WebSocket-Extensions: \(ExtensionOffer.format([offer.extensionOffer]))\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if reader == nil {
                head += buffer.readableBytesView
                guard let end = headEnd() else { return }
                reader = try openReader(head[..<end])
                buffer = context.channel.allocator.buffer(bytes: head[end...])
                head = []
                handshake.succeed(())
            }
            try buffer.withUnsafeMutableReadableBytes { bytes in
                try reader!.read(bytes) { event in
                    if case .message = event { self.counter.add() }
                }
            }
        } catch {
            handshake.fail(error)
            counter.fail("subscriber: \(error)")
            context.close(promise: nil)
        }
    }

    private func headEnd() -> Int? {
        guard head.count >= 4 else { return nil }
        for i in 3..<head.count where head[i] == 10 && head[i - 1] == 13 && head[i - 2] == 10 && head[i - 3] == 13 {
            return i + 1
        }
        return nil
    }

    private func openReader(_ head: ArraySlice<UInt8>) throws -> MessageReader {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n")
        guard lines.first?.hasPrefix("HTTP/1.1 101") == true else { throw EchoError("upgrade refused: \(lines.first ?? "")") }
        var agreed: DeflateParameters?
        if let offer {
            let value = lines.first { $0.lowercased().hasPrefix("sec-websocket-extensions:") }
                .map { String($0.drop { $0 != ":" }.dropFirst()).trimmingWhitespace() }
            guard let value, let offers = ExtensionOffer.parseList(value), offers.count == 1 else {
                throw EchoError("permessage-deflate not agreed")
            }
            agreed = try PerMessageDeflate.accept(response: offers[0], offer: offer)
        }
        return MessageReader(role: .client, maxFrameSize: 1 << 20, maxMessageSize: 1 << 20, deflate: agreed, pool: pool)
    }

    func channelInactive(context: ChannelHandlerContext) {
        counter.fail("a subscriber's connection closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// A server with 1,000 subscribers on one topic.
private final class FanoutSession {
    let server: WebSocketServer
    let channels: [Channel]
    let counter: NIOLoopBound<FanoutCounter>
    let clientLoop: EventLoop
    let messages: [String]
    var next = 0

    init(mode: FanoutMode, rig: EchoRig, messages: [String]) throws {
        clientLoop = rig.clientLoop
        self.messages = messages
        let serverLoop = rig.serverLoop
        let configuration = {
            var c = ServerConfiguration()
            c.connection.logger.logLevel = .warning
            c.connection.pingInterval = nil
            return c
        }()
        let promise = serverLoop.makePromise(of: WebSocketServer.self)
        promise.completeWithTask {
            try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: configuration, eventLoopGroup: serverLoop)
        }
        server = try waitBounded(promise.futureResult, seconds: 5, "starting WebSocketServer")
        server.onconnection = { ws, _ in _ = try? ws.subscribe("bench") }
        let loop = clientLoop
        let counter = try loop.submit { NIOLoopBound(FanoutCounter(), eventLoop: loop) }.wait()
        self.counter = counter
        let pool = try loop.submit { NIOLoopBound(DeflateCodecPool(), eventLoop: loop) }.wait()
        var channels: [Channel] = []
        let port = server.port
        for start in stride(from: 0, to: fanoutSubscribers, by: 100) {
            var handshakes: [EventLoopFuture<Void>] = []
            for _ in start..<min(start + 100, fanoutSubscribers) {
                let handshake = clientLoop.makePromise(of: Void.self)
                let channel = try ClientBootstrap(group: clientLoop)
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(FanoutSubscriberHandler(
                                offer: mode.offer, counter: counter.value, pool: pool.value, handshake: handshake))
                        }
                    }
                    .connect(host: "127.0.0.1", port: port).wait()
                channels.append(channel)
                handshakes.append(handshake.futureResult)
            }
            _ = try waitBounded(EventLoopFuture.andAllSucceed(handshakes, on: clientLoop), seconds: 10, "subscribers' handshakes")
        }
        self.channels = channels
        let deadline = NIODeadline.now() + .seconds(10)
        while server.subscriberCount("bench") < fanoutSubscribers {
            guard NIODeadline.now() < deadline else { throw EchoError("only \(server.subscriberCount("bench")) subscribed") }
            usleep(1000)
        }
    }

    /// Deliveries expected once the current round is complete (since the session opened).
    var expectedTotal = 0

    /// Publishes a round and waits until every subscriber has all of it.
    func round() throws {
        let counter = self.counter
        let loop = clientLoop
        expectedTotal += fanoutSubscribers * fanoutPerRound
        let target = expectedTotal
        // The target is absolute: the loop may read this round's first messages before it
        // runs the task below (NIO handles I/O before tasks in an iteration).
        let expect = loop.flatSubmit { () -> EventLoopFuture<Void> in
            let c = counter.value
            if let failure = c.failure { return loop.makeFailedFuture(EchoError(failure)) }
            if c.delivered >= target { return loop.makeSucceededVoidFuture() }
            let p = loop.makePromise(of: Void.self)
            c.target = target
            c.promise = p
            return p.futureResult
        }
        for _ in 0..<fanoutPerRound {
            server.publish("bench", messages[next % messages.count])
            next += 1
        }
        do {
            try waitBounded(expect, seconds: 60, "a round's deliveries")
        } catch {
            let (delivered, target) = try loop.submit { (counter.value.delivered, counter.value.target) }.wait()
            throw EchoError("\(error) (\(delivered) delivered, \(target) expected)")
        }
    }

    func close() {
        for c in channels { c.close(promise: nil) }
        let server = self.server
        let done = clientLoop.makePromise(of: Void.self)
        done.completeWithTask { await server.shutdown(deadline: .seconds(2)) }
        _ = try? waitBounded(done.futureResult, seconds: 5, "WebSocketServer.shutdown")
    }
}

/// The open sessions, by impl name (one case at a time).
nonisolated(unsafe) private var fanoutSessions: [String: FanoutSession] = [:]
nonisolated(unsafe) private var fanoutExitHook = false
/// Set when the group fails: exit then skips the graceful teardown.
nonisolated(unsafe) private var fanoutFailed = false

private func fanoutSession(_ mode: FanoutMode, caseName: String, messages: [String]) -> FanoutSession {
    let key = "\(caseName)/\(mode.rawValue)"
    if let s = fanoutSessions[key] { return s }
    for (k, s) in fanoutSessions where !k.hasPrefix(caseName + "/") {
        s.close()
        fanoutSessions[k] = nil
    }
    do {
        let s = try FanoutSession(mode: mode, rig: echoRig(), messages: messages)
        fanoutSessions[key] = s
        if !fanoutExitHook {
            fanoutExitHook = true
            atexit {
                fflush(nil)
                if fanoutFailed { return }
                for s in fanoutSessions.values { s.close() }
                fanoutSessions = [:]
            }
        }
        return s
    } catch {
        fanoutFailed = true
        fail("fanout/\(key): \(error)")
    }
}

func fanoutCases() -> [Case] {
    let messages = chatTexts(count: 64, bytes: fanoutMessageSize).map { String(decoding: $0, as: UTF8.self) }
    let units = fanoutSubscribers * fanoutPerRound
    func impl(_ mode: FanoutMode, _ caseName: String) -> Impl {
        Impl(name: mode.rawValue) {
            do {
                try fanoutSession(mode, caseName: caseName, messages: messages).round()
            } catch {
                fanoutFailed = true
                fail("fanout/\(caseName)/\(mode.rawValue): \(error)")
            }
            return units
        }
    }
    let plain = "1000subs-125B"
    let deflate = "1000subs-125B-deflate"
    return [
        Case(group: "fanout", name: plain, bytesPerOp: units * fanoutMessageSize, unitsPerOp: units,
             impls: [impl(.engine, plain)]),
        Case(group: "fanout", name: deflate, bytesPerOp: units * fanoutMessageSize, unitsPerOp: units,
             impls: [impl(.shared, deflate), impl(.takeover, deflate)]),
    ]
}
