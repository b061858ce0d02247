import NIOConcurrencyHelpers

/// A path prefix of a `WebSocketServer` handled by another component instead of the
/// server's own hooks. Socket.IO mounts itself at `/socket.io/` this way, so one port
/// serves the application's pages, its WebSockets and Socket.IO.
public struct ServerRoute: Sendable {
    /// Requests whose path starts with this prefix go to this route ("/socket.io/").
    public var pathPrefix: String
    /// Answers a plain HTTP request, now or later (long-polling) through the responder.
    public var http: @Sendable (HTTPRequest, HTTPResponder) -> Void
    /// Decides on an upgrade request: nil accepts, a response refuses. Replaces the
    /// server's `authenticate` hook for this route (the origin check still applies).
    public var authenticate: (@Sendable (HTTPRequest) -> HTTPResponse?)?
    /// Receives each WebSocket opened on this route, instead of `onconnection`.
    public var onconnection: @Sendable (WebSocket, HTTPRequest) -> Void

    /// Creates a route.
    public init(pathPrefix: String,
                http: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void,
                authenticate: (@Sendable (HTTPRequest) -> HTTPResponse?)? = nil,
                onconnection: @escaping @Sendable (WebSocket, HTTPRequest) -> Void) {
        self.pathPrefix = pathPrefix
        self.http = http
        self.authenticate = authenticate
        self.onconnection = onconnection
    }
}

/// The answer to one plain HTTP request that may come later, from any thread: a
/// long-poll holds it until there is data. The connection reads no further request
/// until it is answered (HTTP/1.1 answers in order), and the handshake timeout does not
/// run meanwhile.
public final class HTTPResponder: @unchecked Sendable {
    private let lock = NIOLock()
    private var sender: (@Sendable (HTTPResponse) -> Void)?
    private var cancelHandler: (@Sendable () -> Void)?
    private var cancelled = false

    init(sender: @escaping @Sendable (HTTPResponse) -> Void) {
        self.sender = sender
    }

    /// Sends the response. Only the first call counts; returns false when the request
    /// was already answered or its connection is gone (the response is then dropped).
    @discardableResult
    public func respond(_ response: HTTPResponse) -> Bool {
        let send = lock.withLock { () -> (@Sendable (HTTPResponse) -> Void)? in
            defer { sender = nil; cancelHandler = nil }
            return cancelled ? nil : sender
        }
        guard let send else { return false }
        send(response)
        return true
    }

    /// True once the connection closed before the response was sent.
    public var isCancelled: Bool { lock.withLock { cancelled } }

    /// Called once if the connection closes before the response is sent (immediately
    /// if it already has).
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let now = lock.withLock { () -> Bool in
            if cancelled { return true }
            if sender != nil { cancelHandler = handler }
            return false
        }
        if now { handler() }
    }

    /// The connection closed: pending work is told once.
    func cancel() {
        let handler = lock.withLock { () -> (@Sendable () -> Void)? in
            guard sender != nil, !cancelled else { return nil }
            cancelled = true
            sender = nil
            defer { cancelHandler = nil }
            return cancelHandler
        }
        handler?()
    }
}
