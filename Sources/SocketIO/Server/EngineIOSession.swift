import NIOConcurrencyHelpers
import NIOCore
import WebSockets

/// One Engine.IO client on the server: its session id, its transport (long-polling,
/// then maybe WebSocket after an upgrade), the packets waiting for a poll, and the
/// heartbeat. Thread-safe: polls, posts and WebSocket messages arrive on any loop.
final class EngineIOSession: @unchecked Sendable {
    /// The session id (random, URL-safe).
    let id: String
    /// The upgrade or first polling request.
    let request: HTTPRequest
    private let config: SocketIOServerConfiguration
    private let loop: EventLoop
    private let lock = NIOLock()

    private enum Transport {
        case polling
        case websocket(WebSocket)
    }

    private var transport: Transport
    /// A WebSocket that passed the probe and waits for the upgrade packet.
    private var probing: WebSocket?
    private var outbox: [EngineIOPacket] = []
    private var outboxBytes = 0
    /// The held GET and the headers (CORS) its answer carries.
    private var poll: (responder: HTTPResponder, headers: [(name: String, value: String)])?
    private var closed = false
    private var pingTimer: Scheduled<Void>?
    private var pongTimer: Scheduled<Void>?

    /// Called with every message packet, in order. Set before `start`; it must not
    /// capture the session strongly (the session would never be freed).
    var onMessage: (@Sendable (EngineIOPacket.Payload) -> Void)?
    /// Called once when the session ends, with socket.io's reason.
    var onClose: (@Sendable (String) -> Void)?

    init(id: String, request: HTTPRequest, transport: EngineIOTransport, websocket: WebSocket?, config: SocketIOServerConfiguration) {
        self.id = id
        self.request = request
        self.config = config
        self.loop = websocket?.eventLoop ?? config.eventLoopGroup.next()
        self.transport = websocket.map { .websocket($0) } ?? .polling
    }

    /// The open packet: the session id, upgrades, and the heartbeat and size limits.
    func openPacket(upgrades: [String]) -> EngineIOPacket {
        let json: JSONValue = [
            "sid": .string(id),
            "upgrades": .array(upgrades.map { .string($0) }),
            "pingInterval": .number(Double(config.pingInterval.nanoseconds / 1_000_000)),
            "pingTimeout": .number(Double(config.pingTimeout.nanoseconds / 1_000_000)),
            "maxPayload": .number(Double(config.maxPayload)),
        ]
        return EngineIOPacket(.open, .text(json.description))
    }

    /// Starts the heartbeat; the WebSocket transport starts reading here.
    func start() {
        if case .websocket(let ws) = lock.withLock({ transport }) { attach(ws) }
        schedulePing()
    }

    /// The loop running this session's timers.
    var eventLoop: EventLoop { loop }

    var isClosed: Bool { lock.withLock { closed } }

    var transportName: EngineIOTransport {
        lock.withLock { if case .websocket = transport { return .websocket } else { return .polling } }
    }

    // MARK: Sending

    /// Queues or writes packets, in order. Returns false once the session is closed.
    @discardableResult
    func send(_ packets: [EngineIOPacket]) -> Bool {
        var overflow = false
        let (ws, release) = lock.withLock { () -> (WebSocket?, (HTTPResponder, HTTPResponse)?) in
            guard !closed else { return (nil, nil) }
            if case .websocket(let ws) = transport {
                return (ws, nil)
            }
            outbox += packets
            outboxBytes += packets.reduce(0) { $0 + Self.size(of: $1) }
            if outboxBytes > config.maxBufferedBytes { overflow = true; return (nil, nil) }
            return (nil, takePoll())
        }
        if overflow {
            close(reason: "transport error", log: "more than \(config.maxBufferedBytes) bytes waiting for a poll")
            return false
        }
        if let ws {
            for p in packets { Self.write(p, to: ws) }
            return true
        }
        if let (responder, response) = release { responder.respond(response) }
        return !isClosed
    }

    private static func size(of packet: EngineIOPacket) -> Int {
        switch packet.payload {
        case .text(let s): return s.utf8.count + 1
        case .binary(let b): return b.count * 4 / 3 + 4
        }
    }

    private static func write(_ packet: EngineIOPacket, to ws: WebSocket) {
        switch packet.payload {
        case .text(let s): try? ws.send(String(packet.kind.rawValue) + s)
        case .binary(let b): try? ws.send(b)
        }
    }

    /// Under the lock: the pending poll and the answer carrying the queued packets.
    private func takePoll() -> (HTTPResponder, HTTPResponse)? {
        guard let poll, !outbox.isEmpty else { return nil }
        self.poll = nil
        let body = EngineIOPacket.encodePayload(outbox)
        outbox = []
        outboxBytes = 0
        return (poll.responder, Self.pollResponse(body).adding(poll.headers))
    }

