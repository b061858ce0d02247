import Foundation
import NIOConcurrencyHelpers
import WebSockets

/// N connections open at the same time to one server; each exchanges one message while
/// all are open; afterwards every one closes and the server is back to zero connections.
func runConcurrency(count: Int, report: LoadReport) async throws {
    report.heading("\(count) concurrent connections (server in a child process, permessage-deflate negotiated)")
    let server = try ServerProcess(flags: [])
    defer { server.stop() }
    let baseFds = server.fdCount
    let configuration = clientConfiguration(deflate: true)
    let port = server.port
    let sockets = NIOLockedValueBox<[WebSocket]>([])
    let start = Date()
    // Opening: at most 128 handshakes in flight (the server's accept backlog is 256).
    let opened = await runBounded(count: count, width: 128) { _ in
        let ws = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/", configuration: configuration)
        sockets.withLockedValue { $0.append(ws) }
    }
    let openTime = seconds(since: start)
    let open = sockets.withLockedValue { $0 }
    let serverCount = serverConnectionCount(port: server.port) ?? -1
    report.note("opened \(open.count) in \(fmt(openTime)) s; server reports \(serverCount) open, \(server.fdCount) fds, RSS \(server.rssKiB / 1024) MiB")
    for sample in opened.samples { report.note("open error: \(sample)") }
    report.check(opened.failures == 0 && serverCount == count, "all \(count) connections open at once (\(opened.failures) failed)")

    // Every connection echoes one message while all of them are open.
    let echoStart = Date()
    let echoed = await runBounded(count: open.count, width: open.count) { i in try await echoOnce(open[i], tag: i) }
    report.note("echo on every connection: \(fmt(seconds(since: echoStart), 2)) s")
    for sample in echoed.samples { report.note("echo error: \(sample)") }
    report.check(echoed.failures == 0, "every connection got its echo (\(echoed.failures) failed)")

    let closeStart = Date()
    let closed = await runBounded(count: open.count, width: 256) { i in try await open[i].close() }
    sockets.withLockedValue { $0 = [] }
    let back = await settle(seconds: 10) { serverConnectionCount(port: server.port) == 0 && server.fdCount <= baseFds }
    report.note("closed in \(fmt(seconds(since: closeStart), 2)) s; server fds \(baseFds) before, \(server.fdCount) after")
    report.check(closed.failures == 0 && back, "all closed cleanly, server back to 0 connections and \(baseFds) fds")
    report.note("scenario time \(fmt(seconds(since: start))) s")
}
