import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import WebSockets

/// What an Engine.IO client reports to its owner, always on its event loop.
struct EngineIOClientEvents: Sendable {
    /// The handshake completed: the connection is open.
    var onOpen: @Sendable (EngineIOHandshake) -> Void
    /// A message packet arrived (text, or binary).
    var onMessage: @Sendable (EngineIOPacket.Payload) -> Void
    /// The connection closed (once, also when it never opened): a socket.io reason
    /// ("transport close", "transport error", "ping timeout", "parse error", "forced
    /// close") and a detail for logs.
    var onClose: @Sendable (_ reason: String, _ detail: String) -> Void
}

/// An Engine.IO v4 client connection: opens with long-polling (or a WebSocket), upgrades
/// to WebSocket when the server offers it, answers the server's pings, detects a silent
/// server, and carries message packets both ways.
///
/// All state is confined to one event loop; the public entry points (`open`, `send`,
/// `close`) hop there, in call order. The polling and WebSocket parts live in
/// extensions in their own files.
final class EngineIOClient: @unchecked Sendable {
    enum State { case idle, opening, open, closing, closed }

    /// The transport carrying packets now.
    enum Current {
        case none
        case polling
        case websocket(WebSocket)
    }

    /// Most packets per POST: python-engineio refuses payloads of more than 16 packets.
    static let maxPacketsPerPost = 16

    let eventLoop: any EventLoop
    let address: ServerAddress
    let options: SocketIOClientOptions
    let events: EngineIOClientEvents
    var logger: Logger { options.logger }

    // Loop-confined state.
    var state = State.idle
    var handshake: EngineIOHandshake?
    var current = Current.none
    var writeBuffer: [EngineIOPacket] = []
    var pingTimer: Scheduled<Void>?
    var closeTimer: Scheduled<Void>?
    // Polling.
    var getConnection: PollingHTTPConnection?
    var postConnection: PollingHTTPConnection?
    var polling = false
    var posting = false
    // Upgrade: `probe` is the WebSocket being tried; once it answered the probe,
    // `upgrading` holds back POSTs until the GET and POST in flight returned.
    var probe: WebSocket?
    var upgrading = false
    /// Keeps the client alive while it closes on its own (its owner lets go at once).
    private var selfWhileClosing: EngineIOClient?

    /// The transport in use, readable from any thread (tests and diagnostics).
    private let transportBox = NIOLockedValueBox<SocketIOClientOptions.Transport?>(nil)
    var transport: SocketIOClientOptions.Transport? { transportBox.withLockedValue { $0 } }

    init(address: ServerAddress, options: SocketIOClientOptions, eventLoop: any EventLoop, events: EngineIOClientEvents) {
        self.address = address
        self.options = options
        self.eventLoop = eventLoop
        self.events = events
    }

    // MARK: Entry points (any thread)

    /// Starts the handshake with the first configured transport.
    func open() {
        eventLoop.execute { self.start() }
    }

    /// Queues message packets and sends them when the transport can.
    func send(_ payloads: [EngineIOPacket.Payload]) {
        eventLoop.execute {
            guard self.state == .open else { return }
            self.writeBuffer += payloads.map { EngineIOPacket(.message, $0) }
            self.flush()
        }
    }

    /// Sends what is queued and a close packet, then closes ("forced close").
    func close() {
        eventLoop.execute { self.closeByUser() }
    }

    // MARK: Lifecycle (on the loop)

    private func start() {
        guard state == .idle else { return }
        state = .opening
        switch options.transports.first ?? .polling {
        case .polling: startPolling()
        case .websocket: openWebSocket()
        }
    }

