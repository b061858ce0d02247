import NIOConcurrencyHelpers
import NIOCore
import WebSockets

/// A Socket.IO v5 server (Engine.IO v4, long-polling and WebSocket) mounted on a
/// `WebSocketServer`, which keeps serving its own pages and WebSockets on the same port:
///
/// ```swift
/// let server = try await WebSocketServer.listen(port: 8080, http: { _ in .html("<h1>Hi</h1>") })
/// let io = SocketIOServer(attachingTo: server)
/// io.on("connection") { client in
///     client.on("message") { event in print("Message \(event) received from the client") }
///     client.on("disconnect") { print("client gone") }
/// }
/// ```
public final class SocketIOServer: @unchecked Sendable {
    /// The settings.
    public let configuration: SocketIOServerConfiguration
    private let engine: EngineIOServer
    private let lock = NIOLock()
    private var namespaces: [String: SocketIONamespace] = [:]
    private var dynamicNamespaces: (accept: @Sendable (String, JSONValue) -> Bool, setUp: @Sendable (SocketIONamespace) -> Void)?
    private var connections: [ObjectIdentifier: SocketIOServerConnection] = [:]
    let relay = BroadcastRelay()

    /// Mounts Socket.IO at `configuration.path` of `server`.
    public init(attachingTo server: WebSocketServer, configuration: SocketIOServerConfiguration = .init()) {
        self.configuration = configuration
        self.engine = EngineIOServer(config: configuration)
        namespaces["/"] = SocketIONamespace(name: "/", relay: relay)
        // Strong on purpose: the mount is permanent, so the WebSocketServer's route keeps
        // this object alive even if the caller drops its reference.
        engine.onSession = { [self] session in
            let connection = SocketIOServerConnection(session: session, server: self)
            self.lock.withLock { self.connections[ObjectIdentifier(connection)] = connection }
            connection.start()
        }
        server.mount(engine.route)
    }

    /// The main namespace "/".
    public var sockets: SocketIONamespace { of("/") }

    /// A namespace, created on first use.
    public func of(_ name: String) -> SocketIONamespace {
        let name = name.hasPrefix("/") ? name : "/" + name
        return lock.withLock {
            if let existing = namespaces[name] { return existing }
            let created = SocketIONamespace(name: name, relay: relay)
            namespaces[name] = created
            return created
        }
    }

    /// Lets clients join namespaces that were not declared with `of`, when `accept`
    /// returns true for the name and the CONNECT auth payload; `setUp` runs once for
    /// each namespace created this way (add its connection handler there).
    public func allowNamespaces(_ accept: @escaping @Sendable (String, JSONValue) -> Bool,
                                setUp: @escaping @Sendable (SocketIONamespace) -> Void) {
        lock.withLock { dynamicNamespaces = (accept, setUp) }
    }

    func namespace(named name: String, auth: JSONValue) -> SocketIONamespace? {
        let (existing, dynamic) = lock.withLock { (namespaces[name], dynamicNamespaces) }
        if let existing { return existing }
        guard let dynamic, name.hasPrefix("/"), dynamic.accept(name, auth) else { return nil }
        let (namespace, created) = lock.withLock { () -> (SocketIONamespace, Bool) in
            if let raced = namespaces[name] { return (raced, false) }
            let created = SocketIONamespace(name: name, relay: relay)
            namespaces[name] = created
            return (created, true)
        }
        if created { dynamic.setUp(namespace) }
        return namespace
    }

    /// The namespace if it exists (remote broadcasts never create one).
    func existingNamespace(_ name: String) -> SocketIONamespace? { lock.withLock { namespaces[name] } }

    func connectionClosed(_ connection: SocketIOServerConnection) {
        lock.withLock { _ = connections.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    /// Clients connected to the server now (Engine.IO sessions).
    public var clientCount: Int { lock.withLock { connections.count } }

    // MARK: The main namespace's API

    /// Calls `handler` with every socket joining "/" ("connection" or "connect").
    public func on(_ event: String, _ handler: @escaping @Sendable (SocketIOSocket) -> Void) { of("/").on(event, handler) }

    /// Adds a middleware to "/".
    public func use(_ middleware: @escaping SocketIONamespace.Middleware) { of("/").use(middleware) }

    /// Emits to every socket of "/".
    @discardableResult
    public func emit(_ event: String, _ args: JSONValue...) -> Bool { SocketIOBroadcast(namespace: of("/")).emit(event, with: args) }

    /// Emits to a room of "/".
    public func to(_ room: String) -> SocketIOBroadcast { of("/").to(room) }

    /// Emits to every socket of "/" not in `room`.
    public func except(_ room: String) -> SocketIOBroadcast { of("/").except(room) }

    /// Disconnects every client ("server shutting down") and refuses new ones. Clients
    /// see their transport close, so socket.io clients try to reconnect (to the next
    /// server on this address, say), as with socket.io's `close()`.
    public func close() {
        engine.closeAll(reason: "server shutting down")
    }
}
