import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import WebSocketFraming

/// A WebSocket server that also answers plain HTTP on the same port, like the Node
/// example of the original design notes:
///
/// ```swift
/// let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 8080,
///     http: { _ in .html("<h1>Welcome to WebSockets</h1>") })
/// server.onconnection = { ws, request in ws.onmessage = { try? ws.send($0.data) } }
/// ```
public final class WebSocketServer: @unchecked Sendable {
    /// The bound address.
    public let host: String
    /// The bound port (the one picked when listening on port 0).
    public let port: Int
    /// The settings.
    public let configuration: ServerConfiguration

    private let lock = NIOLock()
    private var channel: Channel?
    private var hooks = Hooks()
    private var open: [ObjectIdentifier: WebSocket] = [:]
    /// Connections still speaking plain HTTP (closed at shutdown).
    private var httpChannels: [ObjectIdentifier: Channel] = [:]
    private var shuttingDown = false
    /// Which connections subscribe to which topics.
    let topics = TopicRegistry()
    /// Builds each published message's frames once.
    let fanoutEncoder: FanoutEncoder
    /// The optional Redis backing of the topics.
    private var backing: RedisTopicBacking?

    private struct Hooks {
        var onconnection: (@Sendable (WebSocket, HTTPRequest) -> Void)?
        var http: (@Sendable (HTTPRequest) -> HTTPResponse)?
        var authenticate: (@Sendable (HTTPRequest) -> HTTPResponse?)?
        var selectProtocol: (@Sendable ([String], HTTPRequest) -> String?)?
        var routes: [ServerRoute] = []
    }

    private init(host: String, port: Int, configuration: ServerConfiguration) {
        self.host = host
        self.port = port
        self.configuration = configuration
        fanoutEncoder = FanoutEncoder(configuration: configuration.connection)
    }

    /// Starts listening. Port 0 picks a free port (read it from `port`).
    /// - Parameters:
    ///   - http: answers plain HTTP requests (default: 426, this port speaks WebSocket).
    ///   - eventLoopGroup: the group to run on (default: NIO's shared singleton group).
    public static func listen(
        host: String = "127.0.0.1", port: Int = 0, configuration: ServerConfiguration = .init(),
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        http: (@Sendable (HTTPRequest) -> HTTPResponse)? = nil
    ) async throws -> WebSocketServer {
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let box = NIOLockedValueBox<WebSocketServer?>(nil)
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let server = box.withLockedValue({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try server.configure(channel, sslContext: sslContext)
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        let server = WebSocketServer(host: host, port: bound, configuration: configuration)
        server.channel = channel
        server.hooks.http = http
        box.withLockedValue { $0 = server }
        configuration.connection.logger.info("listening on \(host):\(bound)")
        return server
    }

    private func configure(_ channel: Channel, sslContext: NIOSSLContext?) throws {
        let id = ObjectIdentifier(channel)
        let accepted = lock.withLock { () -> Bool in
            if shuttingDown { return false }
            httpChannels[id] = channel
            return true
        }
        guard accepted else { throw ChannelError.ioOnClosedChannel }
        channel.closeFuture.whenComplete { [weak self] _ in self?.lock.withLock { _ = self?.httpChannels.removeValue(forKey: id) } }
        let ops = channel.pipeline.syncOperations
        if let sslContext { try ops.addHandler(NIOSSLServerHandler(context: sslContext)) }
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maxRequestHeaderSize
        limits.maxHeaderFieldSize = configuration.maxRequestHeaderSize
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits))
        let encoder = HTTPResponseEncoder()
        try ops.addHandler(decoder)
        try ops.addHandler(encoder)
        try ops.addHandler(ServerHTTPHandler(server: self, config: configuration, decoder: decoder, encoder: encoder))
    }

    // MARK: Hooks

    /// Called with every new connection, already open, and its upgrade request. Set
    /// `onmessage` and friends here.
    public var onconnection: (@Sendable (WebSocket, HTTPRequest) -> Void)? {
        get { lock.withLock { hooks.onconnection } }
        set { lock.withLock { hooks.onconnection = newValue } }
    }

    /// Decides on each upgrade request before it is accepted (after the origin check):
    /// return nil to accept, or the response to refuse with (401, 403...). Headers,
    /// path and query are in the request.
    public var authenticate: (@Sendable (HTTPRequest) -> HTTPResponse?)? {
        get { lock.withLock { hooks.authenticate } }
        set { lock.withLock { hooks.authenticate = newValue } }
    }

    /// Picks a subprotocol from the client's list (in its order of preference), or nil
    /// for none (default: none).
    public var selectProtocol: (@Sendable ([String], HTTPRequest) -> String?)? {
        get { lock.withLock { hooks.selectProtocol } }
        set { lock.withLock { hooks.selectProtocol = newValue } }
    }

    /// Hands every request whose path starts with `route.pathPrefix` to the route
    /// (plain HTTP and upgrades). A later route with the same prefix replaces the earlier.
    public func mount(_ route: ServerRoute) {
        lock.withLock {
            hooks.routes.removeAll { $0.pathPrefix == route.pathPrefix }
            hooks.routes.append(route)
            // Longest prefix first, so "/a/b/" wins over "/a/".
            hooks.routes.sort { $0.pathPrefix.count > $1.pathPrefix.count }
        }
    }

