import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

// Helpers for MessagingTests, ClosingTests and LimitsAndTimeoutsTests: a raw TCP
// WebSocket peer on NIO (client or server side) that sends handcrafted bytes and records
// what comes back, a frame builder and parser, recorders for the browser-style callbacks,
// and bounded waits. Everything is namespaced (`Conn`, `Raw*`) to stay clear of the
// helpers of other test files in this target.

// MARK: - Bounded waits

enum Conn {
    /// A wait that ran out.
    struct TimeoutError: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out: \(what)" }
    }

    /// Runs `body`, but throws `TimeoutError` after `seconds`. The body runs in its own
    /// task, so even a wait that ignores cancellation (a continuation) cannot hang the test.
    static func withTimeout<T: Sendable>(
        seconds: Double, _ what: String = "operation", _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let once = NIOLockedValueBox<CheckedContinuation<T, Error>?>(nil)
        @Sendable func finish(_ result: Result<T, Error>) {
            let c = once.withLockedValue { c -> CheckedContinuation<T, Error>? in
                defer { c = nil }
                return c
            }
            c?.resume(with: result)
        }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            once.withLockedValue { $0 = c }
            let work = Task {
                do { finish(.success(try await body())) } catch { finish(.failure(error)) }
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                finish(.failure(TimeoutError(what: "\(what) (\(seconds) s)")))
                work.cancel()
            }
        }
    }

    /// Polls `condition` every few milliseconds; true once it holds, false after `seconds`.
    static func waitUntil(seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(nanoseconds: 3_000_000)
        }
        return condition()
    }

    /// Sleeps (test pacing).
    static func sleep(ms: Int) async {
        try? await Task.sleep(nanoseconds: UInt64(ms) * 1_000_000)
    }

    /// Seconds since `start`.
    static func elapsed(since start: ContinuousClock.Instant) -> Double { seconds(ContinuousClock.now - start) }

    /// A duration in seconds.
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    // MARK: Payloads

    /// 16 MiB of pseudo-random bytes (xorshift), built once.
    static let randomBytes: [UInt8] = {
        let count = 16 << 20
        var bytes = [UInt8](repeating: 0, count: count)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        bytes.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count {
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                words[i] = x
            }
        }
        return bytes
    }()

    /// 16 MiB of valid UTF-8 text: lowercase letters with two-byte "é" mixed in, built once.
    static let textBytes: [UInt8] = {
        let count = 16 << 20
        var out = [UInt8](repeating: 0x61, count: count)
        out.withUnsafeMutableBufferPointer { o in
            randomBytes.withUnsafeBufferPointer { r in
                var i = 0
                while i < count {
                    let b = r[i]
                    if b < 24 && i + 1 < count {
                        o[i] = 0xC3
                        o[i + 1] = 0xA9
                        i += 2
                    } else {
                        o[i] = 0x61 &+ b % 26
                        i += 1
                    }
                }
            }
        }
        return out
    }()

    /// `n` pseudo-random bytes (n <= 16 MiB).
    static func bytes(_ n: Int) -> [UInt8] { Array(randomBytes[0..<n]) }

    /// A valid UTF-8 string of exactly `n` bytes (n <= 16 MiB).
    static func text(_ n: Int) -> String {
        var b = Array(textBytes[0..<n])
        if n > 0 && b[n - 1] == 0xC3 { b[n - 1] = 0x78 }  // do not cut "é" in half
        let s = String(decoding: b, as: UTF8.self)
        precondition(s.utf8.count == n)
        return s
    }

    /// "ws://127.0.0.1:port/path".
    static func url(_ server: WebSocketServer, _ path: String = "/") -> String { "ws://127.0.0.1:\(server.port)\(path)" }
    static func url(_ server: RawServer, _ path: String = "/") -> String { "ws://127.0.0.1:\(server.port)\(path)" }

    /// A short description of a message for logs (sizes, not megabytes of payload).
    static func describe(_ m: Message) -> String {
        switch m {
        case .text(let s): s.utf8.count <= 40 ? "text(\(s))" : "text(\(s.utf8.count) B)"
        case .binary(let b): "binary(\(b.count) B)"
        }
    }
}

// MARK: - Recording browser-style callbacks

