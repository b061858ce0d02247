import NIOCore
import WebSockets

// The WebSocket transport, opened directly (WebSocket-only) or as an upgrade of a
// polling session: probe with `2probe`, expect `3probe`, pause polling (the server
// answers the waiting GET with a noop), send `5`, and carry everything over the
// WebSocket from then on.
extension EngineIOClient {
    /// Settings of the WebSocket: Engine.IO has its own heartbeat, so no WebSocket pings.
    private var webSocketConfiguration: ClientConfiguration {
        var configuration = ClientConfiguration()
        configuration.connectTimeout = options.timeout
        configuration.headers = options.extraHeaders
        configuration.tls = options.tls
        configuration.deflate = options.webSocketCompression ? DeflateClientOffer() : nil
        configuration.connection.pingInterval = nil
        configuration.connection.maxMessageSize = options.maxMessageSize
        configuration.connection.maxFrameSize = options.maxMessageSize
        configuration.connection.logger = options.logger
        return configuration
    }

    private func makeWebSocket(sid: String?) -> WebSocket {
        let url = address.webSocketURL(path: options.path, sid: sid, extraQuery: options.query)
        // Passing our loop as the group keeps the socket's callbacks on it.
        let ws = WebSocket(url: url, configuration: webSocketConfiguration, eventLoopGroup: eventLoop)
        ws.onopen = { [weak self, weak ws] _ in
            guard let self, let ws else { return }
            self.eventLoop.preconditionInEventLoop()
            if self.probe === ws { self.probeOpened(ws) }
        }
        ws.onmessage = { [weak self, weak ws] event in
            guard let self, let ws else { return }
            self.webSocket(ws, received: event.data)
        }
        ws.onerror = { [weak self, weak ws] event in
            guard let self, let ws else { return }
            self.webSocket(ws, closed: "transport error", "\(event.error)")
        }
        ws.onclose = { [weak self, weak ws] event in
            guard let self, let ws else { return }
            self.webSocket(ws, closed: "transport close", "WebSocket closed with \(event.code) \(event.reason)")
        }
        return ws
    }

    /// WebSocket-only: the first message is the open packet.
    func openWebSocket() {
        setTransport(.websocket(makeWebSocket(sid: nil)))
    }

    private func isCurrent(_ ws: WebSocket) -> Bool {
        if case .websocket(let current) = current { return current === ws }
        return false
    }

    private func webSocket(_ ws: WebSocket, received message: Message) {
        if probe === ws { return probe(ws, answered: message) }
        guard isCurrent(ws) else { return }
        switch message {
        case .text(let text):
            do { handle(try EngineIOPacket.decode(text: text)) } catch {
                fail("parse error", "WebSocket message: \(error) in \(text.prefix(120))")
            }
        case .binary(let bytes):
            handle(EngineIOPacket.decode(binary: bytes))
        }
    }

    private func webSocket(_ ws: WebSocket, closed reason: String, _ detail: String) {
        if probe === ws {
            logger.debug("websocket upgrade failed", metadata: ["detail": "\(detail)"])
            return abandonProbe()
        }
        if isCurrent(ws) { fail(reason, detail) }
    }

    /// Sends the whole write buffer, one WebSocket message per packet.
    func sendOverWebSocket(_ ws: WebSocket) {
        let packets = writeBuffer
        writeBuffer = []
        do {
            for packet in packets {
                if let text = packet.webSocketText {
                    try ws.send(text)
                } else if case .binary(let bytes) = packet.payload {
                    try ws.send(bytes)
                }
            }
        } catch {
            return fail("transport error", "WebSocket send: \(error)")
        }
        if state == .closing { teardown("forced close", "closed by the client") }
    }

    // MARK: Upgrade

    func startProbe() {
        guard let handshake else { return }
        probe = makeWebSocket(sid: handshake.sid)
    }

    private func probeOpened(_ ws: WebSocket) {
        do { try ws.send("2probe") } catch { abandonProbe() }
    }

    private func probe(_ ws: WebSocket, answered message: Message) {
        guard state == .open, message == .text("3probe") else {
            logger.debug("websocket upgrade failed: unexpected probe answer")
            return abandonProbe()
        }
        // No more POSTs or GETs; switch once those in flight returned.
        upgrading = true
        completeUpgradeIfPaused()
    }

    /// Switches to the WebSocket once polling is paused (no GET or POST in flight).
    func completeUpgradeIfPaused() {
        guard upgrading, !polling, !posting, let ws = probe, state == .open else { return }
        probe = nil
        upgrading = false
        do { try ws.send("5") } catch {
            try? ws.close(code: 1000)
            return fail("transport error", "WebSocket upgrade: \(error)")
        }
        closePolling()
        setTransport(.websocket(ws))
        logger.debug("engine.io upgraded to websocket")
        flush()
    }

    /// Gives up an upgrade in progress; polling resumes if it was paused.
    func abandonProbe() {
        guard let ws = probe else { return }
        probe = nil
        try? ws.close(code: 1000)
        if upgrading {
            upgrading = false
            if state == .open {
                poll()
                flush()
            }
        }
    }
}