    /// The route serving a path, if one is mounted.
    func route(for path: String) -> ServerRoute? {
        lock.withLock { hooks.routes.first { path.hasPrefix($0.pathPrefix) } }
    }

    var isShuttingDown: Bool { lock.withLock { shuttingDown } }

    private func isPlainHTTP(_ channel: Channel) -> Bool {
        lock.withLock { httpChannels[ObjectIdentifier(channel)] != nil }
    }

    /// A connection left plain HTTP for WebSocket: it is tracked as a WebSocket from now on.
    func didUpgrade(_ channel: Channel) {
        lock.withLock { _ = httpChannels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func httpResponse(for request: HTTPRequest) -> HTTPResponse {
        if let http = lock.withLock({ hooks.http }) { return http(request) }
        return HTTPResponse(
            status: 426, headers: [("Upgrade", "websocket"), ("Content-Type", "text/plain")],
            body: Array("This port speaks WebSocket: send an upgrade request.\n".utf8))
    }

    func refusal(for request: HTTPRequest, origin: String?, route: ServerRoute? = nil) -> HTTPResponse? {
        if lock.withLock({ shuttingDown }) { return HTTPResponse.text("shutting down\n", status: 503) }
        if let allowed = configuration.allowedOrigins, !allowed.contains(origin ?? "") {
            return HTTPResponse.text("origin not allowed\n", status: 403)
        }
        if let route { return route.authenticate?(request) }
        return lock.withLock { hooks.authenticate }?(request)
    }

    func selectProtocol(_ offered: [String], _ request: HTTPRequest) -> String? {
        guard !offered.isEmpty, let select = lock.withLock({ hooks.selectProtocol }) else { return nil }
        let chosen = select(offered, request)
        return chosen.flatMap { offered.contains($0) ? $0 : nil }
    }

    /// Registers a connection about to open; `onconnection` runs once it is open (for
    /// draft-76, after the key body arrived).
    func willOpen(_ socket: WebSocket, request: HTTPRequest, route: ServerRoute? = nil) {
        let id = ObjectIdentifier(socket)
        lock.withLock { open[id] = socket }
        socket.onFinish = { [weak self] in
            self?.lock.withLock { _ = self?.open.removeValue(forKey: id) }
            self?.topics.drop(id)
        }
        socket.onOpened = { [weak self, weak socket] in
            guard let self, let socket else { return }
            let (hook, closing) = self.lock.withLock { (self.hooks.onconnection, self.shuttingDown) }
            let handler = route?.onconnection ?? hook
            handler?(socket, request)
            // Upgraded while shutdown began: the app still sees it open and close, and the
            // peer gets a proper goodbye instead of a dropped connection.
            if closing { socket.startClose(code: .goingAway, reason: "server shutting down") }
        }
    }

    /// The Redis backing of the topics, if connected.
    var redisBacking: RedisTopicBacking? { lock.withLock { backing } }

    func setRedisBackingIfNone(_ b: RedisTopicBacking) -> Bool {
        lock.withLock {
            if backing != nil || shuttingDown { return false }
            backing = b
            return true
        }
    }

    func takeRedisBacking() -> RedisTopicBacking? {
        lock.withLock {
            defer { backing = nil }
            return backing
        }
    }

    /// Open connections right now.
    public var connectionCount: Int { lock.withLock { open.count } }

    /// Graceful shutdown: stops accepting, closes idle plain-HTTP connections, sends 1001
    /// (going away) to every open WebSocket (also to one whose upgrade was under way),
    /// waits for them to close up to `deadline`, then drops the rest; returns once every
    /// connection is closed.
    public func shutdown(deadline: TimeAmount = .seconds(10)) async {
        let (channel, sockets) = lock.withLock { () -> (Channel?, [WebSocket]) in
            shuttingDown = true
            return (self.channel, Array(open.values))
        }
        try? await channel?.close()
        closePlainHTTPConnections()
        for s in sockets { s.startClose(code: .goingAway, reason: "server shutting down") }
        func busy() -> Bool { lock.withLock { !open.isEmpty || !httpChannels.isEmpty } }
        let start = NIODeadline.now()
        while busy() && NIODeadline.now() - start < deadline {
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
        for s in lock.withLock({ Array(open.values) }) { s.abort() }
        closePlainHTTPConnections()
        // Wait for the dropped ones to finish closing (bounded: closing a socket is quick).
        let hardStop = NIODeadline.now() + .seconds(2)
        while busy() && NIODeadline.now() < hardStop {
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        await disconnectTopicsFromRedis()
    }

    /// Closes connections still in plain HTTP, each on its own event loop: one that
    /// upgraded meanwhile has left `httpChannels` and gets the WebSocket goodbye instead.
    private func closePlainHTTPConnections() {
        for c in lock.withLock({ Array(httpChannels.values) }) {
            c.eventLoop.execute { [self] in if isPlainHTTP(c) { c.close(promise: nil) } }
        }
    }
}
