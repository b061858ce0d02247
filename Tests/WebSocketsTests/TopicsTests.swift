import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import WebSockets

/// How the subscribers of a fan-out test negotiate permessage-deflate.
struct TopicDeflateCase: Sendable, CustomStringConvertible {
    var name: String
    var offer: DeflateClientOffer?
    /// Frame sets `publish` should build per message (one uncompressed, one per window).
    var setsPerMessage: Int
    var description: String { name }
}

@Suite(.serialized) struct TopicsTests {
    /// 1,000 subscribers each receive every published message exactly once, in order;
    /// each message's frames are built once for all of them (one set uncompressed, or one
    /// compressed set in the shared no-context-takeover mode). Every fifth message is
    /// 5 KiB, so both ways of queueing shared frames (copied into the batch, or written
    /// by reference) are used.
    @Test(arguments: [
        TopicDeflateCase(name: "no deflate", offer: nil, setsPerMessage: 1),
        TopicDeflateCase(name: "shared deflate", offer: DeflateClientOffer(serverNoContextTakeover: true), setsPerMessage: 1),
    ])
    func thousandSubscribersGetEveryMessageOnceInOrder(_ deflate: TopicDeflateCase) async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        server.onconnection = { ws, _ in _ = try? ws.subscribe("news") }
        var config = ClientConfiguration()
        config.deflate = deflate.offer
        config.connection.pingInterval = nil
        let clients = try await TopicTest.clients(1000, url: Conn.url(server), configuration: config)
        #expect(await Conn.waitUntil(seconds: 10) { server.subscriberCount("news") == 1000 })
        if deflate.offer != nil {
            #expect(clients.allSatisfy { $0.ws.extensions.contains("server_no_context_takeover") })
        }
        let expected = (0..<20).map { TopicTest.message($0, size: $0 % 5 == 4 ? 5000 : 125) }
        let builtBefore = server.fanoutEncoder.framesBuilt
        for m in expected { #expect(server.publish("news", m) == 1000) }
        #expect(server.fanoutEncoder.framesBuilt - builtBefore == 20 * deflate.setsPerMessage)
        let done = await Conn.waitUntil(seconds: 30) { clients.allSatisfy { $0.inbox.count >= 20 } }
        #expect(done, "received: \(clients.map(\.inbox.count).filter { $0 < 20 }.prefix(10))")
        await Conn.sleep(ms: 100)  // duplicates, if any, would arrive now
        let wrong = clients.filter { $0.inbox.texts != expected }
        #expect(wrong.isEmpty, "\(wrong.count) clients got another sequence, e.g. \(wrong.first.map { $0.inbox.texts.count } ?? 0) messages")
        for c in clients { try c.ws.closeNow() }
        #expect(await Conn.waitUntil(seconds: 20) { server.subscriberCount("news") == 0 })
        await server.shutdown(deadline: .seconds(2))
    }

