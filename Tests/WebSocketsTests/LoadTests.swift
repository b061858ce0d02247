import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

#if canImport(Glibc)
import Glibc
#endif

// Small versions of the scripts/loadtest scenarios (issue 7), with the server and the
// clients in this process: many connections at once, churn with descriptors and the
// server's bookkeeping back to baseline, and ordering under load.

@Suite(.serialized) struct LoadTests {
    /// Clients that do not ping (the tests are short) and log only errors.
    static func client(deflate: Bool, fragmentSize: Int? = nil) -> ClientConfiguration {
        var c = ClientConfiguration()
        c.connection.logger.logLevel = .error
        if !deflate { c.deflate = nil }
        if let fragmentSize { c.connection.fragmentSize = fragmentSize }
        return c
    }

    static func server(fragmentSize: Int? = nil) async throws -> WebSocketServer {
        var c = ServerConfiguration()
        c.connection.logger.logLevel = .error
        if let fragmentSize { c.connection.fragmentSize = fragmentSize }
        let server = try await serverStart(c)
        serverEcho(server)
        return server
    }

    /// Descriptors open in this process.
    static var fdCount: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? -1 }

    /// Sends one text message and checks its echo.
    static func echo(_ ws: WebSocket, _ tag: Int) async throws -> Bool {
        try await ws.send(.text("message \(tag)"))
        var iterator = ws.messages.makeAsyncIterator()
        return try await iterator.next() == .text("message \(tag)")
    }

    /// Runs `count` jobs `width` at a time; returns how many failed.
    static func bounded(_ count: Int, width: Int, _ job: @escaping @Sendable (Int) async throws -> Bool) async -> Int {
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            var failed = 0
            func add() {
                let i = next
                next += 1
                group.addTask { (try? await job(i)) ?? false }
            }
            while next < min(width, count) { add() }
            while let ok = await group.next() {
                if !ok { failed += 1 }
                if next < count { add() }
            }
            return failed
        }
    }

    /// 500 connections open at once, each exchanging a message while all are open; the
    /// server counts all of them, then none once they closed.
    @Test func fiveHundredConcurrentConnections() async throws {
        // Both ends live in this process: over 1,000 descriptors, above the usual soft
        // limit of 1,024. Raise it to the hard limit, as servers do.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try #require(limit.rlim_cur >= 1100, "RLIMIT_NOFILE hard limit \(limit.rlim_max) is below 1,100")
        let server = try await Self.server()
        let sockets = NIOLockedValueBox<[WebSocket]>([])
        let url = "ws://127.0.0.1:\(server.port)/"
        let openFailures = await Self.bounded(500, width: 64) { _ in
            let ws = try await WebSocket.connect(to: url, configuration: Self.client(deflate: true))
            sockets.withLockedValue { $0.append(ws) }
            return true
        }
        #expect(openFailures == 0)
        let open = sockets.withLockedValue { $0 }
        #expect(open.count == 500)
        #expect(server.connectionCount == 500)
        let echoFailures = await Self.bounded(open.count, width: open.count) { i in try await Self.echo(open[i], i) }
        #expect(echoFailures == 0)
        let closeFailures = await Self.bounded(open.count, width: 128) { i in
            try await open[i].close()
            return open[i].readyState == .closed
        }
        #expect(closeFailures == 0)
        #expect(await serverEventually { server.connectionCount == 0 })
        await server.shutdown()
    }

    /// 2,000 connect/echo/close cycles, 32 at a time: afterwards this process holds as many
    /// descriptors as before (client and server sockets both live here) and the server
    /// tracks no connection.
    @Test func churnReturnsToBaseline() async throws {
        let server = try await Self.server()
        let url = "ws://127.0.0.1:\(server.port)/"
        let cycle: @Sendable (Int) async throws -> Bool = { i in
            let ws = try await WebSocket.connect(to: url, configuration: Self.client(deflate: true))
            let ok = try await Self.echo(ws, i)
            try await ws.close()
            return ok && ws.readyState == .closed
        }
        #expect(await Self.bounded(50, width: 8, cycle) == 0)  // warm-up: loops and pools exist
        #expect(await serverEventually { server.connectionCount == 0 })
        let baseline = Self.fdCount
        let failures = await Self.bounded(2000, width: 32, cycle)
        #expect(failures == 0)
        #expect(await serverEventually { server.connectionCount == 0 && Self.fdCount <= baseline },
                "fds \(baseline) before, \(Self.fdCount) after; \(server.connectionCount) connections")
        await server.shutdown()
    }

    /// A message of the ordering test: a pure function of (connection, seq); even ones are
    /// text with multi-byte UTF-8, odd ones binary; every 25th is longer than the fragment size.
    static func sequenced(_ c: Int, _ seq: Int, fragmentSize: Int) -> Message {
        let size = seq % 25 == 0 ? fragmentSize * 2 + seq % 7 : (seq * 37 + c * 11) % 600
        let header = "c\(c) s\(seq) "
        if seq % 2 == 0 {
            let alphabet: [Character] = ["a", "b", "é", "€", "😀", " "]
            var text = header
            for k in 0..<size { text.append(alphabet[(k + seq + c) % alphabet.count]) }
            return .text(text)
        }
        return .binary(Array(header.utf8) + (0..<size).map { UInt8(truncatingIfNeeded: $0 / 5 + seq + c) })
    }

    /// 16 connections x 500 messages sent as fast as backpressure allows: every echo is
    /// the next message of its connection, byte for byte (text compared as UTF-8 bytes).
    @Test(arguments: [false, true]) func orderingUnderLoad(deflate: Bool) async throws {
        let fragmentSize = 1024
        let server = try await Self.server(fragmentSize: fragmentSize)
        let url = "ws://127.0.0.1:\(server.port)/"
        let count = 500
        let failures = await Self.bounded(16, width: 16) { c in
            let ws = try await WebSocket.connect(to: url, configuration: Self.client(deflate: deflate, fragmentSize: fragmentSize))
            let sender = Task {
                for seq in 0..<count { try await ws.send(Self.sequenced(c, seq, fragmentSize: fragmentSize)) }
            }
            var expected = 0
            for try await message in ws.messages {
                let want = Self.sequenced(c, expected, fragmentSize: fragmentSize)
                let same: Bool = switch (message, want) {
                case (.text(let a), .text(let b)): a.utf8.elementsEqual(b.utf8)
                case (.binary(let a), .binary(let b)): a == b
                default: false
                }
                guard same else { break }
                expected += 1
                if expected == count { break }
            }
            try await sender.value
            try await ws.close()
            return expected == count
        }
        #expect(failures == 0)
        await server.shutdown()
    }

    /// Clients that send a whole upgrade request and reset the connection at once (RST via
    /// SO_LINGER 0). The server's 101 then fails to write, which closes the channel before
    /// the WebSocket handler joins the pipeline. Before the fix that handler never heard of
    /// the close: the connection stayed in `connectionCount` forever (found by wsload's
    /// churn, ~60% of such clients leaked). Every one must now be forgotten.
    @Test func resetRightAfterTheUpgradeRequestLeavesNothingOpen() async throws {
        let server = try await Self.server()
        let opened = ServerBox(0)
        let closed = ServerBox(0)
        server.onconnection = { ws, _ in
            opened.update { $0 += 1 }
            ws.onclose = { _ in closed.update { $0 += 1 } }
        }
        for _ in 0..<200 {
            let raw = try await ServerRawClient.connect(port: server.port)
            let provider = try #require(raw.channel as? SocketOptionProvider)
            try await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            try await raw.send(serverUpgradeRequest())
            raw.close()
        }
        #expect(await serverEventually { server.connectionCount == 0 }, "\(server.connectionCount) still open")
        #expect(await serverEventually { opened.get == closed.get }, "\(opened.get) opened, \(closed.get) closed")
        await server.shutdown()
    }
}
