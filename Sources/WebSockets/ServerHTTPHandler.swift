import NIOCore
import NIOHTTP1
import WebSocketFraming

/// The first handler of every server connection: answers plain HTTP requests through
/// the user's handler and upgrades valid WebSocket requests, after the origin check,
/// the authentication hook, subprotocol selection and permessage-deflate negotiation.
/// A client that does not finish a request within the handshake timeout is dropped.
final class ServerHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: WebSocketServer
    private let config: ServerConfiguration
    private let decoder: RemovableChannelHandler
    private let encoder: RemovableChannelHandler
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var timer: Scheduled<Void>?
    private var upgraded = false
    /// A route's answer not yet sent (long-polling); parts read meanwhile wait in `held`.
    private var pending: HTTPResponder?
    private var held: [HTTPServerRequestPart] = []
    /// A request refused at its head: the rest of it is ignored until the connection closes.
    private var refused = false

    init(server: WebSocketServer, config: ServerConfiguration, decoder: RemovableChannelHandler, encoder: RemovableChannelHandler) {
        self.server = server
        self.config = config
        self.decoder = decoder
        self.encoder = encoder
    }

    func handlerAdded(context: ChannelHandlerContext) { armTimer(context) }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.cancel()
        pending = nil
        held = []
        context.fireChannelInactive()
    }

    /// Drops the connection unless a request completes in time (slowloris, idle keep-alive).
    private func armTimer(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let channel = context.channel
        let timeout = config.handshakeTimeout
        let logger = config.connection.logger
        timer = context.eventLoop.scheduleTask(in: timeout) {
            logger.debug("dropping a connection that did not finish a request within \(timeout)")
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !upgraded, !refused else { return }
        let part = unwrapInboundIn(data)
        if pending != nil {
            // HTTP/1.1 answers in order: the next request waits for the pending answer.
            // A client pipelining more than a few requests behind a long-poll is dropped.
            guard held.count < 64 else { return context.close(promise: nil) }
            return held.append(part)
        }
        handle(context, part)
    }

    private func handle(_ context: ChannelHandlerContext, _ part: HTTPServerRequestPart) {
        guard !upgraded, !refused else { return }
        switch part {
        case .head(let h):
            // An upgrade request with a body is how request smuggling starts: refuse it at
            // once instead of reading (or waiting for) a body that should not exist.
            if isUpgrade(h) && announcesBody(h) {
                refused = true
                return respond(context, HTTPResponse.text("an upgrade request must not have a body\n", status: 400), keepAlive: false)
            }
            head = h
            body = []
            tooLarge = false
        case .body(var chunk):
            if body.count + chunk.readableBytes > config.maxRequestBodySize {
                tooLarge = true
            } else {
                body += chunk.readBytes(length: chunk.readableBytes) ?? []
            }
        case .end:
            guard let h = head else { return }
            head = nil
            if tooLarge {
                return respond(context, HTTPResponse.text("request body too large\n", status: 413), keepAlive: false)
            }
            let request = HTTPRequest(
                method: h.method.rawValue, uri: h.uri, version: (Int(h.version.major), Int(h.version.minor)),
                headers: h.headers.map { ($0.name, $0.value) }, body: body,
                remoteAddress: context.channel.remoteAddress?.description)
            body = []
            let route = server.route(for: request.path)
            if isUpgrade(h) {
                upgrade(context, request, route: route)
            } else if server.isShuttingDown {
                respond(context, HTTPResponse.text("shutting down\n", status: 503), keepAlive: false)
            } else if let route {
                answerLater(context, request, route: route, keepAlive: h.isKeepAlive, head: h.method == .HEAD)
            } else {
                let response = server.httpResponse(for: request)
                respond(context, response, keepAlive: h.isKeepAlive, omitBody: h.method == .HEAD)
                armTimer(context)
            }
        }
    }

    /// Hands a request to a route, which answers through a responder from any thread;
    /// reading resumes once the answer is written.
    private func answerLater(_ context: ChannelHandlerContext, _ request: HTTPRequest, route: ServerRoute, keepAlive: Bool, head: Bool) {
        timer?.cancel()
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let responder = HTTPResponder { response in
            loop.execute {
                let (handler, context) = bound.value
                handler.finishPending(context, response, keepAlive: keepAlive, head: head)
            }
        }
        pending = responder
        route.http(request, responder)
    }

    private func finishPending(_ context: ChannelHandlerContext, _ response: HTTPResponse, keepAlive: Bool, head: Bool) {
        guard pending != nil, context.channel.isActive else { return }
        pending = nil
        respond(context, response, keepAlive: keepAlive, omitBody: head)
        guard keepAlive else { return }
        armTimer(context)
        // Replay what arrived meanwhile; it may park us again behind another long-poll.
        while pending == nil, !upgraded, !held.isEmpty {
            handle(context, held.removeFirst())
        }
    }

    private func isUpgrade(_ h: HTTPRequestHead) -> Bool {
        h.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
    }

    /// Whether the head announces a body: any Transfer-Encoding, or a Content-Length other than 0.
    private func announcesBody(_ h: HTTPRequestHead) -> Bool {
        h.headers.contains(name: "transfer-encoding")
            || h.headers[canonicalForm: "content-length"].contains { $0 != "0" }
    }

    // MARK: Upgrade

    private func upgrade(_ context: ChannelHandlerContext, _ request: HTTPRequest, route: ServerRoute?) {
        if config.acceptsLegacyDraft76, request.header("Sec-WebSocket-Key1") != nil, request.header("Sec-WebSocket-Key2") != nil {
            return upgradeDraft76(context, request)
        }
        let valid: UpgradeRequest
        do {
            valid = try Handshake.validateUpgradeRequest(method: request.method, version: request.version, headers: request.headers)
        } catch {
            return respond(context, HTTPResponse(status: error.status, headers: error.headers, body: Array((error.reason + "\n").utf8)), keepAlive: false)
        }
        if let refusal = server.refusal(for: request, origin: valid.origin, route: route) {
            return respond(context, refusal, keepAlive: false)
        }
        let chosenProtocol = route == nil ? server.selectProtocol(valid.protocols, request) : nil
        let negotiated = PerMessageDeflate.negotiateResponse(offers: valid.extensions, policy: config.deflate)
        let deflate = negotiated?.parameters
        let extensions = negotiated.map { [$0.response] } ?? []
        var headers = HTTPHeaders()
        for (name, value) in Handshake.acceptHeaders(for: valid, protocol: chosenProtocol, extensions: extensions) {
            headers.add(name: name, value: value)
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)

        let socket = WebSocket(
            url: request.uri, eventLoop: context.eventLoop, configuration: config.connection,
            fanout: FanoutEncoding(deflate: deflate), topics: server.topics)
        let handler = WebSocketHandler(
            socket: socket, role: .server, deflate: deflate, protocol: chosenProtocol ?? "",
            extensions: ExtensionOffer.format(extensions))
        switchToWebSocket(context, socket: socket, handler: handler, request: request, route: route)
    }

    /// Replaces the HTTP handlers with the WebSocket handler; bytes the client sent after
    /// its request go to the new handler.
    func switchToWebSocket(_ context: ChannelHandlerContext, socket: WebSocket, handler: ChannelHandler, request: HTTPRequest, route: ServerRoute? = nil) {
        upgraded = true
        timer?.cancel()
        // Registered as a WebSocket before leaving the HTTP list, so shutdown always sees it.
        server.willOpen(socket, request: request, route: route)
        server.didUpgrade(context.channel)
        let ops = context.pipeline.syncOperations
        do {
            ops.removeHandler(encoder, promise: nil)
            try ops.addHandler(handler, position: .after(self))
            ops.removeHandler(context: context, promise: nil)
            ops.removeHandler(decoder, promise: nil)
        } catch {
            config.connection.logger.error("cannot switch to WebSocket: \(error)")
            socket.didFail(.aborted("cannot switch to WebSocket: \(error)"), code: 1006)
            context.close(promise: nil)
        }
    }

    /// LEGACY draft-76: the request's 8-byte body follows the head; the draft-76 handler
    /// reads it and answers.
    private func upgradeDraft76(_ context: ChannelHandlerContext, _ request: HTTPRequest) {
        guard request.method == "GET", let host = request.header("Host"),
              let key1 = request.header("Sec-WebSocket-Key1"), let key2 = request.header("Sec-WebSocket-Key2"),
              Hixie76.keyNumber(key1) != nil, Hixie76.keyNumber(key2) != nil
        else {
            return respond(context, HTTPResponse.text("bad draft-76 handshake\n", status: 400), keepAlive: false)
        }
        if let refusal = server.refusal(for: request, origin: request.header("Origin")) {
            return respond(context, refusal, keepAlive: false)
        }
        let offered = Handshake.parseProtocols([request.header("Sec-WebSocket-Protocol") ?? ""]) ?? []
        let chosen = server.selectProtocol(offered, request)
        let scheme = config.tls == nil ? "ws" : "wss"
        let socket = WebSocket(
            url: request.uri, eventLoop: context.eventLoop, configuration: config.connection, fanout: .legacy,
            topics: server.topics)
        let handler = Draft76Handler(
            socket: socket, key1: key1, key2: key2, origin: request.header("Origin"),
            location: "\(scheme)://\(host)\(request.uri)", protocol: chosen)
        switchToWebSocket(context, socket: socket, handler: handler, request: request)
    }

    // MARK: Plain HTTP

    /// Writes a response. HEAD answers carry the headers (Content-Length included) but
    /// no body, or a keep-alive client would read the body as the next response.
    private func respond(_ context: ChannelHandlerContext, _ response: HTTPResponse, keepAlive: Bool, omitBody: Bool = false) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers where HTTPHead.isSafe(name: name, value: value) {
            headers.add(name: name, value: value)
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty && !omitBody {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !upgraded else { return context.fireErrorCaught(error) }
        // Malformed requests: 431 for oversized heads, 400 for the rest, then close.
        if let parse = error as? HTTPParserError {
            let status = parse == .headerOverflow ? 431 : 400
            respond(context, HTTPResponse.text("bad request\n", status: status), keepAlive: false)
        } else {
            context.close(promise: nil)
        }
    }
}
