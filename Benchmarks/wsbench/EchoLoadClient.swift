// The load client of the `echo` group, shared by every server it measures: N plain TCP
// connections on one NIO event loop, each doing the client handshake by hand and then a
// ping-pong loop (send one message, wait for its echo, note the round trip, repeat).
// It is kept lean so that the server, not the client, is what the numbers describe:
// plain messages go out as one pre-masked frame built once per connection, and echoes
// are only framed and counted, never copied.
import NIOCore
import NIOPosix
import WebSocketFraming
import WebSockets

/// Why the echo group stopped: a server that refused, stalled, closed or echoed wrongly.
struct EchoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits for `future`, failing after `seconds` (every wait of the echo group is bounded).
func waitBounded<T: Sendable>(_ future: EventLoopFuture<T>, seconds: Int64, _ what: String) throws -> T {
    let promise = future.eventLoop.makePromise(of: T.self)
    future.cascade(to: promise)
    let timer = future.eventLoop.scheduleTask(in: .seconds(seconds)) {
        promise.fail(EchoError("\(what): nothing within \(seconds) s"))
    }
    defer { timer.cancel() }
    return try promise.futureResult.wait()
}

/// What every connection of a case sends.
struct EchoLoad: Sendable {
    /// Connections to open.
    var connections: Int
    /// Payload bytes of every message.
    var messageSize: Int
    /// Offer permessage-deflate (and then compress and inflate); the messages are text.
    var deflate: Bool
    /// The messages, each `messageSize` bytes, sent in turn: one binary payload for the
    /// plain cases, distinct chat-like texts for the deflate case (so that context
    /// takeover cannot reduce a message to a back-reference to the previous one).
    var payloads: [[UInt8]]
}

/// The fixed handshake key (RFC 6455's sample) and the answer it must get.
private let handshakeKey = "dGhlIHNhbXBsZSBub25jZQ=="
private let expectedAccept = Handshake.acceptKey(for: handshakeKey)

