import SeededRandom
// `echo`: end to end over loopback in this process. Our `WebSocketServer` (`engine`) and
// an echo server on NIOWebSocket's codec (`nio`, EchoNIOServer.swift) are driven by the
// same load client (EchoLoadClient.swift): N connections, each in a ping-pong loop.
//
// Threads: one MultiThreadedEventLoopGroup of 2 threads, because the machine has 2 cores.
// The load client's connections all run on its first event loop, the server under test
// (listener and connections) on the second, for both impls alike, so each side has one
// thread and one core, and who shares a thread with whom does not depend on NIO's
// round-robin. The benchmark thread only starts rounds and waits for them.
//
// One operation is one round: every connection sends `perConnection` messages, each after
// the previous one's echo, and the round ends when all echoes are in. Times are per
// message (the harness divides by the messages of a round), `ops_per_s` is echoed
// messages per second over all connections and `gbps` echoed payload bytes per second.
//
// The harness fixes a row's extra fields before it measures, so `p50_us`/`p99_us`
// (round-trip times of single messages, from just before the client frames and sends one
// to its echo being parsed, deflate included) come from a round-trip pass over the same
// connections and the same rounds, run while the group's cases are built (only for the
// rows the filter selects), impls interleaved round by round like the harness does. On a
// busy machine that pass and the timed samples can see different conditions.
//
// Connections are opened once per case and impl, by that pass, stay open (idle) until
// their case is measured, and are closed (closing handshake, then the server stops) when
// the next echo case starts, or at exit for the last one. Every wait is bounded: a server
// that stalls, closes or echoes wrongly stops wsbench with a message saying which.
import NIOCore
import NIOPosix
import WebSockets
#if canImport(Glibc)
import Glibc
#endif

/// One case of the group.
struct EchoSpec {
    var name: String
    var connections: Int
    var messageSize: Int
    var deflate = false
    /// Messages each connection sends per operation (a round of ~1-4 ms here).
    var perConnection: Int

    var messagesPerRound: Int { connections * perConnection }
}

let echoSpecs = [
    EchoSpec(name: "1conn-16B", connections: 1, messageSize: 16, perConnection: 64),
    EchoSpec(name: "1conn-1KiB", connections: 1, messageSize: 1 << 10, perConnection: 64),
    EchoSpec(name: "64conn-16B", connections: 64, messageSize: 16, perConnection: 4),
    EchoSpec(name: "64conn-1KiB", connections: 64, messageSize: 1 << 10, perConnection: 4),
    EchoSpec(name: "64conn-64KiB", connections: 64, messageSize: 64 << 10, perConnection: 1),
    EchoSpec(name: "64conn-1KiB-deflate", connections: 64, messageSize: 1 << 10, deflate: true, perConnection: 4),
]

/// A server under test and the load client connected to it.
final class EchoSession {
    let client: EchoLoadClient
    private let stopServer: () -> Void

    init(client: EchoLoadClient, stopServer: @escaping () -> Void) {
        self.client = client
        self.stopServer = stopServer
    }

    /// Closing handshakes, then the server stops. Returns the connections the server
    /// left open after the closing handshake.
    func close() -> Int {
        let forced = client.close()
        stopServer()
        return forced
    }
}

/// The group's shared state: the event loops and the open sessions.
final class EchoRig {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let clientLoop: EventLoop
    let serverLoop: EventLoop
    /// The slots with an open session.
    var open: [EchoSlot] = []
    /// The case being measured.
    var activeCase: String?
    /// Set when the group fails: exit then skips the graceful teardown.
    var failed = false
    private var exitHook = false

    init() {
        let loops = Array(group.makeIterator())
        clientLoop = loops[0]
        serverLoop = loops[1]
    }

