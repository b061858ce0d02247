import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

#if canImport(Glibc)
import Glibc
#endif

/// How a hostile peer leaves.
enum AbruptExit: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// Half an upgrade request (or, against our client, half a 101 response), then FIN.
    case midHandshake
    /// The whole upgrade request, then FIN before reading the answer.
    case rightAfterRequest
    /// Upgraded, then a frame header and part of its payload, then FIN.
    case midFrame
    /// Upgraded, then half a frame and a TCP reset (SO_LINGER 0).
    case resetMidFrame
    /// The other side sent its close frame; the peer drops TCP without answering.
    case midClose
    /// Upgraded, half of a close frame, then FIN.
    case halfACloseFrame
    /// Upgraded, a message, then shutdown of the peer's write side only (half-closed TCP).
    case halfClosed

    var testDescription: String { rawValue }
}

/// Open file descriptors of this process.
func hostileOpenFDs() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Abrupt disconnects: every WebSocket reaches CLOSED with exactly one onclose (1006 when
/// no close frame arrived), the server's connection count returns to 0, and no file
/// descriptor is left behind.
@Suite struct HostileDisconnectTests {
    private func resetAndClose(_ peer: RawPeer) async {
        if let provider = peer.channel as? SocketOptionProvider {
            _ = try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        await peer.close()
    }

    /// Waits until the fd count is back to `baseline` (sockets close asynchronously).
    private func expectNoFDLeak(_ baseline: Int, sourceLocation: SourceLocation = #_sourceLocation) async {
        let settled = await Conn.waitUntil(seconds: 5) { hostileOpenFDs() <= baseline }
        #expect(settled, "open fds: \(hostileOpenFDs()), before: \(baseline)", sourceLocation: sourceLocation)
    }

    @Test(arguments: AbruptExit.allCases)
    func serverSurvivesAbruptClient(_ exit: AbruptExit) async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server)
        // Warm up (event loop threads, lazily created state), then count.
        let warm = try await RawPeer.upgraded(port: server.port)
        try await warm.send(RawWS.frame(RawWS.text, "warm"))
        _ = try await warm.readFrame()
        await warm.close()
        _ = try await sockets.socket(0).events.waitClose()
        #expect(await Conn.waitUntil(seconds: 5) { server.connectionCount == 0 })
        let baseline = hostileOpenFDs()

        let request = RawWS.upgradeRequest(port: server.port)
        let peer: RawPeer
        switch exit {
        case .midHandshake:
            peer = try await RawPeer.connect(port: server.port)
            try await peer.send(Array(request[..<(request.count / 2)]))
            await peer.close()
        case .rightAfterRequest:
            peer = try await RawPeer.connect(port: server.port)
            try await peer.send(request)
            await peer.close()
        case .midFrame:
            peer = try await RawPeer.upgraded(port: server.port)
            try await peer.send(Array(RawWS.frame(RawWS.binary, Conn.bytes(1000)).prefix(300)))
            await peer.close()
        case .resetMidFrame:
            peer = try await RawPeer.upgraded(port: server.port)
            try await peer.send(Array(RawWS.frame(RawWS.binary, Conn.bytes(1000)).prefix(300)))
            await resetAndClose(peer)
        case .midClose:
            peer = try await RawPeer.upgraded(port: server.port)
            try await sockets.socket(1).ws.closeNow(code: 1000, reason: "bye")
            #expect(try await peer.readFrame(opcode: RawWS.close).frame.closeCode == 1000)
            await peer.close()
        case .halfACloseFrame:
            peer = try await RawPeer.upgraded(port: server.port)
            try await peer.send(Array(RawWS.frame(RawWS.close, RawWS.closePayload(1000, "bye")).prefix(5)))
            await peer.close()
        case .halfClosed:
            peer = try await RawPeer.upgraded(port: server.port)
            try await peer.send(RawWS.frame(RawWS.text, "last words"))
            try await peer.channel.close(mode: .output).get()
        }

        // Whatever server-side sockets exist (none when the upgrade never completed).
        await Conn.sleep(ms: 100)
        let count = sockets.count
        for i in 1..<max(count, 1) {
            let (ws, events, _) = try await sockets.socket(i)
            let event = try await events.waitClose()
            #expect(event.code == 1006 && !event.wasClean, "\(event)")
            await Conn.sleep(ms: 50)  // a second onclose would have come by now
            #expect(events.closes.count == 1)
            #expect(ws.readyState == .closed)
            if exit == .halfClosed { #expect(events.messages == [.text("last words")]) }
        }
        switch exit {
        case .midHandshake: #expect(count == 1, "no WebSocket may open on half a request")
        case .rightAfterRequest: #expect(count <= 2)
        default: #expect(count == 2)
        }
        #expect(await Conn.waitUntil(seconds: 5) { server.connectionCount == 0 }, "connectionCount \(server.connectionCount)")
        if exit == .halfClosed { #expect(await peer.waitEOF(), "the server must close its side too") }
        await peer.close()
        await expectNoFDLeak(baseline)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Our client against a server that leaves abruptly: onerror, then one onclose with
    /// 1006, CLOSED, and no fd left.
    @Test(arguments: [AbruptExit.midHandshake, .midFrame, .resetMidFrame, .midClose, .halfClosed])
    func clientSurvivesAbruptServer(_ exit: AbruptExit) async throws {
        let rawServer = try await RawServer.listen()
        let config = Conn.client { $0.connection.pingInterval = nil }
        // Warm up with one full exchange, then count.
        do {
            let ws = WebSocket(url: Conn.url(rawServer), configuration: config)
            let events = ConnRecorder()
            events.attach(ws)
            let peer = try await rawServer.peer(0)
            _ = try await peer.acceptUpgrade()
            await events.expectOpen()
            await peer.close()
            _ = try await events.waitClose()
        }
        let baseline = hostileOpenFDs()

        let ws = WebSocket(url: Conn.url(rawServer), configuration: config)
        let events = ConnRecorder()
        events.attach(ws)
        let peer = try await rawServer.peer(1)
        switch exit {
        case .midHandshake:
            _ = try await peer.readHead()
            try await peer.send(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs".utf8))
            await peer.close()
        case .midFrame, .resetMidFrame:
            _ = try await peer.acceptUpgrade()
            await events.expectOpen()
            try await peer.send(Array(RawWS.frame(RawWS.binary, Conn.bytes(1000), mask: nil).prefix(300)))
            if exit == .midFrame { await peer.close() } else { await resetAndClose(peer) }
        case .midClose:
            _ = try await peer.acceptUpgrade()
            await events.expectOpen()
            try ws.closeNow(code: 1000)
            #expect(try await peer.readFrame(opcode: RawWS.close).frame.closeCode == 1000)
            await peer.close()
        case .halfClosed:
            _ = try await peer.acceptUpgrade()
            await events.expectOpen()
            try await peer.send(RawWS.frame(RawWS.text, "last words", mask: nil))
            try await peer.channel.close(mode: .output).get()
        default:
            Issue.record("not a client case")
        }
        let event = try await events.waitClose()
        #expect(event.code == 1006 && !event.wasClean, "\(event)")
        await Conn.sleep(ms: 50)
        #expect(events.closes.count == 1)
        #expect(events.errors.count == 1)
        #expect(ws.readyState == .closed)
        if exit == .halfClosed {
            #expect(events.messages == [.text("last words")])
            #expect(await peer.waitEOF(), "the client must close its side too")
        }
        await peer.close()
        await rawServer.close()
        await expectNoFDLeak(baseline)
    }
}