/// One client connection: handshake, then ping-pong rounds started by the coordinator.
/// Lives on the client event loop, like the coordinator.
final class EchoClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State { case handshaking, open, closing }

    private let load: EchoLoad
    private let offer = DeflateClientOffer()
    private weak var coordinator: EchoLoadCoordinator?
    private let handshake: EventLoopPromise<Void>
    private var context: ChannelHandlerContext?
    private var state = State.handshaking
    private var head: [UInt8] = []

    // Plain cases: the pre-masked frame and a parser that only counts payload bytes.
    private var frame = ByteBuffer()
    private let parser = FrameParser(role: .client, maxFrameSize: 1 << 20, maxMessageSize: 1 << 20)
    private let controlWriter = FrameWriter(role: .client)
    private var control: [UInt8] = []
    // Deflate case: the engine's message reader and writer with the agreed parameters.
    private var reader: MessageReader?
    private var writer: MessageWriter?
    private var nextPayload = 0

    /// Messages still to send in this round (the one in flight included).
    private(set) var remaining = 0
    /// Payload bytes of the echo being received.
    private(set) var receivedBytes = 0
    /// Echoes received since the connection opened.
    private(set) var echoes = 0
    private var sentAt: UInt64 = 0
    /// Position among the client's connections (for error messages).
    var index = 0

    init(load: EchoLoad, coordinator: EchoLoadCoordinator, handshake: EventLoopPromise<Void>) {
        self.load = load
        self.coordinator = coordinator
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        let port = context.channel.remoteAddress?.port ?? 0
        var request = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(handshakeKey)\r\nSec-WebSocket-Version: 13\r\n"
        if load.deflate { request += "Sec-WebSocket-Extensions: \(ExtensionOffer.format([offer.extensionOffer]))\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if state == .handshaking {
                head += buffer.readableBytesView
                guard let end = headEnd() else {
                    if head.count > 16 << 10 { throw EchoError("upgrade response head over 16 KiB") }
                    return
                }
                try finishHandshake(context, head: head[..<end])
                buffer = context.channel.allocator.buffer(bytes: head[end...])
                head = []
            }
            try buffer.withUnsafeMutableReadableBytes { bytes in
                if let reader {
                    try reader.read(bytes) { event in try self.handle(event) }
                } else {
                    try parser.parse(bytes) { chunk in try self.handle(chunk) }
                }
            }
        } catch {
            fail("\(error)")
        }
    }

    private func headEnd() -> Int? {
        guard head.count >= 4 else { return nil }
        for i in 3..<head.count where head[i] == 10 && head[i - 1] == 13 && head[i - 2] == 10 && head[i - 3] == 13 {
            return i + 1
        }
        return nil
    }

    /// Checks the 101 and the accept key, and for the deflate case the agreed parameters.
    private func finishHandshake(_ context: ChannelHandlerContext, head: ArraySlice<UInt8>) throws {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n")
        guard let status = lines.first, status.hasPrefix("HTTP/1.1 101") else {
            throw EchoError("upgrade refused: \(lines.first ?? "no status line")")
        }
        var accept: String?
        var extensions: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            if name == "sec-websocket-accept" { accept = value }
            if name == "sec-websocket-extensions" { extensions = value }
        }
        guard accept == expectedAccept else { throw EchoError("wrong Sec-WebSocket-Accept \(accept ?? "(none)")") }
        if load.deflate {
            guard let extensions, let offers = ExtensionOffer.parseList(extensions), offers.count == 1 else {
                throw EchoError("permessage-deflate offered but not agreed (\(extensions ?? "no extensions"))")
            }
            let agreed = try PerMessageDeflate.accept(response: offers[0], offer: offer)
            reader = MessageReader(role: .client, maxFrameSize: 1 << 20, maxMessageSize: 1 << 20, deflate: agreed)
            writer = MessageWriter(role: .client, deflate: agreed)
        } else {
            guard extensions == nil else { throw EchoError("extension agreed without an offer: \(extensions!)") }
            frame = context.channel.allocator.buffer(
                bytes: try FrameWriter(role: .client).frame(opcode: .binary, payload: load.payloads[0]))
        }
        state = .open
        handshake.succeed(())
    }

    // MARK: Frames and messages

    private func handle(_ chunk: FrameChunk) throws {
        switch chunk.opcode {
        case .binary, .text, .continuation:
            receivedBytes += chunk.payload.count
            if chunk.isMessageEnd {
                let n = receivedBytes
                receivedBytes = 0
                try echoArrived(bytes: n)
            }
        default:
            if chunk.isFrameStart { control.removeAll(keepingCapacity: true) }
            control += chunk.payload
            guard chunk.isFrameEnd else { return }
            switch chunk.opcode {
            case .ping: try handle(.ping(control))
            case .close: try handle(.close(code: ClosePayload.decode(control).code, reason: ""))
            default: break
            }
        }
    }

    private func handle(_ event: WebSocketEvent) throws {
        switch event {
        case .message(let m):
            switch m {
            case .text(let s): try echoArrived(bytes: s.utf8.count)
            case .binary(let b): try echoArrived(bytes: b.count)
            }
        case .ping(let payload):
            guard let context else { return }
            var out = context.channel.allocator.buffer(capacity: 256)
            try controlWriter.write(opcode: .pong, payload: payload, into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        case .pong:
            break
        case .close(let code, _):
            if state != .closing {
                // The server started closing: answer, then wait for it to drop TCP.
                sendClose()
                fail("server closed the connection with \(code.rawValue)")
            }
        }
    }

    private func echoArrived(bytes: Int) throws {
        let t = now()
        guard remaining > 0 else { throw EchoError("an echo nobody asked for (\(bytes) bytes)") }
        guard bytes == load.messageSize else {
            throw EchoError("echo of \(bytes) bytes for a \(load.messageSize)-byte message")
        }
        echoes += 1
        remaining -= 1
        coordinator?.record(rtt: t &- sentAt)
        if remaining > 0 { try send() } else { coordinator?.connectionDone() }
    }

    // MARK: Driven by the coordinator

    /// Starts a round of `messages` ping-pongs.
    func start(messages: Int) {
        guard state == .open, messages > 0 else {
            coordinator?.connectionDone()
            return
        }
        remaining = messages
        do { try send() } catch { fail("\(error)") }
    }

    private func send() throws {
        guard let context else { throw EchoError("connection gone") }
        if let writer {
            let payload = load.payloads[nextPayload]
            nextPayload = nextPayload + 1 == load.payloads.count ? 0 : nextPayload + 1
            sentAt = now()
            var out = context.channel.allocator.buffer(capacity: load.messageSize + 64)
            try payload.withUnsafeBytes { try writer.write(opcode: .text, payload: $0, into: &out) }
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else {
            sentAt = now()
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        }
    }

    /// Starts the closing handshake (code 1000); the server then closes TCP.
    func sendClose() {
        guard state != .closing, let context else { return }
        state = .closing
        var out = context.channel.allocator.buffer(capacity: 16)
        do {
            try controlWriter.write(opcode: .close, payload: ClosePayload.encode(code: .normalClosure), into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state == .handshaking { handshake.fail(EchoError("connection closed during the handshake")) }
        if state != .closing { fail("connection closed by the server") }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail("\(error)")
        context.close(promise: nil)
    }

    private func fail(_ message: String) {
        handshake.fail(EchoError(message))
        coordinator?.fail("connection \(index): \(message)")
    }
}

/// Starts rounds on every connection and completes when all have finished; keeps the
/// round-trip times while recording. Lives on the client event loop.
final class EchoLoadCoordinator {
    let loop: EventLoop
    private(set) var handlers: [EchoClientHandler] = []
    private(set) var handshakes: [EventLoopFuture<Void>] = []
    private var round: EventLoopPromise<Void>?
    private var pending = 0
    private var recording = false
    private var rtts: [UInt32] = []
    private var timeout: Scheduled<Void>?
    private var failure: String?

    init(loop: EventLoop) { self.loop = loop }

    func add(_ handler: EchoClientHandler, handshake: EventLoopFuture<Void>) {
        handler.index = handlers.count
        handlers.append(handler)
        handshakes.append(handshake)
    }

    /// Every connection sends `messages` messages one after the other; the future
    /// fails if a connection fails or the round is not over within `limit`.
    func startRound(messages: Int, record: Bool, limit: TimeAmount) -> EventLoopFuture<Void> {
        precondition(round == nil, "one round at a time")
        let promise = loop.makePromise(of: Void.self)
        if let failure {
            promise.fail(EchoError(failure))
            return promise.futureResult
        }
        round = promise
        pending = handlers.count
        recording = record
        timeout = loop.assumeIsolated().scheduleTask(in: limit) { [weak self] in self?.stalled(limit) }
        for h in handlers { h.start(messages: messages) }
        return promise.futureResult
    }

    func record(rtt: UInt64) {
        if recording { rtts.append(UInt32(clamping: rtt)) }
    }

    /// The round-trip times recorded so far, in nanoseconds; clears them.
    func takeRTTs() -> [UInt32] {
        defer { rtts = [] }
        return rtts
    }

    func connectionDone() {
        pending -= 1
        if pending == 0 { finish(nil) }
    }

    func fail(_ message: String) {
        if failure == nil { failure = message }
        finish(message)
    }

    private func stalled(_ limit: TimeAmount) {
        let waiting = handlers.filter { $0.remaining > 0 }
        let partial = waiting.filter { $0.receivedBytes > 0 }.count
        let messages = waiting.reduce(0) { $0 + $1.remaining }
        fail("stalled: after \(limit.nanoseconds / 1_000_000_000) s, \(waiting.count) of \(handlers.count) connections "
            + "still wait for an echo (\(messages) messages left, \(partial) with an echo partly received)")
    }

    private func finish(_ failure: String?) {
        guard let round else { return }
        self.round = nil
        timeout?.cancel()
        timeout = nil
        recording = false
        if let failure { round.fail(EchoError(failure)) } else { round.succeed(()) }
    }

    /// Sends close frames on every connection.
    func closeAll() {
        for h in handlers { h.sendClose() }
    }
}

/// The load client seen from the benchmark thread: blocking calls that run on the
/// client's event loop.
final class EchoLoadClient: Sendable {
    let loop: EventLoop
    private let coordinator: NIOLoopBound<EchoLoadCoordinator>
    private let channels: [Channel]

    private init(loop: EventLoop, coordinator: NIOLoopBound<EchoLoadCoordinator>, channels: [Channel]) {
        self.loop = loop
        self.coordinator = coordinator
        self.channels = channels
    }

    /// Opens `load.connections` connections to 127.0.0.1:`port` on `loop` and completes
    /// their handshakes.
    static func connect(load: EchoLoad, port: Int, loop: EventLoop) throws -> EchoLoadClient {
        let coordinator = try loop.submit { NIOLoopBound(EchoLoadCoordinator(loop: loop), eventLoop: loop) }.wait()
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handshake = channel.eventLoop.makePromise(of: Void.self)
                    let handler = EchoClientHandler(load: load, coordinator: coordinator.value, handshake: handshake)
                    coordinator.value.add(handler, handshake: handshake.futureResult)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let connects = (0..<load.connections).map { _ in bootstrap.connect(host: "127.0.0.1", port: port) }
        let channels = try waitBounded(EventLoopFuture.whenAllSucceed(connects, on: loop), seconds: 10, "connecting")
        let client = EchoLoadClient(loop: loop, coordinator: coordinator, channels: channels)
        do {
            let handshakes = loop.flatSubmit { EventLoopFuture.andAllSucceed(coordinator.value.handshakes, on: loop) }
            try waitBounded(handshakes, seconds: 10, "handshakes")
        } catch {
            client.close()
            throw error
        }
        return client
    }

    /// One round: every connection sends `messages` messages in turn, each after the
    /// previous one's echo. Returns once all echoes are in.
    func round(messages: Int, record: Bool = false, limit: TimeAmount = .seconds(10)) throws {
        let coordinator = self.coordinator
        try loop.flatSubmit { coordinator.value.startRound(messages: messages, record: record, limit: limit) }.wait()
    }

    /// Round-trip times recorded since the last call, in nanoseconds.
    func takeRTTs() -> [UInt32] {
        let coordinator = self.coordinator
        return (try? loop.submit { coordinator.value.takeRTTs() }.wait()) ?? []
    }

    /// Closing handshake on every connection; waits up to 2 s for the server to drop TCP,
    /// then closes what is left. Returns how many connections had to be closed by us.
    @discardableResult
    func close() -> Int {
        let coordinator = self.coordinator
        loop.execute { coordinator.value.closeAll() }
        let closed = EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: loop)
        if (try? waitBounded(closed, seconds: 2, "closing")) != nil { return 0 }
        let left = channels.filter { $0.isActive }
        for c in left { c.close(promise: nil) }
        _ = try? waitBounded(closed, seconds: 2, "closing")
        return left.count
    }
}
