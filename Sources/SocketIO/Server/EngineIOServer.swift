import NIOConcurrencyHelpers
import WebSockets

/// The Engine.IO v4 endpoint: handshakes on either transport, routes polls, posts and
/// upgrade probes to their sessions, and applies origin checks and CORS.
final class EngineIOServer: @unchecked Sendable {
    let config: SocketIOServerConfiguration
    private let lock = NIOLock()
    private var sessions: [String: EngineIOSession] = [:]
    private var shuttingDown = false
    /// Called with each new session before it starts (set it before mounting).
    var onSession: (@Sendable (EngineIOSession) -> Void)?

    init(config: SocketIOServerConfiguration) {
        self.config = config
    }

    /// The route to mount on a WebSocketServer.
    var route: ServerRoute {
        ServerRoute(
            pathPrefix: config.path,
            http: { [self] request, responder in http(request, responder) },
            authenticate: { [self] request in refuseUpgrade(request) },
            onconnection: { [self] ws, request in websocket(ws, request) })
    }

    var sessionCount: Int { lock.withLock { sessions.count } }

    // MARK: Requests

    private struct Query {
        let fields: [String: String]
        var eio: String? { fields["EIO"] }
        var transport: EngineIOTransport? { fields["transport"].flatMap(EngineIOTransport.init(rawValue:)) }
        var sid: String? { fields["sid"] }
    }

    /// Checks common to both transports; nil when the request may go on.
    private func check(_ request: HTTPRequest, _ query: Query) -> EngineIOErrors? {
        guard query.eio == "4" else { return .unsupportedVersion }
        guard let transport = query.transport, config.transports.contains(transport) else { return .unknownTransport }
        guard originAllowed(request) else { return .forbidden }
        return nil
    }

    private func originAllowed(_ request: HTTPRequest) -> Bool {
        guard let allowed = config.allowedOrigins, let origin = request.header("Origin") else { return true }
        return allowed.contains("*") || allowed.contains(origin)
    }

    /// CORS headers for an allowed cross-origin request.
    private func corsHeaders(_ request: HTTPRequest) -> [(name: String, value: String)] {
        guard config.allowedOrigins != nil, originAllowed(request) else { return [] }
        let origin = request.header("Origin") ?? "*"
        var headers: [(name: String, value: String)] = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if origin != "*" { headers.append(("Access-Control-Allow-Credentials", "true")) }
        return headers
    }

    private func http(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let query = Query(fields: QueryString.parse(request.query))
        let cors = corsHeaders(request)
        if request.method == "OPTIONS" {
            var headers = cors + [("Access-Control-Allow-Methods", "GET, POST, OPTIONS")]
            if let asked = request.header("Access-Control-Request-Headers") {
                headers.append(("Access-Control-Allow-Headers", asked))
            }
            responder.respond(HTTPResponse(status: 204, headers: headers))
            return
        }
        if let error = check(request, query) {
            responder.respond(EngineIOErrors.response(error).adding(cors))
            return
        }
        guard query.transport == .polling else {
            // A plain GET on the WebSocket transport: it must be an upgrade.
            responder.respond(EngineIOErrors.response(.badRequest).adding(cors))
            return
        }
        guard let sid = query.sid else {
            guard request.method == "GET" else {
                responder.respond(EngineIOErrors.response(.badHandshakeMethod).adding(cors))
                return
            }
            return handshakePolling(request, responder, cors: cors)
        }
        guard let session = lock.withLock({ sessions[sid] }) else {
            responder.respond(EngineIOErrors.response(.unknownSession).adding(cors))
            return
        }
        switch request.method {
        case "GET": session.handlePoll(responder, headers: cors)
        case "POST": responder.respond(session.handlePost(request.body).adding(cors))
        default: responder.respond(EngineIOErrors.response(.badRequest).adding(cors))
        }
    }

    private func handshakePolling(_ request: HTTPRequest, _ responder: HTTPResponder, cors: [(name: String, value: String)]) {
        guard let session = newSession(request, transport: .polling, websocket: nil) else {
            responder.respond(HTTPResponse.text("shutting down\n", status: 503))
            return
        }
        let upgrades = config.allowUpgrades && config.transports.contains(.websocket) ? ["websocket"] : []
        var headers = cors
        if let cookie = config.cookie {
            headers.append(("Set-Cookie", "\(cookie)=\(session.id); Path=/; HttpOnly; SameSite=Lax"))
        }
        let body = EngineIOPacket.encodePayload([session.openPacket(upgrades: upgrades)])
        responder.respond(EngineIOSession.pollResponse(body).adding(headers))
        session.start()
    }

    /// Refuses a WebSocket upgrade before it happens (bad version, transport, origin,
    /// unknown session).
    private func refuseUpgrade(_ request: HTTPRequest) -> HTTPResponse? {
        let query = Query(fields: QueryString.parse(request.query))
        if let error = check(request, query) { return EngineIOErrors.response(error) }
        guard query.transport == .websocket else { return EngineIOErrors.response(.unknownTransport) }
        if let sid = query.sid {
            guard config.allowUpgrades, let session = lock.withLock({ sessions[sid] }), !session.isClosed,
                  session.transportName == .polling
            else { return EngineIOErrors.response(.unknownSession) }
        }
        return nil
    }

    private func websocket(_ ws: WebSocket, _ request: HTTPRequest) {
        let query = Query(fields: QueryString.parse(request.query))
        if let sid = query.sid {
            guard let session = lock.withLock({ sessions[sid] }) else {
                return ws.close(status: .policyViolation, reason: "Session ID unknown")
            }
            return session.probe(ws)
        }
        guard let session = newSession(request, transport: .websocket, websocket: ws) else {
            return ws.close(status: .goingAway, reason: "server shutting down")
        }
        try? ws.send(session.openPacket(upgrades: []).webSocketText ?? "")
        session.start()
    }

    private func newSession(_ request: HTTPRequest, transport: EngineIOTransport, websocket: WebSocket?) -> EngineIOSession? {
        let session = EngineIOSession(id: SessionID.make(), request: request, transport: transport, websocket: websocket, config: config)
        let id = session.id
        onSession?(session)
        let previous = session.onClose
        session.onClose = { [weak self] reason in
            self?.lock.withLock { _ = self?.sessions.removeValue(forKey: id) }
            previous?(reason)
        }
        let accepted = lock.withLock { () -> Bool in
            guard !shuttingDown else { return false }
            sessions[id] = session
            return true
        }
        if !accepted { session.close(reason: "server shutting down", log: nil) }
        return accepted ? session : nil
    }

    /// Closes every session (server shutdown).
    func closeAll(reason: String) {
        let all = lock.withLock { () -> [EngineIOSession] in
            shuttingDown = true
            return Array(sessions.values)
        }
        for s in all { s.close(reason: reason, log: nil) }
    }
}

/// Random, unguessable, URL-safe session and socket ids (120 bits).
enum SessionID {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(decoding: (0..<20).map { _ in alphabet[Int(rng.next() & 63)] }, as: UTF8.self)
    }
}
