import Logging
import NIOCore
import NIOSSL
@_exported import WebSocketFraming

/// What an open connection does when a callback sender queues more than
/// `maxBufferedBytes` (async senders wait instead).
public enum OverflowPolicy: Sendable, Hashable {
    /// Close with 1008 (policy violation).
    case closePolicyViolation
    /// Close with 1013 (try again later).
    case closeTryAgainLater
    /// Drop each message that would take the queue past the limit (all its frames, so
    /// the stream stays valid); the connection stays open and later messages go out once
    /// the peer catches up. Suits feeds where a late message is worth less than a gap.
    case dropMessages
    /// Keep queueing (memory grows with a reader that never reads).
    case unbounded
}

/// Limits and timers of an open WebSocket connection, shared by clients and servers.
/// Every default is listed in the README.
public struct ConnectionConfiguration: Sendable {
    /// Largest frame accepted (default 16 MiB); larger ones close with 1009.
    public var maxFrameSize = 16 << 20
    /// Largest message accepted, after decompression (default 16 MiB); larger ones close with 1009.
    public var maxMessageSize = 16 << 20
    /// Most frames one received message may come in (default 65536); more close with 1009.
    /// Bounds the work a peer can cause with empty or tiny continuation frames, which never
    /// reach `maxMessageSize`.
    public var maxFragmentsPerMessage = 1 << 16
    /// Outgoing messages above this are sent as fragments of this size (default 1 MiB).
    public var fragmentSize = 1 << 20
    /// Interval between keepalive pings (default 20 s; nil turns them off).
    public var pingInterval: TimeAmount? = .seconds(20)
    /// How long a ping may go unanswered before the connection closes with 1011 (default 20 s).
    public var pingTimeout: TimeAmount = .seconds(20)
    /// Close with 1001 after this long without receiving anything (default nil: off).
    public var idleTimeout: TimeAmount?
    /// How long to wait for the peer's close frame, then for TCP to close (default 10 s).
    public var closeTimeout: TimeAmount = .seconds(10)
    /// Outbound bytes queued before async senders wait (default 1 MiB).
    public var highWaterMark = 1 << 20
    /// Async senders resume once the queue drains below this (default 256 KiB).
    public var lowWaterMark = 256 << 10
    /// Bytes queued before callback senders trip `overflowPolicy` (default 16 MiB).
    public var maxBufferedBytes = 16 << 20
    /// What happens past `maxBufferedBytes` (default close with 1008).
    public var overflowPolicy = OverflowPolicy.closePolicyViolation
    /// How this side compresses (level, memLevel, threshold).
    public var deflateSettings = DeflateSettings()
    /// Received messages queued for an async reader before reading from the socket pauses (default 64).
    public var inboundMessageQueue = 64
    /// Where the library logs (default: a logger labelled "websockets").
    public var logger = Logger(label: "websockets")

    /// Creates the default configuration.
    public init() {}
}

/// Settings of a `WebSocketServer`.
public struct ServerConfiguration: Sendable {
    /// The connection limits and timers.
    public var connection = ConnectionConfiguration()
    /// Largest request head (request line and headers) accepted (default 16 KiB); larger ones get 431.
    public var maxRequestHeaderSize = 16 << 10
    /// Largest plain-HTTP request body accepted (default 1 MiB); larger ones get 413.
    public var maxRequestBodySize = 1 << 20
    /// A client must finish its request (and the upgrade) within this (default 10 s).
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// Browser origins allowed to connect; nil allows all (default). Others get 403.
    public var allowedOrigins: Set<String>?
    /// permessage-deflate policy (default: on, server window 15, context takeover).
    public var deflate = DeflateServerPolicy()
    /// LEGACY: accept the draft-76 ("hixie-76") handshake and framing (default off).
    public var acceptsLegacyDraft76 = false
    /// TLS for wss:// (default nil: plain TCP).
    public var tls: TLSConfiguration?

    /// Creates the default configuration.
    public init() {}
}

/// Settings of a client `WebSocket`.
public struct ClientConfiguration: Sendable {
    /// The connection limits and timers.
    public var connection = ConnectionConfiguration()
    /// Connecting, TLS and the upgrade must finish within this (default 10 s).
    public var connectTimeout: TimeAmount = .seconds(10)
    /// Extra request headers (Authorization, cookies...).
    public var headers: [(name: String, value: String)] = []
    /// permessage-deflate offer, or nil for none (default: offer, as browsers do).
    public var deflate: DeflateClientOffer? = DeflateClientOffer()
    /// TLS settings for wss:// (default: system trust roots, full verification).
    public var tls = TLSConfiguration.makeClientConfiguration()
    /// Largest response head accepted (default 16 KiB).
    public var maxResponseHeaderSize = 16 << 10

    /// Creates the default configuration.
    public init() {}
}
