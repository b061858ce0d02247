import NIOCore
import WebSocketFraming

extension ByteBuffer: FrameSink {
    /// Writes a frame straight into the buffer's spare capacity.
    public mutating func appendFrame(capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(FramingError) -> Int) throws(FramingError) {
        var failure: FramingError?
        writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { out in
            do throws(FramingError) { return try fill(UnsafeMutableRawBufferPointer(rebasing: out[..<capacity])) } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
    }
}

/// The protocol engine of one open connection, on its event loop: reads frames through
/// `MessageReader`, answers pings, runs the closing handshake and the keepalive, idle and
/// close timers, and writes frames, coalescing them into one flush per event-loop tick.
final class WebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler, SocketDriver {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let socket: WebSocket
    private let role: Role
    private let config: ConnectionConfiguration
    private let reader: MessageReader
    private let writer: MessageWriter
    private let openInfo: (protocol: String, extensions: String)
    private var context: ChannelHandlerContext?

    private var closeSent = false
    private var closeReceived: (code: UInt16, reason: String)?
    private var failure: (error: WebSocketError, code: UInt16)?
    private var flushPending = false
    private var readPaused = false
    private var readPending = false
    private var pingPayload: [UInt8]?
    private var pingCounter: UInt32 = 0
    private var pingTask: Scheduled<Void>?
    private var pingTimeoutTask: Scheduled<Void>?
    private var idleTask: Scheduled<Void>?
    private var closeTask: Scheduled<Void>?