/// Records the callbacks of one `WebSocket`: every event as a line (with the readyState
/// seen inside the callback), the close event, errors and messages.
final class ConnRecorder: Sendable {
    private struct State {
        var lines: [String] = []
        var messages: [Message] = []
        var errors: [WebSocketError] = []
        var closes: [WebSocket.CloseEvent] = []
        var errorReadyStates: [Int] = []
        var opens = 0
    }
    private let state = NIOLockedValueBox(State())

    /// Sets onopen/onmessage/onerror/onclose of `ws`. With `echo`, messages are sent back.
    func attach(_ ws: WebSocket, echo: Bool = false) {
        ws.onopen = { [weak ws] event in
            let rs = ws?.readyState.rawValue ?? -1
            self.state.withLockedValue {
                $0.opens += 1
                $0.lines.append("open[\(rs)] \(event.protocol)")
            }
        }
        ws.onmessage = { [weak ws] event in
            self.state.withLockedValue {
                $0.messages.append(event.data)
                $0.lines.append("message \(Conn.describe(event.data))")
            }
            if echo { try? ws?.send(event.data) }
        }
        ws.onerror = { [weak ws] event in
            let rs = ws?.readyState.rawValue ?? -1
            self.state.withLockedValue {
                $0.errors.append(event.error)
                $0.errorReadyStates.append(rs)
                $0.lines.append("error")
            }
        }
        ws.onclose = { [weak ws] event in
            let rs = ws?.readyState.rawValue ?? -1
            self.state.withLockedValue {
                $0.closes.append(event)
                $0.lines.append("close[\(rs)] \(event.code) \(event.wasClean)")
            }
        }
    }

    var lines: [String] { state.withLockedValue { $0.lines } }
    var messages: [Message] { state.withLockedValue { $0.messages } }
    var errors: [WebSocketError] { state.withLockedValue { $0.errors } }
    var closes: [WebSocket.CloseEvent] { state.withLockedValue { $0.closes } }
    var opens: Int { state.withLockedValue { $0.opens } }
    /// readyState seen inside each onerror (WHATWG: CLOSED, 3).
    var errorReadyStates: [Int] { state.withLockedValue { $0.errorReadyStates } }
    var closeEvent: WebSocket.CloseEvent? { closes.first }

    /// Waits for `onclose` (throws after `seconds`).
    func waitClose(seconds: Double = 5) async throws -> WebSocket.CloseEvent {
        guard await Conn.waitUntil(seconds: seconds, { self.closeEvent != nil }), let e = closeEvent else {
            throw Conn.TimeoutError(what: "onclose (events so far: \(lines))")
        }
        return e
    }

    /// Waits for `onopen`; records an issue with the events so far if it does not come.
    @discardableResult
    func expectOpen(seconds: Double = 5, sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
        let ok = await Conn.waitUntil(seconds: seconds) { self.opens == 1 }
        if !ok { Issue.record("no onopen within \(seconds) s: \(lines) errors: \(errors) close: \(closes)", sourceLocation: sourceLocation) }
        return ok
    }

    /// Waits until `count` messages arrived.
    func waitMessages(_ count: Int, seconds: Double = 5) async throws -> [Message] {
        guard await Conn.waitUntil(seconds: seconds, { self.messages.count >= count }) else {
            throw Conn.TimeoutError(what: "\(count) messages (got \(messages.count); events: \(lines.suffix(5)))")
        }
        return messages
    }
}

/// Keeps the server-side sockets a server hands to `onconnection`.
final class ConnServerSockets: Sendable {
    private let sockets = NIOLockedValueBox<[(WebSocket, ConnRecorder, HTTPRequest)]>([])

    /// Installs `onconnection` on `server`: records every socket's callbacks (echoing
    /// messages when `echo`), then runs `setup`.
    init(_ server: WebSocketServer, echo: Bool = true, setup: (@Sendable (WebSocket) -> Void)? = nil) {
        server.onconnection = { [sockets] ws, request in
            let recorder = ConnRecorder()
            recorder.attach(ws, echo: echo)
            sockets.withLockedValue { $0.append((ws, recorder, request)) }
            setup?(ws)
        }
    }

    var count: Int { sockets.withLockedValue { $0.count } }

    /// The `index`th connection (waits for it).
    func socket(_ index: Int = 0, seconds: Double = 5) async throws -> (ws: WebSocket, events: ConnRecorder, request: HTTPRequest) {
        guard await Conn.waitUntil(seconds: seconds, { self.count > index }) else {
            throw Conn.TimeoutError(what: "server-side connection #\(index)")
        }
        let s = sockets.withLockedValue { $0[index] }
        return (s.0, s.1, s.2)
    }
}

