import Logging
import NIOCore
import NIOPosix

/// Settings of a Socket.IO server; the defaults are socket.io 4.x's.
public struct SocketIOServerConfiguration: Sendable {
    /// The path prefix the server answers at (default "/socket.io/").
    public var path = "/socket.io/"
    /// The transports clients may use (default both; `[.websocket]` is WebSocket-only).
    public var transports: Set<EngineIOTransport> = [.polling, .websocket]
    /// Whether polling clients may upgrade to WebSocket (default true).
    public var allowUpgrades = true
    /// How long a client may take between its upgrade probe and the upgrade packet;
    /// after it the probe WebSocket is closed and polling goes on (default 10 s).
    public var upgradeTimeout: TimeAmount = .seconds(10)
    /// How often the server pings each client (default 25 s).
    public var pingInterval: TimeAmount = .seconds(25)
    /// How long a pong may take before the client counts as gone (default 20 s).
    public var pingTimeout: TimeAmount = .seconds(20)
    /// The largest packet or polling body a client may send, in bytes (default 1,000,000,
    /// as socket.io's maxHttpBufferSize). A larger one closes that client: polling gets
    /// 413, WebSocket the close code 1009.
    public var maxPayload = 1_000_000
    /// How long a client may stay without joining a namespace after its Engine.IO
    /// handshake (default 45 s).
    public var connectTimeout: TimeAmount = .seconds(45)
    /// Most bytes queued for a polling client that does not poll (default 8 MiB); past
    /// it the client is disconnected ("transport error") rather than growing memory.
    public var maxBufferedBytes = 8 << 20
    /// Origins allowed to connect (checked on polling and on the WebSocket upgrade;
    /// CORS headers are sent for them). nil: any origin and no CORS headers, as
    /// socket.io's default; ["*"]: any origin, with CORS headers.
    public var allowedOrigins: Set<String>?
    /// Name of a cookie carrying the session id, set on the handshake (default none).
    public var cookie: String?
    /// Where events go (default label "socketio").
    public var logger = Logger(label: "socketio")
    /// The event loop group running the heartbeat timers (default NIO's singleton).
    public var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// The defaults.
    public init() {}
}