    /// Closes the last case's connections at exit. Installed once a session is open, so
    /// after OpenSSL registered its own exit cleanup: exit handlers run in reverse order,
    /// and the closing handshake still needs OpenSSL (client masks).
    func installExitHook() {
        guard !exitHook else { return }
        exitHook = true
        atexit { echoTeardownAtExit() }
    }
}

nonisolated(unsafe) private var echoRigStorage: EchoRig?

/// The rig, created at first use (listing or filtering never starts threads).
func echoRig() -> EchoRig {
    if let rig = echoRigStorage { return rig }
    let rig = EchoRig()
    echoRigStorage = rig
    return rig
}

private func echoTeardownAtExit() {
    guard let rig = echoRigStorage, !rig.failed else { return }
    fflush(nil)  // the table is out whatever happens below
    for slot in rig.open { slot.close() }
    try? rig.group.syncShutdownGracefully()
}

/// Stops wsbench with what went wrong.
func echoFail(_ what: String, _ error: Error) -> Never {
    echoRigStorage?.failed = true
    fail("echo/\(what): \(error)")
}

/// One impl of one case: opens its session on demand.
final class EchoSlot {
    let spec: EchoSpec
    let impl: String
    let load: EchoLoad
    private(set) var session: EchoSession?

    init(spec: EchoSpec, impl: String, load: EchoLoad) {
        self.spec = spec
        self.impl = impl
        self.load = load
    }

    var label: String { "\(spec.name)/\(impl)" }

    /// The open session, after closing the previous case's sessions.
    func activate() -> EchoSession {
        let rig = echoRig()
        if rig.activeCase != spec.name {
            for slot in rig.open where slot.spec.name == rig.activeCase { slot.close() }
            rig.activeCase = spec.name
        }
        return openSession()
    }

    func openSession() -> EchoSession {
        if let session { return session }
        let rig = echoRig()
        do {
            let (port, stop) = try impl == "engine" ? startEngineServer(rig.serverLoop) : startNIOServer(rig.serverLoop)
            let client: EchoLoadClient
            do {
                client = try EchoLoadClient.connect(load: load, port: port, loop: rig.clientLoop)
            } catch {
                stop()
                throw error
            }
            let s = EchoSession(client: client, stopServer: stop)
            session = s
            rig.open.append(self)
            rig.installExitHook()
            return s
        } catch {
            echoFail(label, error)
        }
    }

    func close() {
        guard let session else { return }
        self.session = nil
        let rig = echoRig()
        rig.open.removeAll { $0 === self }
        let forced = session.close()
        if forced > 0 {
            eprint("\nwsbench: echo/\(label): \(forced) of \(spec.connections) connections still open 2 s after the closing handshake\n")
        }
    }

    /// One round: the harness's operation (`activating`: the case being measured now),
    /// or one of the round-trip pass.
    func round(record: Bool = false, activating: Bool = true) {
        do {
            let session = activating ? activate() : openSession()
            try session.client.round(messages: spec.perConnection, record: record)
        } catch {
            echoFail(label, error)
        }
    }
}

/// Our server, echoing every message as the README shows.
private func startEngineServer(_ loop: EventLoop) throws -> (port: Int, stop: () -> Void) {
    let promise = loop.makePromise(of: WebSocketServer.self)
    let configuration = {
        var c = ServerConfiguration()
        c.connection.logger.logLevel = .warning  // no "listening on" line per case
        return c
    }()
    promise.completeWithTask {
        try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: configuration, eventLoopGroup: loop)
    }
    let server = try waitBounded(promise.futureResult, seconds: 5, "starting WebSocketServer")
    server.onconnection = { ws, _ in ws.onmessage = { try? ws.send($0.data) } }
    return (server.port, {
        let done = loop.makePromise(of: Void.self)
        done.completeWithTask { await server.shutdown(deadline: .seconds(2)) }
        _ = try? waitBounded(done.futureResult, seconds: 5, "WebSocketServer.shutdown")
    })
}