extension WebSocketServer {
    /// A server on a free loopback port; `onconnection` is left to the caller.
    static func conn(_ configure: (inout ServerConfiguration) -> Void = { _ in },
                     group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> WebSocketServer {
        var config = ServerConfiguration()
        configure(&config)
        return try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: config, eventLoopGroup: group)
    }
}

// MARK: - Frames

/// A frame as seen on the wire (payload unmasked).
struct RawFrame: Sendable, Equatable, CustomStringConvertible {
    var fin: Bool
    var rsv: UInt8
    var opcode: UInt8
    var masked: Bool
    var payload: [UInt8]

    /// The close code of a close frame with a body.
    var closeCode: UInt16? {
        guard opcode == 0x8, payload.count >= 2 else { return nil }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }
    /// The close reason of a close frame.
    var closeReason: String { payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : "" }
    var text: String { String(decoding: payload, as: UTF8.self) }

    var description: String {
        "frame(op=\(opcode) fin=\(fin) rsv=\(rsv) masked=\(masked) len=\(payload.count)\(closeCode.map { " code=\($0)" } ?? ""))"
    }
}

/// Builds and parses raw frames.
enum RawWS {
    static let text: UInt8 = 0x1, binary: UInt8 = 0x2, continuation: UInt8 = 0x0
    static let close: UInt8 = 0x8, ping: UInt8 = 0x9, pong: UInt8 = 0xA

    /// A frame with any header bits. `length` overrides the announced payload length
    /// (for frames whose payload is never sent); `mask` nil sends it unmasked.
    static func frame(
        _ opcode: UInt8, _ payload: [UInt8] = [], fin: Bool = true, rsv: UInt8 = 0,
        mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], length: UInt64? = nil
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv & 0x70) | (opcode & 0x0F)]
        let len = length ?? UInt64(payload.count)
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        if len < 126 {
            out.append(maskBit | UInt8(len))
        } else if len <= 0xFFFF {
            out.append(maskBit | 126)
            out += [UInt8(len >> 8), UInt8(len & 0xFF)]
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((len >> UInt64(shift)) & 0xFF)) }
        }
        if let mask {
            out += mask
            for (i, b) in payload.enumerated() { out.append(b ^ mask[i & 3]) }
        } else {
            out += payload
        }
        return out
    }

    static func frame(_ opcode: UInt8, _ text: String, fin: Bool = true, mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D]) -> [UInt8] {
        frame(opcode, Array(text.utf8), fin: fin, mask: mask)
    }

    /// A close frame body: code and reason.
    static func closePayload(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)
    }

    /// Parses one frame at the start of `bytes`: the frame and its length, or nil while incomplete.
    static func parse(_ bytes: ArraySlice<UInt8>) -> (RawFrame, Int)? {
        let s = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        let b0 = bytes[s], b1 = bytes[s + 1]
        let masked = b1 & 0x80 != 0
        var len = UInt64(b1 & 0x7F)
        var pos = 2
        if len == 126 {
            guard bytes.count >= 4 else { return nil }
            len = UInt64(bytes[s + 2]) << 8 | UInt64(bytes[s + 3])
            pos = 4
        } else if len == 127 {
            guard bytes.count >= 10 else { return nil }
            len = 0
            for i in 0..<8 { len = len << 8 | UInt64(bytes[s + 2 + i]) }
            pos = 10
        }
        var mask: [UInt8] = []
        if masked {
            guard bytes.count >= pos + 4 else { return nil }
            mask = Array(bytes[(s + pos)..<(s + pos + 4)])
            pos += 4
        }
        guard UInt64(bytes.count - pos) >= len else { return nil }
        var payload = Array(bytes[(s + pos)..<(s + pos + Int(len))])
        if masked { for i in payload.indices { payload[i] ^= mask[i & 3] } }
        let frame = RawFrame(fin: b0 & 0x80 != 0, rsv: b0 & 0x70, opcode: b0 & 0x0F, masked: masked, payload: payload)
        return (frame, pos + Int(len))
    }

    /// A client upgrade request (no extensions offered).
    static func upgradeRequest(path: String = "/", port: Int, extraHeaders: [String] = []) -> [UInt8] {
        var r = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        r += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for h in extraHeaders { r += h + "\r\n" }
        r += "\r\n"
        return Array(r.utf8)
    }
}