    static func pollResponse(_ body: String) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; charset=UTF-8")], body: Array(body.utf8))
    }

    // MARK: Long-polling

    /// A GET: answered now when packets wait, else held until some arrive.
    func handlePoll(_ responder: HTTPResponder, headers: [(name: String, value: String)]) {
        enum Action { case answer(String), hold, overlap, gone }
        let action = lock.withLock { () -> Action in
            if closed { return .gone }
            guard case .polling = transport else { return .gone }
            if poll != nil { return .overlap }
            // During an upgrade the client only waits for its poll to come back.
            if probing != nil { return .answer(EngineIOPacket.encodePayload([EngineIOPacket(.noop)])) }
            if !outbox.isEmpty {
                let body = EngineIOPacket.encodePayload(outbox)
                outbox = []
                outboxBytes = 0
                return .answer(body)
            }
            poll = (responder, headers)
            return .hold
        }
        switch action {
        case .answer(let body):
            responder.respond(Self.pollResponse(body).adding(headers))
        case .hold:
            responder.onCancel { [weak self] in self?.pollCancelled(responder) }
        case .overlap:
            responder.respond(EngineIOErrors.response(.badRequest).adding(headers))
            close(reason: "transport error", log: "two polls at once")
        case .gone:
            responder.respond(EngineIOErrors.response(.unknownSession).adding(headers))
        }
    }

    private func pollCancelled(_ responder: HTTPResponder) {
        let current = lock.withLock { () -> Bool in
            guard poll?.responder === responder else { return false }
            poll = nil
            return true
        }
        // The client went away in the middle of a poll, as socket.io treats it.
        if current { close(reason: "transport close", log: nil) }
    }

    /// A POST: its packets, in order. Returns the response.
    func handlePost(_ body: [UInt8]) -> HTTPResponse {
        guard !isClosed else { return EngineIOErrors.response(.unknownSession) }
        guard body.count <= config.maxPayload else {
            close(reason: "transport error", log: "polling body of \(body.count) bytes exceeds maxPayload")
            return HTTPResponse.text("payload too large\n", status: 413)
        }
        let packets: [EngineIOPacket]
        do {
            guard let text = String(validating: body, as: UTF8.self) else {
                throw EngineIOPacket.DecodeError(reason: "polling body is not UTF-8")
            }
            packets = try EngineIOPacket.decodePayload(text)
        } catch {
            close(reason: "parse error", log: "bad polling body: \(error)")
            return EngineIOErrors.response(.badRequest)
        }
        for p in packets { receive(p) }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/html")], body: Array("ok".utf8))
    }

    // MARK: WebSocket

    /// A WebSocket carrying this session's id: the upgrade probe.
    func probe(_ ws: WebSocket) {
        let accepted = lock.withLock { () -> Bool in
            guard !closed, case .polling = transport, probing == nil else { return false }
            return true
        }
        guard accepted else { return ws.close(status: .policyViolation, reason: "bad upgrade") }
        ws.onmessage = { [weak self, weak ws] event in
            guard let self, let ws else { return }
            self.probeMessage(event.data, ws: ws)
        }
        ws.onclose = { [weak self, weak ws] _ in
            guard let self else { return }
            self.lock.withLock { if self.probing === ws { self.probing = nil } }
        }
    }

    private func probeMessage(_ message: Message, ws: WebSocket) {
        guard case .text(let text) = message, let packet = try? EngineIOPacket.decode(text: text) else {
            return ws.close(status: .protocolError, reason: "bad probe")
        }
        switch packet.kind {
        case .ping where packet.payload == .text("probe"):
            try? ws.send("3probe")
            // Release the pending poll so the client can pause polling.
            let held = lock.withLock { () -> (responder: HTTPResponder, headers: [(name: String, value: String)])? in
                probing = ws
                defer { poll = nil }
                return poll
            }
            held?.responder.respond(Self.pollResponse("6").adding(held?.headers ?? []))
            // A client that probes but never upgrades goes back to plain polling.
            let timeout = config.upgradeTimeout
            loop.scheduleTask(in: timeout) { [weak self, weak ws] () -> Void in
                guard let self, let ws else { return }
                let stale = self.lock.withLock { () -> Bool in
                    guard self.probing === ws else { return false }
                    self.probing = nil
                    return true
                }
                if stale { ws.close(status: .policyViolation, reason: "upgrade timed out") }
            }
        case .upgrade:
            let (ok, queued) = lock.withLock { () -> (Bool, [EngineIOPacket]) in
                guard !closed, probing === ws else { return (false, []) }
                probing = nil
                transport = .websocket(ws)
                defer { outbox = []; outboxBytes = 0 }
                return (true, outbox)
            }
            guard ok else { return ws.close(status: .policyViolation, reason: "bad upgrade") }
            attach(ws)
            for p in queued { Self.write(p, to: ws) }
        default:
            ws.close(status: .protocolError, reason: "unexpected packet during the upgrade")
        }
    }

    /// The WebSocket is the transport from now on.
    private func attach(_ ws: WebSocket) {
        let maxPayload = config.maxPayload
        ws.onmessage = { [weak self, weak ws] event in
            guard let self else { return }
            switch event.data {
            case .text(let text):
                guard text.utf8.count <= maxPayload else { return self.tooLarge(ws) }
                do {
                    self.receive(try EngineIOPacket.decode(text: text))
                } catch {
                    self.close(reason: "parse error", log: "bad packet: \(error)")
                }
            case .binary(let bytes):
                guard bytes.count <= maxPayload else { return self.tooLarge(ws) }
                self.receive(EngineIOPacket.decode(binary: bytes))
            }
        }
        ws.onclose = { [weak self] _ in self?.close(reason: "transport close", log: nil) }
        ws.onerror = { [weak self] event in self?.config.logger.debug("session \(self?.id ?? ""): \(event.error)") }
    }

    private func tooLarge(_ ws: WebSocket?) {
        ws?.close(status: .messageTooBig, reason: "message exceeds maxPayload")
        close(reason: "transport error", log: "message exceeds maxPayload (\(config.maxPayload) bytes)")
    }

    // MARK: Packets and heartbeat

    private func receive(_ packet: EngineIOPacket) {
        switch packet.kind {
        case .message: onMessage?(packet.payload)
        case .pong: pongReceived()
        case .close: close(reason: "transport close", log: nil)
        case .noop, .ping: break
        case .open, .upgrade: close(reason: "parse error", log: "unexpected \(packet.kind) packet")
        }
    }

    private func schedulePing() {
        let interval = config.pingInterval
        let timer = loop.scheduleTask(in: interval) { [weak self] () -> Void in self?.ping() }
        lock.withLock { if closed { timer.cancel() } else { pingTimer = timer } }
    }

    private func ping() {
        let timeout = config.pingTimeout
        let timer = loop.scheduleTask(in: timeout) { [weak self] () -> Void in
            self?.close(reason: "ping timeout", log: "no pong within \(timeout)")
        }
        lock.withLock { if closed { timer.cancel() } else { pongTimer = timer } }
        send([EngineIOPacket(.ping)])
    }

    private func pongReceived() {
        let waiting = lock.withLock { () -> Bool in
            guard let t = pongTimer else { return false }
            t.cancel()
            pongTimer = nil
            return true
        }
        if waiting { schedulePing() }
    }

    // MARK: Closing

    /// Ends the session once: a held poll gets the close packet, a WebSocket closes,
    /// and `onClose` runs with the reason.
    func close(reason: String, log: String?) {
        let state = lock.withLock { () -> ((responder: HTTPResponder, headers: [(name: String, value: String)])?, WebSocket?, WebSocket?)? in
            guard !closed else { return nil }
            closed = true
            pingTimer?.cancel()
            pongTimer?.cancel()
            var ws: WebSocket?
            if case .websocket(let w) = transport { ws = w }
            defer { poll = nil; probing = nil; outbox = []; outboxBytes = 0 }
            return (poll, ws, probing)
        }
        guard let (poll, ws, probing) = state else { return }
        if let log { config.logger.info("closing session \(id): \(log)") }
        // At shutdown the client should come back (to this address's next server): the
        // transport just ends, as with socket.io. Otherwise it gets a close packet,
        // which tells clients not to reconnect on their own.
        let shutdown = reason == "server shutting down"
        if shutdown {
            poll?.responder.respond(HTTPResponse.text("shutting down\n", status: 503).adding(poll?.headers ?? []))
        } else {
            poll?.responder.respond(Self.pollResponse(EngineIOPacket.encodePayload([EngineIOPacket(.close)])).adding(poll?.headers ?? []))
        }
        if let ws, ws.readyState == .open {
            if reason == "forced close" { try? ws.send("1") }
            ws.close(status: shutdown ? .goingAway : .normalClosure)
        }
        if let probing, probing.readyState == .open { try? probing.close() }
        onClose?(reason)
    }
}

extension HTTPResponse {
    /// The response with extra headers (CORS, cookies).
    func adding(_ extra: [(name: String, value: String)]) -> HTTPResponse {
        var copy = self
        copy.headers += extra
        return copy
    }
}
