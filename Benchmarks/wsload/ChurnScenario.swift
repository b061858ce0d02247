import Foundation
import WebSockets

/// Connect, echo one message, close; `cycles` times, `width` at a time. The server's RSS,
/// descriptors and connection count must come back to where they were after a warm-up.
/// RSS is read at the halfway mark too: a leak keeps growing in the second half, while
/// allocator fragmentation levels off.
func runChurn(cycles: Int, width: Int, report: LoadReport) async throws {
    report.heading("churn: \(cycles) connect/echo/close cycles, \(width) at a time (permessage-deflate negotiated; every tenth client leaves without closing)")
    let server = try ServerProcess(flags: [])
    defer { server.stop() }
    let configuration = clientConfiguration(deflate: true)
    let port = server.port
    // Every tenth cycle is a client that leaves badly (see RudeClient).
    let cycle: @Sendable (Int) async throws -> Void = { i in
        if i % 10 == 9 { return try await RudeClient.run(port: port, kind: i / 10) }
        let ws = try await connectAndEcho(port: port, configuration: configuration, tag: i)
        try await ws.close()
    }
    let warm = await runBounded(count: min(2000, cycles), width: width, cycle)
    _ = await settle(seconds: 3) { serverConnectionCount(port: server.port) == 0 }
    try await Task.sleep(nanoseconds: 500_000_000)
    let base = (rss: server.rssKiB, fds: server.fdCount, ownFds: ProcessStats.fdCount() ?? -1)
    report.note("baseline after \(min(2000, cycles)) warm-up cycles: server RSS \(base.rss) KiB, \(base.fds) fds; client fds \(base.ownFds)")

    let start = Date()
    let half = cycles / 2
    let first = await runBounded(count: half, width: width, cycle)
    let mid = (rss: server.rssKiB, time: seconds(since: start))
    let second = await runBounded(count: cycles - half, width: width, cycle)
    let elapsed = seconds(since: start)
    let failures = first.failures + second.failures + warm.failures
    for sample in (warm.samples + first.samples + second.samples).prefix(10) { report.note("cycle error: \(sample)") }
    report.note("\(cycles) cycles in \(fmt(elapsed)) s: \(Int(Double(cycles) / elapsed)) cycles/s (first half \(Int(Double(half) / mid.time))/s)")
    report.check(failures == 0, "every cycle connected, echoed and closed cleanly (\(failures) failed)")

    // Settle: closes finish, then the numbers must be back.
    let settled = await settle(seconds: 10) {
        serverConnectionCount(port: server.port) == 0 && server.fdCount <= base.fds && (ProcessStats.fdCount() ?? 0) <= base.ownFds
    }
    try await Task.sleep(nanoseconds: 500_000_000)
    let end = (rss: server.rssKiB, fds: server.fdCount, ownFds: ProcessStats.fdCount() ?? -1,
               count: serverConnectionCount(port: server.port) ?? -1)
    report.note("after: server RSS \(end.rss) KiB (halfway \(mid.rss) KiB), \(end.fds) fds, \(end.count) connections; client fds \(end.ownFds)")
    report.check(settled && end.fds == base.fds && end.ownFds == base.ownFds && end.count == 0,
                 "fds and connection count back to baseline within 10 s (server \(base.fds) -> \(end.fds) fds, \(end.count) connections; client \(base.ownFds) -> \(end.ownFds) fds)")
    // Tolerances: 16 MiB over the baseline overall (fragmentation), 4 MiB over the second
    // half (a leak of 100 bytes per cycle would add ~5 MiB there at 100,000 cycles).
    let growth = end.rss - base.rss
    let secondHalf = end.rss - mid.rss
    report.check(growth <= 16 << 10 && secondHalf <= 4 << 10,
                 "server RSS back near baseline: +\(growth) KiB overall (limit 16384), +\(secondHalf) KiB over the second half (limit 4096)")
}
