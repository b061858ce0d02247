import NIOCore
import NIOPosix
import NIOSSL
import WebSocketFraming

/// Opens a client connection: TCP (and TLS for wss://), the upgrade request, the checks
/// of the server's answer, then hands the channel to a `WebSocketHandler`.
enum ClientConnector {
    static func start(socket: WebSocket, protocols: [String], configuration: ClientConfiguration) {
        let eventLoop = socket.eventLoop
        let url: WebSocketURL
        do {
            url = try WebSocketURL(socket.url)
            if let bad = protocols.first(where: { !Handshake.isToken($0) }) ?? (Set(protocols).count != protocols.count ? "duplicate" : nil) {
                throw WebSocketError.syntax("invalid subprotocol list (\(bad))")
            }
        } catch {
            eventLoop.execute { socket.didFail(error as? WebSocketError ?? .invalidURL(socket.url), code: 1006) }
            return
        }
        let key = Handshake.generateKey()
        let sslContext: NIOSSLContext?
        do { sslContext = url.secure ? try NIOSSLContext(configuration: configuration.tls) : nil } catch {
            eventLoop.execute { socket.didFail(.connectFailed("TLS configuration: \(error)"), code: 1006) }
            return
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Known from here on, so close() while connecting can cancel it.
                    socket.pendingChannel = channel
                    if socket.readyState != .connecting { throw ChannelError.ioOnClosedChannel }
                    if let sslContext {
                        let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: url.isIPLiteral ? nil : url.host)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    let handshake = ClientHandshakeHandler(
                        socket: socket, url: url, key: key, protocols: protocols, configuration: configuration)
                    try channel.pipeline.syncOperations.addHandler(handshake)
                }
            }
        bootstrap.connect(host: url.host, port: url.port).whenFailure { error in
            socket.didFail(.connectFailed("\(error)"), code: 1006)
        }
    }
}

/// Writes the upgrade request, reads the response head, validates it and swaps itself
/// for a `WebSocketHandler`, passing on any bytes that came after the head.
final class ClientHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let socket: WebSocket
    private let url: WebSocketURL
    private let key: String
    private let protocols: [String]
    private let configuration: ClientConfiguration
    private var received: ByteBuffer?
    private var finished = false
    private var timeout: Scheduled<Void>?

    init(socket: WebSocket, url: WebSocketURL, key: String, protocols: [String], configuration: ClientConfiguration) {
        self.socket = socket
        self.url = url
        self.key = key
        self.protocols = protocols
        self.configuration = configuration
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Connecting, TLS and the upgrade together must fit in the connect timeout.
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.connectTimeout) { [weak self] in
            guard let self, !self.finished else { return }
            self.finished = true
            self.socket.didFail(.timeout("opening handshake took longer than \(self.configuration.connectTimeout)"), code: 1006)
            context.close(promise: nil)
        }
        if context.channel.isActive { sendRequest(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timeout?.cancel() }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context)
        context.fireChannelActive()
    }

    private var requestSent = false

    private func sendRequest(_ context: ChannelHandlerContext) {
        guard !requestSent else { return }
        requestSent = true
        var request = "GET \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if !protocols.isEmpty { request += "Sec-WebSocket-Protocol: \(protocols.joined(separator: ", "))\r\n" }
        if let offer = configuration.deflate { request += "Sec-WebSocket-Extensions: \(offer.extensionOffer)\r\n" }
        for (name, value) in configuration.headers where HTTPHead.isSafe(name: name, value: value) {
            request += "\(name): \(value)\r\n"
        }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        var chunk = unwrapInboundIn(data)
        if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
        guard let buffer = received else { return }
        switch HTTPHead.parse(buffer, maxSize: configuration.maxResponseHeaderSize) {
        case .incomplete:
            return
        case .invalid(let why):
            fail(context, .handshakeFailed(HandshakeError(status: 0, reason: why)))
        case .complete(let head, let headLength):
            var rest = buffer
            rest.moveReaderIndex(forwardBy: headLength)
            accept(context, head: head, leftover: rest)
        }
    }

    private func accept(_ context: ChannelHandlerContext, head: HTTPHead, leftover: ByteBuffer) {
        let chosen: (protocol: String?, extensions: [ExtensionOffer])
        do {
            chosen = try Handshake.validateUpgradeResponse(
                status: head.status, headers: head.headers, key: key, offeredProtocols: protocols,
                offeredExtensions: configuration.deflate == nil ? [] : [PerMessageDeflate.name])
        } catch {
            return fail(context, .handshakeFailed(error))
        }
        var deflate: DeflateParameters?
        if let response = chosen.extensions.first(where: { $0.name == PerMessageDeflate.name }), let offer = configuration.deflate {
            do { deflate = try PerMessageDeflate.accept(response: response, offer: offer) } catch {
                // RFC 7692 §7.1: an unacceptable answer fails the connection with 1010.
                finished = true
                timeout?.cancel()
                let writer = FrameWriter(role: .client)
                if let frame = try? writer.frame(opcode: .close, payload: ClosePayload.encode(code: .mandatoryExtension)) {
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame)), promise: nil)
                }
                socket.didFail(.extensionNegotiationFailed(error.reason), code: 1010)
                context.close(promise: nil)
                return
            }
        }
        finished = true
        timeout?.cancel()
        let extensions = ExtensionOffer.format(chosen.extensions)
        let handler = WebSocketHandler(
            socket: socket, role: .client, deflate: deflate, protocol: chosen.protocol ?? "", extensions: extensions)
        let pipeline = context.pipeline
        do {
            try pipeline.syncOperations.addHandler(handler, position: .after(self))
        } catch {
            socket.didFail(.aborted("pipeline: \(error)"), code: 1006)
            context.close(promise: nil)
            return
        }
        if leftover.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(leftover)) }
        received = nil
        pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    typealias InboundOut = ByteBuffer

    private func fail(_ context: ChannelHandlerContext, _ error: WebSocketError) {
        guard !finished else { return }
        finished = true
        timeout?.cancel()
        socket.didFail(error, code: 1006)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished { fail(context, .handshakeFailed(HandshakeError(status: 0, reason: "connection closed during the handshake"))) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context, .connectFailed("\(error)"))
    }
}
