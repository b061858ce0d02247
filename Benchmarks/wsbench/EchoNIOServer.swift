// The `nio` peer of the echo group: an echo server built the way NIOWebSocket's own
// example builds one. NIOHTTP1's server pipeline with `NIOWebSocketServerUpgrader`, which
// installs `WebSocketFrameDecoder` and `WebSocketFrameEncoder` after the 101, then a
// handler that echoes every data frame unmasked as a server frame (fragments stay
// fragments, so no aggregator is needed), answers pings and completes the close.
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Echoes frames as NIOWebSocket hands them over; one flush per read burst.
final class NIOEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var closing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text, .continuation:
            guard !closing else { return }
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(wrapOutboundOut(echo), promise: nil)
        case .ping:
            guard !closing else { return }
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            guard !closing else { return }
            closing = true
            // Echo the peer's status code, then close TCP once it is written.
            var payload = frame.unmaskedData
            let code = payload.readSlice(length: 2) ?? context.channel.allocator.buffer(capacity: 0)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code)))
                .whenComplete { _ in channel.close(promise: nil) }
        case .pong:
            break
        default:
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }
}

/// A listening NIOWebSocket echo server.
final class NIOEchoServer: Sendable {
    let port: Int
    private let channel: Channel

    private init(port: Int, channel: Channel) {
        self.port = port
        self.channel = channel
    }

    /// Listens on 127.0.0.1 at a free port; the listener and every connection run on `loop`.
    static func start(on loop: EventLoop) throws -> NIOEchoServer {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 20,
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(NIOEchoHandler()) }
            })
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
        let channel = try waitBounded(bootstrap.bind(host: "127.0.0.1", port: 0), seconds: 5, "binding the NIO server")
        guard let port = channel.localAddress?.port else { throw EchoError("NIO server has no port") }
        return NIOEchoServer(port: port, channel: channel)
    }

    /// Stops listening (connections were closed by their clients before).
    func stop() {
        _ = try? waitBounded(channel.close(), seconds: 2, "closing the NIO server")
    }
}
