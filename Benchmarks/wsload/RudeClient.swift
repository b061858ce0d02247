import NIOCore
import NIOPosix

/// Clients that leave badly, for the churn scenario: the server must clean up after them
/// as well as after polite ones. Kind `i % 5`:
/// 0 connects and closes without a word; 1 sends half an upgrade request and closes;
/// 2 upgrades, then drops TCP without a close frame; 3 upgrades, sends half a frame and
/// resets the connection (RST through SO_LINGER 0); 4 sends the whole upgrade request and
/// resets at once, so the server upgrades a connection that is already gone.
enum RudeClient {
    static let request = Array((
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8)

    /// Waits for the end of the response head, then completes.
    private final class HeadWaiter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let done: EventLoopPromise<Void>
        var seen: [UInt8] = []
        var finished = false
        init(done: EventLoopPromise<Void>) { self.done = done }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            guard !finished else { return }
            seen += buffer.readBytes(length: buffer.readableBytes) ?? []
            if seen.count >= 4, (0...(seen.count - 4)).contains(where: { seen[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) }) {
                finished = true
                done.succeed(())
            } else if seen.count > 4096 {
                finished = true
                done.fail(LoadFailure("response head too long"))
            }
        }
        func channelInactive(context: ChannelHandlerContext) {
            if !finished { done.fail(LoadFailure("closed before the response")) }
            finished = true
        }
    }

    /// SO_LINGER with a zero timeout: close() then sends RST instead of FIN.
    static func resetOnClose(_ channel: Channel) async throws {
        guard let provider = channel as? SocketOptionProvider else { throw LoadFailure("no socket options") }
        try await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
    }

    static func run(port: Int, kind: Int) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let head = loop.makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(HeadWaiter(done: head)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        switch kind % 5 {
        case 0:
            break
        case 1:
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: request.prefix(40))).get()
        case 2:
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: request)).get()
            try await head.futureResult.get()
        case 3:
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: request)).get()
            try await head.futureResult.get()
            // A masked text frame header announcing 100 bytes, then only 6 of them.
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: [0x81, 0x80 | 100, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9])).get()
            try await resetOnClose(channel)
        default:
            try await resetOnClose(channel)
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: request)).get()
        }
        try await channel.close().get()
    }
}