// MARK: - Raw peers

/// One raw TCP connection (to our server, or accepted by `RawServer`) that records every
/// byte it receives, whether the peer closed (EOF) or reset the connection.
final class RawPeer: Sendable {
    struct State {
        var bytes: [UInt8] = []
        var offset = 0          // bytes before this were consumed by readFrame/readHead
        var eof = false
        var error: String?
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        init(_ state: NIOLockedValueBox<State>) { self.state = state }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                state.withLockedValue { $0.bytes += bytes }
            }
        }
        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.eof = true }
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            state.withLockedValue { $0.error = "\(error)" }
            context.close(promise: nil)
        }
    }

    let channel: Channel
    let state: NIOLockedValueBox<State>

    init(channel: Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    /// Connects to 127.0.0.1:`port`. `receiveBuffer` shrinks SO_RCVBUF (a peer that
    /// stops reading then fills up fast).
    static func connect(port: Int, receiveBuffer: Int? = nil,
                        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> RawPeer {
        let state = NIOLockedValueBox(State())
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(3))
            .channelOption(.allowRemoteHalfClosure, value: false)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(state))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, state: state)
    }

    /// Connects and completes the upgrade (no extensions, so no RSV bits are allowed);
    /// returns the response head.
    static func upgraded(port: Int, path: String = "/", receiveBuffer: Int? = nil,
                         group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> RawPeer {
        let peer = try await connect(port: port, receiveBuffer: receiveBuffer, group: group)
        try await peer.send(RawWS.upgradeRequest(path: path, port: port))
        let head = try await peer.readHead()
        guard head.hasPrefix("HTTP/1.1 101") else {
            throw Conn.TimeoutError(what: "upgrade refused: \(head)")
        }
        return peer
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Closes the TCP connection (FIN).
    func close() async {
        try? await channel.close().get()
    }

    /// Stops or resumes reading from the socket (a peer that never reads).
    func setReading(_ on: Bool) async throws {
        try await channel.setOption(.autoRead, value: on).get()
        if on { channel.read() }
    }

    var eof: Bool { state.withLockedValue { $0.eof } }
    var error: String? { state.withLockedValue { $0.error } }
    /// Bytes received in total (consumed or not).
    var receivedCount: Int { state.withLockedValue { $0.bytes.count } }
    /// Bytes received and not consumed yet.
    var unread: [UInt8] { state.withLockedValue { Array($0.bytes[$0.offset...]) } }

    /// Reads an HTTP head (up to the blank line) and consumes it.
    func readHead(seconds: Double = 5) async throws -> String {
        var head: String?
        let ok = await Conn.waitUntil(seconds: seconds) {
            self.state.withLockedValue { s -> Bool in
                let b = s.bytes
                guard b.count - s.offset >= 4 else { return false }
                for i in s.offset...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
                    head = String(decoding: b[s.offset..<i], as: UTF8.self)
                    s.offset = i + 4
                    return true
                }
                return false
            }
        }
        guard ok, let head else { throw Conn.TimeoutError(what: "HTTP head (eof: \(eof))") }
        return head
    }

    /// Reads the next frame, or throws on timeout or when the connection closed first.
    func readFrame(seconds: Double = 5) async throws -> RawFrame {
        var frame: RawFrame?
        var closed = false
        _ = await Conn.waitUntil(seconds: seconds) {
            self.state.withLockedValue { s -> Bool in
                if let (f, n) = RawWS.parse(s.bytes[s.offset...]) {
                    frame = f
                    s.offset += n
                    return true
                }
                closed = s.eof
                return s.eof
            }
        }
        if let frame { return frame }
        throw Conn.TimeoutError(what: closed ? "frame: connection closed first" : "frame")
    }

    /// Reads frames until one with `opcode` (skipping others); returns the skipped ones too.
    func readFrame(opcode: UInt8, seconds: Double = 5) async throws -> (frame: RawFrame, skipped: [RawFrame]) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var skipped: [RawFrame] = []
        while true {
            let left = max(0.01, Conn.seconds(deadline - ContinuousClock.now))
            let f = try await readFrame(seconds: left)
            if f.opcode == opcode { return (f, skipped) }
            skipped.append(f)
        }
    }

    /// Waits for the peer to close TCP; true if it did within `seconds`.
    func waitEOF(seconds: Double = 5) async -> Bool {
        await Conn.waitUntil(seconds: seconds) { self.eof }
    }

    /// Answers a client's upgrade request (when this is a connection accepted by `RawServer`).
    func acceptUpgrade(extraHeaders: [String] = [], seconds: Double = 5) async throws -> String {
        let head = try await readHead(seconds: seconds)
        let key = head.split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("sec-websocket-key:") }
            .map { $0.dropFirst("sec-websocket-key:".count).trimmingCharacters(in: " ") } ?? ""
        var response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        response += "Sec-WebSocket-Accept: \(Handshake.acceptKey(for: key))\r\n"
        for h in extraHeaders { response += h + "\r\n" }
        response += "\r\n"
        try await send(Array(response.utf8))
        return head
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}

