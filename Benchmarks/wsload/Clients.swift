import Foundation
import WebSockets

#if canImport(Glibc)
import Glibc
#endif

/// Client settings of a scenario: with or without a permessage-deflate offer.
func clientConfiguration(deflate: Bool, fragmentSize: Int? = nil) -> ClientConfiguration {
    var configuration = ClientConfiguration()
    configuration.connection.logger.logLevel = .error
    if !deflate { configuration.deflate = nil }
    if let fragmentSize { configuration.connection.fragmentSize = fragmentSize }
    return configuration
}

/// Connects to the echo server, sends one text message and checks the echo; returns the
/// open connection.
func connectAndEcho(port: Int, configuration: ClientConfiguration, tag: Int) async throws -> WebSocket {
    let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/", configuration: configuration)
    do {
        try await echoOnce(ws, tag: tag)
    } catch {
        ws.abortForLoad()
        throw error
    }
    return ws
}

/// Sends one chat-like message of `echoSize` bytes (above the deflate threshold, so
/// with permessage-deflate both directions really compress) and waits for the identical echo.
func echoOnce(_ ws: WebSocket, tag: Int) async throws {
    let head = "{\"type\":\"chat\",\"id\":\(tag),\"text\":\""
    let text = head + String(repeating: "hello ", count: 20).prefix(echoSize - head.utf8.count - 2) + "\"}"
    try await ws.send(.text(text))
    var iterator = ws.messages.makeAsyncIterator()
    guard let echo = try await iterator.next() else { throw LoadFailure("connection \(tag): closed before the echo") }
    guard echo == .text(text) else { throw LoadFailure("connection \(tag): wrong echo") }
}

/// Bytes of the message `echoOnce` sends.
let echoSize = 128

extension WebSocket {
    /// Closes without waiting (for connections being abandoned after a failure).
    func abortForLoad() { try? close(code: 1000, reason: "") }
}

/// Runs `count` jobs, at most `width` at a time; returns the errors (at most 10 kept) and
/// how many failed.
func runBounded(count: Int, width: Int, _ job: @escaping @Sendable (Int) async throws -> Void) async -> (failures: Int, samples: [String]) {
    await withTaskGroup(of: String?.self) { group in
        var next = 0
        var failures = 0
        var samples: [String] = []
        func add() {
            let i = next
            next += 1
            group.addTask {
                do { try await job(i); return nil } catch { return "\(error)" }
            }
        }
        while next < min(width, count) { add() }
        while let result = await group.next() {
            if let result {
                failures += 1
                if samples.count < 10 { samples.append(result) }
            }
            if next < count { add() }
        }
        return (failures, samples)
    }
}

/// `connections N` from the server's `GET /stats`, over a plain blocking socket (a
/// short local request, kept out of NIO so it works whatever the loops are doing).
func serverConnectionCount(port: Int) -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard write(fd, request, request.count) == request.count else { return nil }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while response.count < 65536 {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        response += chunk[..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let range = text.range(of: "connections ") else { return nil }
    return Int(text[range.upperBound...].prefix { $0.isNumber })
}

/// Polls `condition` every 50 ms for up to `seconds`; returns whether it held.
func settle(seconds: Double, _ condition: () -> Bool) async -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 50_000_000)
    }
    return condition()
}
