import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The answer to one polling request.
struct PollingResponse: Sendable {
    /// The HTTP status code.
    var status: Int
    /// The body (bounded by the caller's limit).
    var body: [UInt8]
}

/// Why a polling request failed.
struct PollingRequestError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// One keep-alive HTTP/1.1 connection for the long-polling transport, one request at a
/// time (browsers use one connection for the GET loop and another for POSTs; so does
/// the Engine.IO client). It reconnects on the next request when the server closed it.
///
/// Confined to one event loop: every method must be called there.
final class PollingHTTPConnection: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let address: ServerAddress
    private let sslContext: NIOSSLContext?
    private let extraHeaders: [(name: String, value: String)]
    private let connectTimeout: TimeAmount
    private var channel: (any Channel)?
    private var collector: NIOLoopBound<ResponseCollector>?
    private var closed = false

    init(eventLoop: any EventLoop, address: ServerAddress, sslContext: NIOSSLContext?,
         extraHeaders: [(name: String, value: String)], connectTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.address = address
        self.sslContext = sslContext
        self.extraHeaders = extraHeaders
        self.connectTimeout = connectTimeout
    }

    deinit {
        // A safety net: a connection nobody uses any more must not stay open.
        channel?.close(promise: nil)
    }

    /// Sends one request and collects the response; fails on connection errors, a body
    /// over `maxBody` bytes, or no complete response within `timeout`.
    func request(method: HTTPMethod, target: String, body: String?, timeout: TimeAmount,
                 maxBody: Int) -> EventLoopFuture<PollingResponse> {
        eventLoop.preconditionInEventLoop()
        let promise = eventLoop.makePromise(of: PollingResponse.self)
        guard !closed else {
            promise.fail(PollingRequestError(description: "connection closed"))
            return promise.futureResult
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: target)
        head.headers.add(name: "Host", value: address.hostHeader)
        head.headers.add(name: "Accept", value: "*/*")
        for (name, value) in extraHeaders where Self.isSafeHeader(name, value) { head.headers.add(name: name, value: value) }
        var payload: ByteBuffer?
        if let body {
            let buffer = ByteBuffer(string: body)
            head.headers.add(name: "Content-Type", value: "text/plain;charset=UTF-8")
            head.headers.add(name: "Content-Length", value: String(buffer.readableBytes))
            payload = buffer
        }
        let timer = eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            promise.fail(PollingRequestError(description: "HTTP \(method) timed out after \(timeout.nanoseconds / 1_000_000) ms"))
            self?.dropChannel()
        }
        promise.futureResult.assumeIsolated().whenComplete { _ in timer.cancel() }
        channelReady().assumeIsolated().whenComplete { [weak self] result in
            switch result {
            case .failure(let error):
                promise.fail(PollingRequestError(description: "connect to \(self?.address.hostHeader ?? "server") failed: \(error)"))
            case .success(let (channel, collector)):
                guard let self, !self.closed else {
                    promise.fail(PollingRequestError(description: "connection closed"))
                    return
                }
                collector.value.start(promise: promise, maxBody: maxBody)
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                if let payload { channel.write(HTTPClientRequestPart.body(.byteBuffer(payload)), promise: nil) }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        return promise.futureResult
    }

    /// Closes the connection; requests in flight fail.
    func close() {
        eventLoop.preconditionInEventLoop()
        closed = true
        dropChannel()
    }

    private func dropChannel() {
        channel?.close(promise: nil)
        channel = nil
        collector = nil
    }

    /// The open channel, connecting first when there is none (or the server closed it).
    private func channelReady() -> EventLoopFuture<((any Channel), NIOLoopBound<ResponseCollector>)> {
        if let channel, channel.isActive, let collector {
            return eventLoop.makeSucceededFuture((channel, collector))
        }
        dropChannel()
        let collector = NIOLoopBound(ResponseCollector(), eventLoop: eventLoop)
        let sslContext = self.sslContext
        let serverName = address.hostIsIPAddress ? nil : address.host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector.value)
                }
            }
        return bootstrap.connect(host: address.host, port: address.port).map { [weak self] channel in
            self?.channel = channel
            self?.collector = collector
            return (channel, collector)
        }
    }

    /// Header names and values without line breaks (no header injection from options).
    static func isSafeHeader(_ name: String, _ value: String) -> Bool {
        !name.isEmpty && !name.contains(where: { $0 == ":" || $0.isNewline || $0.isWhitespace })
            && !value.contains(where: { $0.isNewline })
    }
}

/// Collects one response at a time: status, body up to a limit, and keep-alive.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var promise: EventLoopPromise<PollingResponse>?
    private var maxBody = 0
    private var status = 0
    private var keepAlive = true
    private var body: [UInt8] = []

    func start(promise: EventLoopPromise<PollingResponse>, maxBody: Int) {
        self.promise = promise
        self.maxBody = maxBody
        status = 0
        body = []
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(let buffer):
            guard promise != nil else { return }
            guard body.count + buffer.readableBytes <= maxBody else {
                fail(context, "response body larger than \(maxBody) bytes")
                return
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let promise else {
                // A response nobody asked for: the connection is out of step.
                context.close(promise: nil)
                return
            }
            self.promise = nil
            let response = PollingResponse(status: status, body: body)
            body = []
            if !keepAlive { context.close(promise: nil) }
            promise.succeed(response)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let promise {
            self.promise = nil
            promise.fail(PollingRequestError(description: "connection closed before the response ended"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, "\(error)")
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        if let promise {
            self.promise = nil
            promise.fail(PollingRequestError(description: reason))
        }
        context.close(promise: nil)
    }
}