    /// Handles one decoded packet from either transport.
    func handle(_ packet: EngineIOPacket) {
        guard state == .opening || state == .open || state == .closing else { return }
        if handshake == nil && packet.kind != .open {
            return fail("parse error", "\(packet.kind) packet before the open packet")
        }
        switch packet.kind {
        case .open:
            guard state == .opening, case .text(let json) = packet.payload else {
                return fail("parse error", "unexpected open packet")
            }
            guard let handshake = EngineIOHandshake(json: json) else {
                return fail("parse error", "bad open packet: \(json.prefix(200))")
            }
            opened(handshake)
        case .ping:
            guard state == .open else { return }
            resetPingTimer()
            writeBuffer.append(EngineIOPacket(.pong, packet.payload))
            flush()
        case .message:
            if state == .open { events.onMessage(packet.payload) }
        case .close:
            teardown("transport close", "the server closed the session")
        case .noop, .pong, .upgrade:
            break
        }
    }

    private func opened(_ handshake: EngineIOHandshake) {
        self.handshake = handshake
        state = .open
        logger.debug("engine.io open", metadata: ["sid": "\(handshake.sid)", "transport": "\(transport?.rawValue ?? "")"])
        events.onOpen(handshake)
        guard state == .open else { return }
        resetPingTimer()
        flush()
        if case .polling = current, options.upgrade, options.transports.contains(.websocket),
           handshake.upgrades.contains("websocket") {
            startProbe()
        }
    }

    /// A server that neither pings nor answers within pingInterval + pingTimeout is gone.
    private func resetPingTimer() {
        pingTimer?.cancel()
        guard let handshake else { return }
        let limit = handshake.pingInterval + handshake.pingTimeout
        pingTimer = eventLoop.assumeIsolated().scheduleTask(in: limit) { [weak self] in
            self?.teardown("ping timeout", "no ping from the server within \(limit.nanoseconds / 1_000_000) ms")
        }
    }

    /// Sends the write buffer over the current transport, if it can take it now.
    func flush() {
        guard state == .open || state == .closing, !writeBuffer.isEmpty, !upgrading else { return }
        switch current {
        case .none: return
        case .polling: postBatch()
        case .websocket(let ws): sendOverWebSocket(ws)
        }
    }

    private func closeByUser() {
        switch state {
        case .idle, .closed:
            state = .closed
        case .opening:
            teardown("forced close", "closed while opening")
        case .open:
            abandonProbe()
            state = .closing
            selfWhileClosing = self
            writeBuffer.append(EngineIOPacket(.close))
            // Whatever is queued goes first; a stuck POST must not hold the close forever.
            closeTimer = eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { [weak self] in
                self?.teardown("forced close", "closed by the client")
            }
            flush()
            finishCloseIfDrained()
        case .closing:
            break
        }
    }

    /// Completes a client close once the close packet went out.
    func finishCloseIfDrained() {
        guard state == .closing, writeBuffer.isEmpty, !posting else { return }
        teardown("forced close", "closed by the client")
    }

    /// A transport or protocol failure.
    func fail(_ reason: String, _ detail: String) {
        guard state != .closed else { return }
        // While closing on our own initiative a failure only ends the close early.
        logger.log(level: state == .closing ? .debug : .info, "engine.io connection lost",
                   metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        teardown(reason, detail)
    }

    /// Releases everything and reports the close once.
    func teardown(_ reason: String, _ detail: String) {
        guard state != .closed else { return }
        state = .closed
        pingTimer?.cancel()
        closeTimer?.cancel()
        abandonProbe()
        closePolling()
        if case .websocket(let ws) = current { try? ws.close(code: 1000) }
        current = .none
        writeBuffer = []
        transportBox.withLockedValue { $0 = nil }
        events.onClose(reason, detail)
        selfWhileClosing = nil
    }

    /// Closes the polling connections (forgotten first: their failing requests are ignored).
    func closePolling() {
        let connections = [getConnection, postConnection]
        getConnection = nil
        postConnection = nil
        for connection in connections { connection?.close() }
    }

    /// Records the transport now in use.
    func setTransport(_ current: Current) {
        self.current = current
        let name: SocketIOClientOptions.Transport?
        switch current {
        case .none: name = nil
        case .polling: name = .polling
        case .websocket: name = .websocket
        }
        transportBox.withLockedValue { $0 = name }
    }
}
