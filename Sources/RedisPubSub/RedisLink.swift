import Logging
import NIOCore
import NIOPosix

/// Splits the byte stream into RESP values.
final class RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue
    private let parser: RESPParser

    init(parser: RESPParser) { self.parser = parser }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try parser.parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A reply cut short by the close is useless; the link reconnects.
        .needMoreData
    }
}

/// Hands each value, and the end of the connection, to the link.
final class RESPValueHandler: ChannelInboundHandler {
    typealias InboundIn = RESPValue
    private weak var link: RedisLink?

    init(link: RedisLink) { self.link = link }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link?.received(unwrapInboundIn(data), on: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link?.lost(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        link?.logger.warning("redis connection error: \(error)")
        context.close(promise: nil)
    }
}

/// One Redis connection that keeps itself up: connects, authenticates (AUTH) and
/// selects the database (SELECT), and after a failure or a lost connection retries
/// with exponential backoff (`minBackoff` doubling up to `maxBackoff`). Everything runs
/// on one event loop; the owner's callbacks are called there.
final class RedisLink: @unchecked Sendable {
    let configuration: RedisConfiguration
    let eventLoop: EventLoop
    let logger: Logger

    /// The connection is ready for commands (after AUTH and SELECT).
    var onReady: (() -> Void)?
    /// A value arrived after the handshake.
    var onValue: ((RESPValue) -> Void)?
    /// A ready connection was lost (a new one is on its way).
    var onDown: (() -> Void)?

    private var channel: Channel?
    private var handshakeLeft = 0
    private var handshakeTimer: Scheduled<Void>?
    private var failures = 0
    private var retry: Scheduled<Void>?
    private var closed = false
    private var flushScheduled = false
    /// Whether commands can be written now.
    private(set) var isReady = false

    init(configuration: RedisConfiguration, eventLoop: EventLoop, logger: Logger) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Starts connecting (call on the loop).
    func start() {
        eventLoop.assertInEventLoop()
        connect()
    }

    /// Writes a command's bytes; flushed once at the end of the event-loop tick, so a
    /// burst of commands costs one system call. Call on the loop, while ready.
    func write(_ bytes: ByteBuffer) {
        guard let channel, isReady else { return }
        channel.write(bytes, promise: nil)
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute { [self] in
            flushScheduled = false
            self.channel?.flush()
        }
    }

    /// Stops for good: no more retries; the connection closes.
    func close() -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        closed = true
        retry?.cancel()
        handshakeTimer?.cancel()
        guard let channel else { return eventLoop.makeSucceededVoidFuture() }
        channel.close(promise: nil)
        return channel.closeFuture
    }

    private func connect() {
        guard !closed, channel == nil else { return }
        let parser = configuration.parser
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let self else { throw ChannelError.ioOnClosedChannel }
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(ByteToMessageHandler(RESPDecoder(parser: parser)))
                    try ops.addHandler(RESPValueHandler(link: self))
                }
            }
        bootstrap.connect(host: configuration.host, port: configuration.port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                if closed {
                    channel.close(promise: nil)
                    return
                }
                self.channel = channel
                handshake(channel)
            case .failure(let error):
                logger.debug("cannot connect to redis at \(configuration.host):\(configuration.port): \(error)")
                scheduleRetry()
            }
        }
    }

    private func handshake(_ channel: Channel) {
        var commands: [[String]] = []
        if let password = configuration.password {
            commands.append(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if configuration.database != 0 { commands.append(["SELECT", String(configuration.database)]) }
        handshakeLeft = commands.count
        guard !commands.isEmpty else { return becomeReady() }
        var buffer = channel.allocator.buffer(capacity: 64)
        for c in commands { RESPEncoder.writeCommand(c.map { Array($0.utf8) }, into: &buffer) }
        channel.writeAndFlush(buffer, promise: nil)
        handshakeTimer = eventLoop.scheduleTask(in: configuration.connectTimeout) { [weak self] in
            guard let self, self.channel === channel, !self.isReady else { return }
            self.logger.warning("redis handshake timed out")
            channel.close(promise: nil)
        }
    }

    private func becomeReady() {
        handshakeTimer?.cancel()
        failures = 0
        isReady = true
        onReady?()
    }

    func received(_ value: RESPValue, on channel: Channel) {
        guard channel === self.channel else { return }
        if isReady {
            onValue?(value)
            return
        }
        if case .error(let message) = value {
            // A wrong password or database will not fix itself soon; keep retrying slowly.
            logger.error("redis refused the connection setup: \(message)")
            failures += 4
            channel.close(promise: nil)
            return
        }
        handshakeLeft -= 1
        if handshakeLeft == 0 { becomeReady() }
    }

    func lost(_ channel: Channel) {
        guard channel === self.channel else { return }
        self.channel = nil
        handshakeTimer?.cancel()
        let wasReady = isReady
        isReady = false
        if wasReady {
            logger.info("redis connection lost; reconnecting")
            onDown?()
        }
        scheduleRetry()
    }

    private func scheduleRetry() {
        guard !closed else { return }
        failures += 1
        retry = eventLoop.scheduleTask(in: configuration.backoff(after: failures)) { [weak self] in self?.connect() }
    }
}
