import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

#if canImport(Glibc)
import Glibc
#endif

/// Hostile peers on open connections: floods of pings and fragments, a reader that never
/// reads. Every loop is bounded; the timeouts only stop a hang, they are not speed targets.
@Suite struct HostilePeerTests {
    /// The server-side channel of `ws` (read on its event loop, where it lives).
    private func channel(of ws: WebSocket) async throws -> Channel {
        try #require(try await ws.eventLoop.submit { ws.channel }.get())
    }

    /// Thousands of pings from a peer that reads none of the pongs: the server answers
    /// while its socket takes them, then keeps only the latest pong (RFC 6455 §5.5.3), so
    /// its outbound buffer stays bounded while the flood is many times larger. Once the
    /// peer reads again the latest ping is answered and the connection still works.
    @Test func pingFloodFromAPeerThatReadsNoPongs() async throws {
        let server = try await WebSocketServer.conn({ $0.connection.pingInterval = nil }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let sws = try await sockets.socket().ws
        let serverChannel = try await channel(of: sws)

        let pings = 40_000  // 125-byte payloads: 5.2 MB of pings, 5.1 MB of pongs if all were answered
        let peak = NIOLockedValueBox(0)
        let sampling = NIOLockedValueBox(true)
        let sampler = Task {
            while sampling.withLockedValue({ $0 }) {
                if let n = try? await serverChannel.getOption(.bufferedWritableBytes).get() {
                    peak.withLockedValue { $0 = max($0, n) }
                }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        func payload(_ i: Int) -> [UInt8] {
            withUnsafeBytes(of: UInt32(i).bigEndian) { Array($0) } + [UInt8](repeating: 0x70, count: 121)
        }
        for batch in stride(from: 0, to: pings, by: 500) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(500 * 131)
            for i in batch..<(batch + 500) { bytes += RawWS.frame(RawWS.ping, payload(i)) }
            try await raw.send(bytes)
        }
        // A message after the flood: its echo shows the server read every ping.
        try await raw.send(RawWS.frame(RawWS.text, "after the flood"))
        try await raw.setReading(true)
        // Read until the echo and the pong of the last ping (which may come after the
        // echo: it waits for the socket to become writable again).
        var pongs = 0
        var lastPong: [UInt8] = []
        var echo: RawFrame?
        let deadline = ContinuousClock.now + .seconds(30)
        while (echo == nil || lastPong != payload(pings - 1)) && ContinuousClock.now < deadline {
            guard let f = try? await raw.readFrame(seconds: 5) else { break }
            if f.opcode == RawWS.pong {
                pongs += 1
                lastPong = f.payload
            } else if f.opcode == RawWS.text {
                echo = f
            } else {
                Issue.record("unexpected \(f)")
                break
            }
        }
        sampling.withLockedValue { $0 = false }
        await sampler.value
        let peakBytes = peak.withLockedValue { $0 }
        #expect(echo?.text == "after the flood")
        #expect(lastPong == payload(pings - 1), "the latest ping must be answered")
        #expect(pongs < pings, "every one of \(pings) pongs was kept: nothing bounds them")
        #expect(peakBytes < 1 << 20, "server outbound buffer peaked at \(peakBytes) bytes")
        #expect(sws.readyState == .open)
        print("ping flood: \(pings) pings, \(pongs) pongs answered, server outbound peak \(peakBytes) bytes")
        await raw.close()
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Thousands of 1-byte fragments: maxMessageSize stops the message with 1009.
    @Test func tinyFragmentsStopAtMaxMessageSize() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.pingInterval = nil
            $0.connection.maxMessageSize = 4096
        })
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)
        var bytes = RawWS.frame(RawWS.text, "a", fin: false)
        for _ in 0..<10_000 { bytes += RawWS.frame(RawWS.continuation, "b", fin: false) }
        try? await raw.send(bytes)  // the server may close before taking it all
        let (close, _) = try await raw.readFrame(opcode: RawWS.close, seconds: 10)
        #expect(close.closeCode == 1009)
        #expect(await raw.waitEOF())
        let event = try await sockets.socket().events.waitClose()
        #expect(event.code == 1009 && !event.wasClean)
        #expect(try await sockets.socket().events.messages.isEmpty)
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// Empty continuation frames never reach maxMessageSize; the default
    /// maxFragmentsPerMessage (65536) stops them with 1009, while a message of a few
    /// thousand fragments is still delivered.
    @Test func emptyContinuationFloodStopsAtMaxFragmentsPerMessage() async throws {
        let server = try await WebSocketServer.conn({ $0.connection.pingInterval = nil })
        let sockets = ConnServerSockets(server)
        let raw = try await RawPeer.upgraded(port: server.port)

        var fine = RawWS.frame(RawWS.text, "a", fin: false)
        for _ in 0..<4999 { fine += RawWS.frame(RawWS.continuation, [], fin: false) }
        fine += RawWS.frame(RawWS.continuation, "z")
        try await raw.send(fine)
        #expect(try await raw.readFrame(opcode: RawWS.text).frame.text == "az")  // echoed

        let empty = RawWS.frame(RawWS.continuation, [], fin: false)
        try await raw.send(RawWS.frame(RawWS.text, "a", fin: false))
        var sent = 0
        while !raw.eof && sent < 200_000 {  // bounded: three times the limit at most
            try? await raw.send(Array([[UInt8]](repeating: empty, count: 5000).joined()))
            sent += 5000
        }
        let (close, _) = try await raw.readFrame(opcode: RawWS.close, seconds: 10)
        #expect(close.closeCode == 1009, "\(close) after \(sent) empty frames")
        let event = try await sockets.socket().events.waitClose()
        #expect(event.code == 1009)
        #expect(try await sockets.socket().events.messages == [.text("az")])
        await server.shutdown(deadline: .milliseconds(300))
    }

