import NIOCore
import WebSocketFraming

/// LEGACY draft-76 ("hixie-76") connection, opt-in through
/// `ServerConfiguration.acceptsLegacyDraft76`: reads the 8-byte key body, answers with
/// the MD5 challenge response, then speaks the draft's framing (text as `00 <UTF-8> FF`,
/// closing as `FF 00`). No masking, no binary messages, no pings.
final class Draft76Handler: ChannelInboundHandler, RemovableChannelHandler, SocketDriver {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let socket: WebSocket
    private let key1: String, key2: String
    private let origin: String?
    private let location: String
    private let chosenProtocol: String?
    private var context: ChannelHandlerContext?
    private var pending = ByteBuffer()
    private var open = false
    private var closing = false
    private var closeReceived = false
    private var closeTask: Scheduled<Void>?

    init(socket: WebSocket, key1: String, key2: String, origin: String?, location: String, protocol chosen: String?) {
        self.socket = socket
        self.key1 = key1
        self.key2 = key2
        self.origin = origin
        self.location = location
        chosenProtocol = chosen
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        socket.channel = context.channel
        // Closed before we joined the pipeline: no channelInactive will come (see
        // WebSocketHandler.handlerAdded).
        guard context.channel.isActive else {
            return socket.didFail(.aborted("connection dropped during the upgrade"), code: 1006)
        }
        // The 8-byte key body must follow the head promptly, like any handshake.
        closeTask = context.eventLoop.assumeIsolated().scheduleTask(in: socket.configuration.closeTimeout) { [weak self] in
            guard let self, !self.open else { return }
            self.context?.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeTask?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        pending.writeBuffer(&chunk)
        if !open {
            guard pending.readableBytes >= 8, let body = pending.readBytes(length: 8) else { return }
            guard let answer = Hixie76.response(key1: key1, key2: key2, body: body) else {
                return context.close(promise: nil)
            }
            var head = "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
            if let origin { head += "Sec-WebSocket-Origin: \(origin)\r\n" }
            head += "Sec-WebSocket-Location: \(location)\r\n"
            if let chosenProtocol { head += "Sec-WebSocket-Protocol: \(chosenProtocol)\r\n" }
            head += "\r\n"
            var out = context.channel.allocator.buffer(capacity: head.utf8.count + 16)
            out.writeString(head)
            out.writeBytes(answer)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            open = true
            closeTask?.cancel()
            closeTask = nil
            socket.didOpen(handler: self, protocol: chosenProtocol ?? "", extensions: "")
        }
        parseFrames(context)
    }

    /// Text frames `00 ... FF`; a frame starting with FF is the closing frame `FF 00`.
    private func parseFrames(_ context: ChannelHandlerContext) {
        let limit = socket.configuration.maxMessageSize
        while let type = pending.getInteger(at: pending.readerIndex, as: UInt8.self) {
            if type == 0x00 {
                let view = pending.readableBytesView.dropFirst()
                guard let end = view.firstIndex(of: 0xFF) else {
                    if pending.readableBytes > limit + 1 { return failTooBig(context) }
                    return
                }
                let length = end - view.startIndex
                if length > limit { return failTooBig(context) }
                pending.moveReaderIndex(forwardBy: 1)
                let bytes = pending.readBytes(length: length) ?? []
                pending.moveReaderIndex(forwardBy: 1)
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    return closeNow(context)
                }
                if !closing { _ = socket.deliver(.text(text)) }
            } else if type == 0xFF {
                guard pending.readableBytes >= 2 else { return }
                closeReceived = true
                pending.moveReaderIndex(forwardBy: 2)
                socket.markClosing()
                if !closing {
                    closing = true
                    context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0xFF, 0x00])), promise: nil)
                }
                return closeNow(context)
            } else {
                // Length-prefixed frames were never used by browsers: refuse them.
                return closeNow(context)
            }
        }
        pending.discardReadBytes()
    }

    private func failTooBig(_ context: ChannelHandlerContext) {
        socket.configuration.logger.debug("draft-76 frame larger than maxMessageSize")
        closeNow(context)
    }

    private func closeNow(_ context: ChannelHandlerContext) { context.close(promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        if !open {
            socket.didFail(.aborted("draft-76 handshake did not complete"), code: 1006)
        } else if closeReceived {
            socket.didClose(code: 1000, reason: "", wasClean: true)
        } else {
            socket.didFail(.aborted("connection dropped without a closing frame"), code: 1006)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    // MARK: SocketDriver

    func send(_ message: Message, size: Int, enforceLimit: Bool) {
        defer { socket.didWrite(size) }
        guard let context, !closing, case .text(let text) = message else { return }
        var out = context.channel.allocator.buffer(capacity: size + 2)
        out.writeInteger(UInt8(0x00))
        out.writeString(text)
        out.writeInteger(UInt8(0xFF))
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func close(code: CloseCode?, reason: String) {
        guard let context, !closing else { return }
        closing = true
        socket.markClosing()
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0xFF, 0x00])), promise: nil)
        closeTask = context.eventLoop.assumeIsolated().scheduleTask(in: socket.configuration.closeTimeout) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    func resumeReading() {}

    /// Never called: published messages reach draft-76 connections through `send`, as
    /// its framing differs from RFC 6455's shared frames.
    func sendEncoded(_ frames: ByteBuffer, size: Int) { socket.didWrite(size) }
}