    init(socket: WebSocket, role: Role, deflate: DeflateParameters?, protocol chosen: String, extensions: String) {
        self.socket = socket
        self.role = role
        config = socket.configuration
        // Directions without context takeover borrow zlib streams from the loop's pool.
        let pool = deflate == nil ? nil : SharedCodecs.pool(for: socket.eventLoop)
        reader = MessageReader(
            role: role, maxFrameSize: config.maxFrameSize, maxMessageSize: config.maxMessageSize,
            maxFragments: config.maxFragmentsPerMessage, deflate: deflate, pool: pool)
        writer = MessageWriter(role: role, deflate: deflate, settings: config.deflateSettings, pool: pool)
        openInfo = (chosen, extensions)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        socket.channel = context.channel
        // The peer can be gone already: a reset right after the upgrade request makes the
        // 101's write fail, which closes the channel before this handler joins it. No
        // channelInactive follows, so report the drop here (never open), or the connection
        // would stay in the server's count forever.
        guard context.channel.isActive else {
            socket.didFail(.aborted("connection dropped during the upgrade"), code: 1006)
            return
        }
        armPingTimer()
        armIdleTimer()
        socket.didOpen(handler: self, protocol: openInfo.protocol, extensions: openInfo.extensions)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    private func cancelTimers() {
        pingTask?.cancel()
        pingTimeoutTask?.cancel()
        idleTask?.cancel()
        closeTask?.cancel()
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        armIdleTimer()
        if closeReceived != nil && closeSent { return }  // nothing may follow the closing handshake
        reading = true
        defer {
            reading = false
            // channelReadComplete normally flushes first; this covers reads handed over
            // without one (bytes forwarded at the upgrade).
            if flushPending { context.eventLoop.assumeIsolated().execute { [weak self] in self?.flushNow() } }
        }
        do {
            try buffer.withUnsafeMutableReadableBytes { bytes in
                try reader.read(bytes) { event in try self.handle(event) }
            }
        } catch let error as FramingError {
            fail(.protocolViolation(error), code: error.closeCode)
        } catch StopReading.closed {
        } catch {
            fail(.aborted("\(error)"), code: .internalError)
        }
    }

    /// Thrown from the event callback to stop parsing after the closing handshake.
    private enum StopReading: Error { case closed }

    private func handle(_ event: WebSocketEvent) throws {
        switch event {
        case .message(let m):
            // Once either close frame is out, the connection is CLOSING: messages are dropped.
            if closeReceived != nil || closeSent { return }
            if !socket.deliver(m) { pauseReading() }
        case .ping(let payload):
            if closeSent { return }
            // A peer that pings but never reads must not grow our queue: while the socket
            // is not writable only the latest ping is answered (RFC 6455 §5.5.3 allows it).
            if let context, !context.channel.isWritable {
                pendingPong = payload
            } else {
                write { try self.writer.writeControl(.pong, payload: payload, into: &$0) }
            }
        case .pong(let payload):
            if payload == pingPayload {
                pingPayload = nil
                pingTimeoutTask?.cancel()
            }
        case .close(let code, let reason):
            closeReceived = (code.rawValue, reason)
            socket.markClosing()
            if !closeSent {
                // Echo the peer's code (none if it sent none), as RFC 6455 §5.5.1 asks.
                closeSent = true
                write { out in
                    if code == .noStatusReceived {
                        try self.writer.writeControl(.close, into: &out)
                    } else {
                        try self.writer.writeClose(code: code, into: &out)
                    }
                }
            }
            finishClosingHandshake()
            throw StopReading.closed
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushNow()
        context.fireChannelReadComplete()
    }

    /// Holds back reads while an async reader's queue is full (autoRead asks here).
    func read(context: ChannelHandlerContext) {
        if readPaused { readPending = true } else { context.read() }
    }

    func resumeReading() {
        readPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// Holds back reads for a full async queue. The keepalive stops meanwhile: the peer's
    /// pong would wait unread in the kernel and the connection would be killed for our own
    /// backpressure.
    private func pauseReading() {
        readPaused = true
        pingTimeoutTask?.cancel()
        pingPayload = nil
    }

    private var pendingPong: [UInt8]?

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let payload = pendingPong {
            pendingPong = nil
            write { try self.writer.writeControl(.pong, payload: payload, into: &$0) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if let failure {
            socket.didFail(failure.error, code: failure.code)
        } else if let received = closeReceived, closeSent {
            socket.didClose(code: received.code, reason: received.reason, wasClean: true)
        } else {
            socket.didFail(.aborted("connection dropped without a closing handshake"), code: 1006)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if failure == nil && closeReceived == nil {
            failure = (.aborted("\(error)"), 1006)
        }
        context.close(promise: nil)
    }

    // MARK: Writing

    /// Builds frames into the batch buffer; the batch goes out as one write and one
    /// flush at the end of the read burst or the event-loop tick (corking).
    private func write(accounting bytes: Int = 0, _ build: (inout ByteBuffer) throws -> Void) {
        guard let context else { return }
        var buffer = batch ?? context.channel.allocator.buffer(capacity: 1024)
        batch = nil
        let mark = buffer.writerIndex
        do {
            try build(&buffer)
        } catch {
            // Only our own settings can make this fail (a deflate level out of range): the
            // message is lost, so the connection cannot go on in step with the peer.
            buffer.moveWriterIndex(to: mark)
            batch = buffer
            socket.didWrite(bytes)
            config.logger.error("cannot write frame: \(error)")
            fail(.aborted("cannot write frame: \(error)"), code: .internalError)
            return
        }
        batch = buffer
        unflushedPayload += bytes
        scheduleFlush()
    }

    /// Frames waiting for the end of the tick.
    private var batch: ByteBuffer?
    /// Payload bytes in the batch, released from `bufferedAmount` once it reaches the socket.
    private var unflushedPayload = 0
    /// Inside channelRead, channelReadComplete flushes; otherwise a task at the end of the
    /// event-loop tick does. Either way, one flush per batch of frames.
    private var reading = false

    private func scheduleFlush() {
        guard !flushPending, let context else { return }
        flushPending = true
        if !reading { context.eventLoop.assumeIsolated().execute { [weak self] in self?.flushNow() } }
    }

    /// Writes and flushes the batch; `promise` (if any) completes once everything written
    /// so far reached the socket.
    private func flushNow(promise: EventLoopPromise<Void>? = nil) {
        guard let context, flushPending || promise != nil else { return }
        flushPending = false
        let buffer = batch ?? context.channel.allocator.buffer(capacity: 0)
        batch = nil
        var done = promise
        if unflushedPayload > 0 {
            let bytes = unflushedPayload
            unflushedPayload = 0
            let socket = self.socket
            let p = done ?? context.eventLoop.makePromise(of: Void.self)
            p.futureResult.whenComplete { _ in socket.didWrite(bytes) }
            done = p
        }
        if buffer.readableBytes > 0 || done != nil {
            context.write(wrapOutboundOut(buffer), promise: done)
        }
        context.flush()
    }

    func send(_ message: Message, size: Int, enforceLimit: Bool) {
        guard !closeSent, context != nil else {
            socket.didWrite(size)
            return
        }
        if enforceLimit && dropsOverLimit(size) { return }
        write(accounting: size) { out in try self.writer.write(message, fragmentSize: self.config.fragmentSize, into: &out) }
        if enforceLimit { applyOverflowPolicy(size) }
    }

    /// Frames built once for many connections (a published message): small ones are
    /// copied into the batch (one memcpy costs less than a write of their own); larger
    /// ones are written as the shared buffer itself, after the batch so far, so every
    /// subscriber's socket sends the same memory. Counted in `bufferedAmount` and subject
    /// to the overflow policy like `send`.
    func sendEncoded(_ frames: ByteBuffer, size: Int) {
        guard !closeSent, let context else {
            socket.didWrite(size)
            return
        }
        if dropsOverLimit(size) { return }
        if frames.readableBytes <= Self.copyLimit {
            var buffer = batch ?? context.channel.allocator.buffer(capacity: 1024)
            buffer.writeImmutableBuffer(frames)
            batch = buffer
        } else {
            if let pending = batch, pending.readableBytes > 0 {
                context.write(wrapOutboundOut(pending), promise: nil)
                batch = nil
            }
            context.write(wrapOutboundOut(frames), promise: nil)
        }
        unflushedPayload += size
        scheduleFlush()
        applyOverflowPolicy(size)
    }

    /// Shared frames up to this size are copied into the batch rather than written by reference.
    static let copyLimit = 1024

    /// Under `dropMessages`, a message that takes the queue past the limit is released
    /// unsent (it was already counted in `bufferedAmount`).
    private func dropsOverLimit(_ size: Int) -> Bool {
        guard config.overflowPolicy == .dropMessages, size > 0, socket.bufferedAmount > config.maxBufferedBytes else {
            return false
        }
        socket.didWrite(size)
        return true
    }

    private func applyOverflowPolicy(_ size: Int) {
        guard size > 0 && socket.bufferedAmount > config.maxBufferedBytes else { return }
        switch config.overflowPolicy {
        case .closePolicyViolation:
            fail(.bufferOverflow(socket.bufferedAmount), code: .policyViolation)
        case .closeTryAgainLater:
            fail(.bufferOverflow(socket.bufferedAmount), code: .tryAgainLater)
        case .dropMessages, .unbounded:
            break
        }
    }

    /// Starts our side of the closing handshake. `code` nil sends no status code.
    func close(code: CloseCode?, reason: String) {
        guard !closeSent else { return }
        closeSent = true
        socket.markClosing()
        // The peer's close frame must still be read, even if an async reader paused us
        // (messages are dropped from now on, so nothing grows).
        resumeReading()
        write { out in
            if let code { try self.writer.writeClose(code: code, reason: reason, into: &out) } else {
                try self.writer.writeControl(.close, into: &out)
            }
        }
        armCloseTimer()
        finishClosingHandshake()
    }

    /// Once both close frames are exchanged, the server closes TCP at once; the client
    /// waits for the server to do so (RFC 6455 §7.1.1), up to the close timeout.
    private func finishClosingHandshake() {
        guard closeSent, closeReceived != nil, context != nil else { return }
        if role == .server {
            closeAfterFlush()
        } else {
            armCloseTimer()
        }
    }

    /// Closes TCP once everything queued (the close frame last) reached the socket:
    /// closing at once would throw away frames a slow reader has not taken yet, the close
    /// frame among them. The close timer bounds the wait for a peer that never reads.
    private func closeAfterFlush() {
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        flushNow(promise: promise)
        let channel = context.channel
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        armCloseTimer()
    }

    private func armCloseTimer() {
        guard closeTask == nil, let context else { return }
        closeTask = context.eventLoop.assumeIsolated().scheduleTask(in: config.closeTimeout) { [weak self] in
            guard let self, let context = self.context else { return }
            if self.closeReceived == nil && self.failure == nil {
                self.failure = (.timeout("no close frame within \(self.config.closeTimeout)"), 1006)
            }
            context.close(promise: nil)
        }
    }

    /// Fails the connection: sends a close frame with `code`, then closes TCP.
    func fail(_ error: WebSocketError, code: CloseCode) {
        guard failure == nil, context != nil else { return }
        failure = (error, code.rawValue)
        config.logger.debug("closing with \(code.rawValue): \(error)")
        socket.markClosing()
        if !closeSent {
            closeSent = true
            write { out in try self.writer.writeClose(code: code, reason: "", into: &out) }
        }
        closeAfterFlush()
    }

    // MARK: Timers

    private func armPingTimer() {
        guard let interval = config.pingInterval, let context else { return }
        pingTask = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [weak self] in
            self?.sendKeepalivePing()
            self?.armPingTimer()
        }
    }

    private func sendKeepalivePing() {
        guard pingPayload == nil, !closeSent, !readPaused, let context else { return }
        pingCounter &+= 1
        let payload = withUnsafeBytes(of: pingCounter.bigEndian) { Array($0) }
        pingPayload = payload
        write { try self.writer.writeControl(.ping, payload: payload, into: &$0) }
        pingTimeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: config.pingTimeout) { [weak self] in
            self?.fail(.timeout("keepalive ping unanswered"), code: .internalError)
        }
    }

    private func armIdleTimer() {
        guard let idle = config.idleTimeout, let context else { return }
        idleTask?.cancel()
        idleTask = context.eventLoop.assumeIsolated().scheduleTask(in: idle) { [weak self] in
            guard let self else { return }
            // Not idle: we are the ones not reading (an async reader is behind).
            if self.readPaused { return self.armIdleTimer() }
            self.close(code: .goingAway, reason: "idle timeout")
        }
    }
}
