import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// How a Socket.IO client connects, reconnects and buffers. The defaults are
/// socket.io-client 4.x's: polling first, then an upgrade to WebSocket; reconnection
/// without an attempt limit, 1 s first delay doubling up to 5 s, ±50 % jitter.
public struct SocketIOClientOptions: Sendable {
    /// An Engine.IO transport.
    /// The Engine.IO transports (the same type the server uses).
    public typealias Transport = EngineIOTransport

    /// The Engine.IO endpoint path on the server.
    public var path = "/socket.io/"
    /// Extra query parameters added to every Engine.IO request (after those of the URL).
    public var query: [(name: String, value: String)] = []
    /// Extra HTTP headers on every polling request and on the WebSocket handshake.
    public var extraHeaders: [(name: String, value: String)] = []
    /// The transports to use, in order: the first opens the connection. With
    /// `[.polling, .websocket]` the client opens with long-polling and upgrades to
    /// WebSocket when the server offers it; `[.websocket]` connects with WebSocket only.
    public var transports: [Transport] = [.polling, .websocket]
    /// Whether to try the upgrade from polling to WebSocket.
    public var upgrade = true
    /// The auth payload sent in every namespace CONNECT packet (a JSON object, or nil).
    public var auth: JSONValue?
    /// Whether `io(...)` and `SocketIOClient(host:port:)` connect right away. Handlers
    /// registered right after creation can, in principle, race a very fast connection;
    /// set this to false and call `connect()` after registering them to rule that out.
    public var autoConnect = true

    /// Whether to reconnect automatically after the connection was lost.
    public var reconnection = true
    /// How many reconnection attempts before giving up (`reconnect_failed`); nil: no limit.
    public var reconnectionAttempts: Int?
    /// The first reconnection delay, doubled after every failed attempt.
    public var reconnectionDelay: TimeAmount = .seconds(1)
    /// The largest reconnection delay.
    public var reconnectionDelayMax: TimeAmount = .seconds(5)
    /// The jitter: each delay is moved by up to this fraction of itself, up or down.
    public var randomizationFactor = 0.5
    /// How long one connection attempt (Engine.IO handshake) may take.
    public var timeout: TimeAmount = .seconds(20)

    /// How many emits are kept while the namespace is not connected; they are sent in
    /// order once it connects. When the buffer is full, `emit` returns false, logs a
    /// warning, and drops the event (its ack, if any, gets `.failure(.disconnected)`).
    public var maxBufferedEmits = 1000
    /// The acknowledgement timeout of emits that do not give one; nil waits until the
    /// connection closes.
    public var ackTimeout: TimeAmount?
    /// The largest message (WebSocket) or polling response body accepted from the server;
    /// larger ones close the connection with "transport error".
    public var maxMessageSize = 16 << 20
    /// How long an HTTP request (polling) may take beyond the heartbeat period before
    /// the transport is considered broken.
    public var requestTimeoutMargin: TimeAmount = .seconds(10)

    /// TLS settings for `https`/`wss` URLs.
    public var tls = TLSConfiguration.makeClientConfiguration()
    /// Offers permessage-deflate on the WebSocket transport.
    public var webSocketCompression = true
    /// The event loops the connection runs on (one loop per manager is picked).
    public var eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    /// Where the client logs dropped emits, protocol errors and reconnections.
    public var logger = Logger(label: "socketio.client")

    /// Default options.
    public init() {}
}