    /// Subscribers with every encoding on one topic: no deflate, context takeover (each
    /// compresses itself), and no context takeover with two window sizes (one shared
    /// compressed set per window). Each gets every message in order; compressed frames
    /// really are compressed (RSV1) where the connection compresses.
    @Test func mixedEncodingsGetTheSameMessages() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        server.onconnection = { ws, _ in _ = try? ws.subscribe("mix") }
        var offers: [DeflateClientOffer?] = [nil, DeflateClientOffer()]
        offers.append(DeflateClientOffer(serverNoContextTakeover: true))
        offers.append(DeflateClientOffer(serverNoContextTakeover: true, serverMaxWindowBits: 10))
        var clients: [(ws: WebSocket, inbox: TopicInbox)] = []
        for offer in offers {
            var config = ClientConfiguration()
            config.deflate = offer
            clients += try await TopicTest.clients(5, url: Conn.url(server), configuration: config)
        }
        // Two raw subscribers show what is on the wire: shared compressed frames, window 10.
        let header = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        var raws: [RawPeer] = []
        for _ in 0..<2 {
            let raw = try await RawPeer.connect(port: server.port)
            try await raw.send(RawWS.upgradeRequest(port: server.port, extraHeaders: [header]))
            #expect(try await raw.readHead().hasPrefix("HTTP/1.1 101"))
            raws.append(raw)
        }
        #expect(await Conn.waitUntil(seconds: 10) { server.subscriberCount("mix") == 22 })
        let expected = (0..<10).map { TopicTest.message($0, size: 300) } + ["short"]
        let builtBefore = server.fanoutEncoder.framesBuilt
        for m in expected { server.publish("mix", m) }
        // Compressible: plain + windows 10 and 15 (3 sets); "short" is under the threshold: 1.
        #expect(server.fanoutEncoder.framesBuilt - builtBefore == 10 * 3 + 1)
        #expect(await Conn.waitUntil(seconds: 10) { clients.allSatisfy { $0.inbox.count >= expected.count } })
        let wrong = clients.indices.filter { clients[$0].inbox.texts != expected }
        #expect(wrong.isEmpty, "clients \(wrong) got another sequence")
        var wire: [[RawFrame]] = []
        for raw in raws {
            var frames: [RawFrame] = []
            for _ in expected { frames.append(try await raw.readFrame()) }
            wire.append(frames)
        }
        #expect(wire[0] == wire[1], "both subscribers get the same bytes")
        #expect(wire[0].prefix(10).allSatisfy { $0.rsv == 0x40 && $0.payload.count < 300 }, "\(wire[0].prefix(3))")
        #expect(wire[0].last.map { $0.rsv == 0 && $0.text == "short" } == true)
        for c in clients { try c.ws.closeNow() }
        for raw in raws { await raw.close() }
        await server.shutdown(deadline: .seconds(2))
    }

    /// `compress: false` sends the one uncompressed set to every subscriber, also to those
    /// that compress with context takeover (an uncompressed message leaves their stream alone).
    @Test func uncompressedPublishReachesCompressingSubscribers() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        server.onconnection = { ws, _ in _ = try? ws.subscribe("t") }
        let clients = try await TopicTest.clients(3, url: Conn.url(server))
        #expect(await Conn.waitUntil(seconds: 5) { server.subscriberCount("t") == 3 })
        let before = server.fanoutEncoder.framesBuilt
        let messages = (0..<5).map { TopicTest.message($0, size: 500) }
        for (i, m) in messages.enumerated() { server.publish("t", m, compress: i % 2 == 0) }
        // Compressed ones are built by each context-takeover connection itself.
        #expect(server.fanoutEncoder.framesBuilt - before == 2)
        #expect(await Conn.waitUntil(seconds: 5) { clients.allSatisfy { $0.inbox.count == 5 } })
        #expect(clients.allSatisfy { $0.inbox.texts == messages })
        for c in clients { try c.ws.closeNow() }
        await server.shutdown(deadline: .seconds(2))
    }

    /// A subscriber that never reads hits the overflow policy (1008) while the others
    /// receive every message: they finish while the slow one is still stuck.
    @Test func slowSubscriberDoesNotDelayOthers() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.maxBufferedBytes = 256 << 10
            $0.connection.pingInterval = nil
            $0.connection.closeTimeout = .seconds(20)
        }, group: connHeavyGroup)
        let slowSocket = ServerBox<WebSocket?>(nil)
        let slowEvents = ConnRecorder()
        server.onconnection = { ws, request in
            if request.uri == "/slow" {
                slowEvents.attach(ws)
                slowSocket.set(ws)
            }
            _ = try? ws.subscribe("feed")
        }
        let clients = try await TopicTest.clients(50, url: Conn.url(server), group: connHeavyGroup)
        let raw = try await RawPeer.upgraded(port: server.port, path: "/slow", receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        #expect(await Conn.waitUntil(seconds: 5) { server.subscriberCount("feed") == 51 })
        let slow = try #require(slowSocket.get)
        // Bursts of 8 messages of 8 KiB; before each burst the fast subscribers must have
        // the previous ones, which they can only if the stuck one does not hold them back.
        var published: [String] = []
        var behind = false
        let start = ContinuousClock.now
        while slow.readyState == .open && published.count < 800 {
            for _ in 0..<8 {
                let m = "\(published.count):" + String(repeating: "x", count: 8 << 10)
                server.publish("feed", m, compress: false)
                published.append(m)
            }
            let count = published.count
            if !(await Conn.waitUntil(seconds: 10) { clients.allSatisfy { $0.inbox.count >= count } }) {
                behind = true
                break
            }
        }
        let elapsed = Conn.elapsed(since: start)
        #expect(!behind, "fast subscribers fell behind: \(clients.map(\.inbox.count).min() ?? 0) of \(published.count)")
        #expect(slow.readyState == .closing, "the slow subscriber should have hit the limit")
        #expect(clients.allSatisfy { $0.ws.readyState == .open }, "fast subscribers stay open")
        #expect(slowEvents.closes.isEmpty, "the fast ones finished while the slow one still waits for its close timeout")
        let mismatched = clients.filter { $0.inbox.texts != published }.count
        #expect(mismatched == 0, "\(mismatched) fast subscribers got another sequence")
        print("slow subscriber: \(published.count) messages of 8 KiB reached 50 fast subscribers in \(elapsed) s while one was stuck")
        await raw.close()
        let event = try await slowEvents.waitClose()
        #expect(event.code == 1008 && !event.wasClean)
        if case .bufferOverflow? = slowEvents.errors.first {} else { Issue.record("expected bufferOverflow: \(slowEvents.errors)") }
        #expect(await Conn.waitUntil(seconds: 5) { server.subscriberCount("feed") == 50 })
        for c in clients { try c.ws.closeNow() }
        await server.shutdown(deadline: .seconds(2))
    }

    /// Under `.dropMessages`, a subscriber that stops reading loses messages past the
    /// limit but stays open; what it gets is in order, and it gets new messages once it reads.
    @Test func dropPolicyKeepsSlowSubscriberOpen() async throws {
        let server = try await WebSocketServer.conn({
            $0.connection.maxBufferedBytes = 128 << 10
            $0.connection.overflowPolicy = .dropMessages
            $0.connection.pingInterval = nil
        }, group: connHeavyGroup)
        let sockets = ConnServerSockets(server, echo: false) { ws in _ = try? ws.subscribe("feed") }
        let raw = try await RawPeer.upgraded(port: server.port, receiveBuffer: 4096, group: connHeavyGroup)
        try await raw.setReading(false)
        let (sws, _, _) = try await sockets.socket()
        #expect(await Conn.waitUntil(seconds: 5) { server.subscriberCount("feed") == 1 })
        let body = String(repeating: "y", count: 16 << 10)
        for i in 0..<300 {
            server.publish("feed", "\(i):\(body)", compress: false)
            if i % 16 == 0 { await Conn.sleep(ms: 2) }
            #expect(sws.bufferedAmount <= (128 << 10) + (16 << 10) + 16)
        }
        #expect(sws.readyState == .open)
        try await raw.setReading(true)
        #expect(await Conn.waitUntil(seconds: 10) { sws.bufferedAmount == 0 })
        server.publish("feed", "last")
        var seqs: [Int] = []
        while true {
            let f = try await raw.readFrame()
            if f.text == "last" { break }
            seqs.append(Int(f.text.prefix { $0 != ":" })!)
        }
        #expect(seqs.count < 300, "some messages were dropped")
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "in order, no duplicates")
        #expect(sws.readyState == .open)
        await raw.close()
        await server.shutdown(deadline: .seconds(1))
    }

    /// Unsubscribing and closing remove a connection's topics; a closed connection
    /// cannot subscribe again; a client connection cannot subscribe at all.
    @Test func unsubscribeAndCloseDropTopics() async throws {
        let server = try await WebSocketServer.conn { $0.connection.pingInterval = nil }
        let sockets = ConnServerSockets(server, echo: false)
        let clients = try await TopicTest.clients(1, url: Conn.url(server))
        let (sws, _, _) = try await sockets.socket()
        #expect(try sws.subscribe("a"))
        #expect(try sws.subscribe("b"))
        #expect(try sws.subscribe("b") == false, "already subscribed")
        #expect(sws.topics == ["a", "b"])
        #expect(sws.unsubscribe("a"))
        #expect(!sws.unsubscribe("a"))
        #expect(sws.topics == ["b"])
        #expect(server.publish("a", "to a") == 0)
        #expect(server.publish("b", "to b") == 1)
        #expect(await Conn.waitUntil(seconds: 5) { clients[0].inbox.texts == ["to b"] })
        try clients[0].ws.closeNow()
        #expect(await Conn.waitUntil(seconds: 5) { sws.readyState == .closed })
        #expect(await Conn.waitUntil(seconds: 5) { server.subscriberCount("b") == 0 })
        #expect(sws.topics.isEmpty)
        #expect(server.topics.activeTopics.isEmpty)
        #expect(try sws.subscribe("c") == false, "closed connections cannot subscribe")
        #expect(server.subscriberCount("c") == 0)
        #expect(throws: WebSocketError.self) { try clients[0].ws.subscribe("x") }
        await server.shutdown(deadline: .seconds(1))
    }
}
