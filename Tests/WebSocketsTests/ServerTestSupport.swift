import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import WebSockets

// Helpers for ServerHTTPTests: a raw TCP client on NIO (no blocking of the cooperative
// pool, which has as many threads as cores), an HTTP response parser, and bounded waits.

/// A thread-safe list of strings for callbacks.
final class ServerEventLog: @unchecked Sendable {
    private var items: [String] = []
    private let lock = NIOLock()
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}

/// A thread-safe value for callbacks.
final class ServerBox<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NIOLock()
    init(_ value: T) { self.value = value }
    var get: T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    func update(_ f: (inout T) -> Void) { lock.withLock { f(&value) } }
}

/// Waits until `condition` holds or `timeout` passes; returns the last evaluation.
func serverEventually(timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now.advanced(by: timeout)
    while clock.now < end {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// Runs `body` but gives up after `timeout` (returns nil then).
func serverWithTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// An HTTP response as read from the wire.
struct ServerRawResponse: Sendable {
    var statusLine: String
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// Bytes of the whole message (head and body).
    var length: Int

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    func headers(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Parses a response at the start of `bytes`: nil while incomplete. The body is read
    /// by Content-Length (none for 101, or when absent and the connection is not closed yet).
    static func parse(_ bytes: [UInt8], closed: Bool) -> ServerRawResponse? {
        let crlf2: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == crlf2 }) else {
            return nil
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let bodyStart = end + 4
        var response = ServerRawResponse(statusLine: statusLine, status: status, headers: headers, body: [], length: bodyStart)
        if status == 101 { return response }
        if let cl = response.header("Content-Length").flatMap({ Int($0) }) {
            guard bytes.count >= bodyStart + cl else { return nil }
            response.body = Array(bytes[bodyStart..<bodyStart + cl])
            response.length = bodyStart + cl
        } else if closed {
            response.body = Array(bytes[bodyStart...])
            response.length = bytes.count
        } else {
            return nil
        }
        return response
    }
}

/// A raw TCP connection to 127.0.0.1 that records every byte received.
final class ServerRawClient: @unchecked Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var closed = false
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        init(_ state: NIOLockedValueBox<State>) { self.state = state }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            state.withLockedValue { $0.bytes += bytes }
        }
        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    let channel: Channel
    private let state: NIOLockedValueBox<State>

    private init(channel: Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    /// Connects, or throws (connection refused...).
    static func connect(port: Int, host: String = "127.0.0.1") async throws -> ServerRawClient {
        let state = NIOLockedValueBox(State())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(3))
            .channelOption(.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(state))
                }
            }
            .connect(host: host, port: port).get()
        return ServerRawClient(channel: channel, state: state)
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Everything received so far (not consumed).
    var received: [UInt8] { state.withLockedValue { $0.bytes } }
    /// Whether the server closed the connection.
    var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// Drops the first `n` received bytes.
    func consume(_ n: Int) { state.withLockedValue { $0.bytes.removeFirst(min(n, $0.bytes.count)) } }

    /// Waits until `predicate(received, closed)` holds (bounded); returns whether it did.
    func wait(timeout: Duration = .seconds(5), _ predicate: @escaping @Sendable ([UInt8], Bool) -> Bool) async -> Bool {
        let state = self.state
        return await serverEventually(timeout: timeout) {
            state.withLockedValue { predicate($0.bytes, $0.closed) }
        }
    }

    /// Waits for `count` bytes; returns them (consumed) or nil on timeout/close.
    func read(count: Int, timeout: Duration = .seconds(5)) async -> [UInt8]? {
        guard await wait(timeout: timeout, { b, _ in b.count >= count }) else { return nil }
        return state.withLockedValue { s in
            defer { s.bytes.removeFirst(count) }
            return Array(s.bytes[..<count])
        }
    }

    /// Reads one HTTP response (consumed), or nil on timeout.
    func readResponse(timeout: Duration = .seconds(5)) async -> ServerRawResponse? {
        guard await wait(timeout: timeout, { b, c in ServerRawResponse.parse(b, closed: c) != nil }) else { return nil }
        return state.withLockedValue { s in
            let r = ServerRawResponse.parse(s.bytes, closed: s.closed)!
            s.bytes.removeFirst(r.length)
            return r
        }
    }

    /// Waits for the server to close the connection; returns whether it did in time.
    func waitClosed(timeout: Duration = .seconds(5)) async -> Bool {
        await wait(timeout: timeout) { _, closed in closed }
    }

    func close() { channel.close(promise: nil) }
}

/// A minimal RFC 6455 upgrade request with the sample key of the RFC.
func serverUpgradeRequest(path: String = "/", extra: [String] = [], key: String? = "dGhlIHNhbXBsZSBub25jZQ==",
                          version: String? = "13") -> String {
    var lines = ["GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"]
    if let key { lines.append("Sec-WebSocket-Key: \(key)") }
    if let version { lines.append("Sec-WebSocket-Version: \(version)") }
    lines += extra
    return lines.joined(separator: "\r\n") + "\r\n\r\n"
}

/// The accept value for the RFC's sample key.
let serverSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// A masked client frame (FIN set).
func serverClientFrame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
    let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
    var out: [UInt8] = [0x80 | opcode]
    precondition(payload.count < 126)
    out.append(0x80 | UInt8(payload.count))
    out += mask
    out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    return out
}

/// Starts a server on a free loopback port.
func serverStart(_ configuration: ServerConfiguration = .init(),
                 http: (@Sendable (HTTPRequest) -> HTTPResponse)? = nil) async throws -> WebSocketServer {
    try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: configuration, http: http)
}

/// Makes `server` echo every message.
func serverEcho(_ server: WebSocketServer) {
    server.onconnection = { ws, _ in
        ws.onmessage = { event in try? ws.send(event.data) }
    }
}