    /// A peer that never drains its socket. A callback sender fills bufferedAmount up to
    /// maxBufferedBytes (plus the message that crossed it), then the overflow policy closes
    /// with 1008 (TCP closes at closeTimeout: the close frame cannot get through); an
    /// async sender on another such connection suspends instead, with
    /// bufferedAmount held near highWaterMark, and the connection stays open.
    @Test func readerThatNeverReads() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.pingInterval = nil
            $0.connection.maxBufferedBytes = 512 << 10
            $0.connection.closeTimeout = .seconds(1)
            $0.connection.highWaterMark = 128 << 10
            $0.connection.lowWaterMark = 32 << 10
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server, echo: false)
        let chunk = Conn.bytes(32 << 10)

        // Callback sender.
        let stuck = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await stuck.setReading(false)
        let (sws, events, _) = try await sockets.socket(0)
        // Sent on the connection's event loop, as from its callbacks, so each send meets
        // the overflow check before the next one.
        var sent = 0
        var peak = 0
        while sent < 4000 {  // 125 MiB at most
            let buffered = try await sws.eventLoop.submit { () -> Int? in
                guard sws.readyState == .open else { return nil }
                try sws.sendNow(chunk)
                return sws.bufferedAmount
            }.get()
            guard let buffered else { break }
            sent += 1
            peak = max(peak, buffered)
            if sent % 8 == 0 { await Conn.sleep(ms: 2) }
        }
        // The close frame waits behind data the peer never reads, so TCP closes at closeTimeout.
        let event = try await events.waitClose(seconds: 10)
        #expect(event.code == 1008 && !event.wasClean, "\(event) after \(sent) messages")
        #expect(peak > 512 << 10 && peak <= (512 << 10) + chunk.count, "bufferedAmount peaked at \(peak)")
        if case .bufferOverflow(let n)? = events.errors.first {
            #expect(n > 512 << 10 && n <= (512 << 10) + chunk.count)
        } else {
            Issue.record("expected bufferOverflow, got \(events.errors)")
        }

        // Async sender.
        let slow = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await slow.setReading(false)
        let aws = try await sockets.socket(1).ws
        let asyncSent = NIOLockedValueBox(0)
        let asyncPeak = NIOLockedValueBox(0)
        let sender = Task {
            for _ in 0..<4000 {
                try await aws.send(.binary(chunk))
                let b = aws.bufferedAmount
                asyncSent.withLockedValue { $0 += 1 }
                asyncPeak.withLockedValue { $0 = max($0, b) }
            }
        }
        var last = -1
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {  // until the sender stops making progress
            await Conn.sleep(ms: 300)
            let now = asyncSent.withLockedValue { $0 }
            if now == last { break }
            last = now
        }
        #expect(last < 4000, "the async sender never suspended")
        #expect(asyncPeak.withLockedValue { $0 } <= (128 << 10) + chunk.count)
        #expect(aws.readyState == .open, "async senders wait; the overflow policy is for callback senders")
        await slow.close()
        _ = try? await Conn.withTimeout(seconds: 5, "suspended sender released") { try await sender.value }
        await stuck.close()
        #expect(await Conn.waitUntil(seconds: 5) { server.connectionCount == 0 })
        await server.shutdown(deadline: .milliseconds(300))
    }
}