/// A raw TCP server on a free loopback port: records every accepted connection as a
/// `RawPeer` and answers nothing unless the test says so.
final class RawServer: Sendable {
    let channel: Channel
    let port: Int
    private let peers: NIOLockedValueBox<[RawPeer]>

    private init(channel: Channel, port: Int, peers: NIOLockedValueBox<[RawPeer]>) {
        self.channel = channel
        self.port = port
        self.peers = peers
    }

    static func listen() async throws -> RawServer {
        let peers = NIOLockedValueBox<[RawPeer]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let state = NIOLockedValueBox(RawPeer.State())
                    try channel.pipeline.syncOperations.addHandler(RawPeer.Collector(state))
                    let peer = RawPeer(channel: channel, state: state)
                    peers.withLockedValue { $0.append(peer) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawServer(channel: channel, port: channel.localAddress?.port ?? 0, peers: peers)
    }

    /// The `index`th accepted connection (waits for it).
    func peer(_ index: Int = 0, seconds: Double = 5) async throws -> RawPeer {
        guard await Conn.waitUntil(seconds: seconds, { self.peers.withLockedValue { $0.count > index } }) else {
            throw Conn.TimeoutError(what: "raw server: connection #\(index)")
        }
        return peers.withLockedValue { $0[index] }
    }

    /// Stops listening and drops every connection.
    func close() async {
        try? await channel.close().get()
        for p in peers.withLockedValue({ $0 }) { await p.close() }
    }
}

// MARK: - Clients

extension Conn {
    /// Connects the async client, bounded by `seconds`.
    static func connect(
        _ url: String, protocols: [String] = [], configuration: ClientConfiguration = .init(),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, seconds: Double = 10
    ) async throws -> WebSocket {
        try await withTimeout(seconds: seconds, "connect \(url)") {
            try await WebSocket.connect(to: url, protocols: protocols, configuration: configuration, eventLoopGroup: group)
        }
    }

    /// A client configuration edited by `body`.
    static func client(_ body: (inout ClientConfiguration) -> Void) -> ClientConfiguration {
        var c = ClientConfiguration()
        body(&c)
        return c
    }
}

extension WebSocket {
    /// The next message of the async API, bounded by `seconds` (nil at a clean close).
    func nextMessage(seconds: Double = 5) async throws -> Message? {
        let queue = messages
        return try await Conn.withTimeout(seconds: seconds, "next message") {
            var it = queue.makeAsyncIterator()
            return try await it.next()
        }
    }

    /// Waits until closed, bounded by `seconds`.
    func closedWithin(seconds: Double = 5) async throws {
        try await Conn.withTimeout(seconds: seconds, "closed") { await self.closed() }
    }
}

extension WebSocket {
    // The browser API's synchronous send/close under other names: inside async code
    // `send`/`close` resolve to the async overloads.

    /// Synchronous `send` (browser API).
    func sendNow(_ text: String) throws { try send(text) }
    /// Synchronous `send` (browser API).
    func sendNow(_ bytes: [UInt8]) throws { try send(bytes) }
    /// Synchronous `send` (browser API).
    func sendNow(_ message: Message) throws { try send(message) }
    /// Synchronous `close` (browser API).
    func closeNow(code: UInt16? = nil, reason: String = "") throws { try close(code: code, reason: reason) }
}

#if canImport(Glibc)
import Glibc
#endif

/// A loopback port that refuses connections and that nobody else can take while this
/// lives: a TCP socket bound to it but not listening.
final class ConnRefusingPort: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Conn.TimeoutError(what: "socket() failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else {
            close(fd)
            throw Conn.TimeoutError(what: "bind() failed")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