private func startNIOServer(_ loop: EventLoop) throws -> (port: Int, stop: () -> Void) {
    let server = try NIOEchoServer.start(on: loop)
    return (server.port, { server.stop() })
}

/// Chat-like JSON texts of exactly `bytes` bytes, all different.
func chatTexts(count: Int, bytes: Int) -> [[UInt8]] {
    var rng = SeededRandom(seed: 11)
    let words = [
        "the", "a", "meeting", "is", "at", "noon", "see", "you", "there", "thanks", "ok", "lunch", "deploy",
        "build", "failed", "passed", "review", "please", "today", "tomorrow", "room", "call", "link", "ship",
        "it", "great", "news", "bug", "fix", "merged", "who", "can", "take", "this", "on", "friday",
    ]
    return (0..<count).map { i in
        var s = "{\"type\":\"message\",\"id\":\(100_000 + i),\"room\":\"general\","
        s += "\"user\":\"user\(Int.random(in: 1...50, using: &rng))\",\"text\":\""
        while s.utf8.count < bytes { s += words[Int.random(in: 0..<words.count, using: &rng)] + " " }
        return Array(s.utf8.prefix(bytes - 2)) + Array("\"}".utf8)
    }
}

/// Round trips of every slot, recorded over interleaved rounds after a warm-up; returns
/// the p50 and p99 in microseconds by impl.
private func roundTripPass(_ slots: [EchoSlot]) -> [String: [String: Double]] {
    let seconds = options.quick ? 0.03 : 0.4
    let warmSeconds = options.quick ? 0.01 : 0.05
    var spent = [Double](repeating: 0, count: slots.count)
    for slot in slots { _ = slot.openSession() }
    for (goal, record) in [(warmSeconds, false), (seconds, true)] {
        spent = spent.map { _ in 0 }
        var rounds = 0
        // Bounded: at least 3 rounds per impl, at most 5000, until each spent its time.
        while rounds < 5000 && (rounds < 3 || spent.contains { $0 < goal * 1e9 }) {
            for (i, slot) in slots.enumerated() {
                let t0 = now()
                slot.round(record: record, activating: false)
                spent[i] += Double(now() - t0)
            }
            rounds += 1
        }
    }
    var extra: [String: [String: Double]] = [:]
    for slot in slots {
        let rtts = slot.session!.client.takeRTTs().sorted()
        guard !rtts.isEmpty else { continue }
        let p50 = Double(rtts[rtts.count / 2]) / 1000
        let p99 = Double(rtts[min(rtts.count - 1, rtts.count * 99 / 100)]) / 1000
        extra[slot.impl] = ["p50_us": p50, "p99_us": p99]
    }
    return extra
}

func echoCases() -> [Case] {
    var rng = SeededRandom(seed: 5)
    var cases: [Case] = []
    for spec in echoSpecs {
        let payloads = spec.deflate ? chatTexts(count: 64, bytes: spec.messageSize) : [rng.bytes(spec.messageSize)]
        let load = EchoLoad(
            connections: spec.connections, messageSize: spec.messageSize, deflate: spec.deflate, payloads: payloads)
        let slots = (spec.deflate ? ["engine"] : ["engine", "nio"]).map { EchoSlot(spec: spec, impl: $0, load: load) }
        var c = Case(
            group: "echo", name: spec.name, bytesPerOp: spec.messagesPerRound * spec.messageSize,
            unitsPerOp: spec.messagesPerRound,
            impls: slots.map { slot in
                Impl(name: slot.impl) {
                    slot.round()
                    return slot.spec.messagesPerRound
                }
            })
        // The round-trip pass, only for what this run measures (not for --list, nor
        // when the filter leaves the case out).
        let selected = options.list ? [] : slots.filter { matches(c, $0.impl) }
        if !selected.isEmpty {
            eprint("\r\u{1B}[K[echo] \(spec.name): connecting, round-trip pass")
            c.extra = roundTripPass(selected)
        }
        cases.append(c)
    }
    return cases
}
