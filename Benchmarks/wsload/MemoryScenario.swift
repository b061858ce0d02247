import Foundation
import NIOConcurrencyHelpers
import WebSockets

/// The deflate modes the memory scenario compares.
enum DeflateMode: String, CaseIterable {
    case off = "no deflate"
    case takeover = "deflate, context takeover"
    case noContextTakeover = "deflate, no context takeover (pooled codecs)"

    var serverFlags: [String] {
        switch self {
        case .off: ["--no-deflate"]
        case .takeover: []
        case .noContextTakeover: ["--no-context-takeover"]
        }
    }
    var clientFlag: String {
        switch self {
        case .off: "off"
        case .takeover: "takeover"
        case .noContextTakeover: "none"
        }
    }
}

/// RSS per idle connection, server and client side, for each deflate mode. Server and
/// clients each run in a fresh process, so one mode's freed memory does not hide the
/// next one's; both are measured after a warm-up round of connections.
func runMemory(count: Int, report: LoadReport) async throws {
    report.heading("RSS per idle connection (\(count) connections, each after one \(echoSize)-byte echo)")
    for mode in DeflateMode.allCases {
        let server = try ServerProcess(flags: mode.serverFlags)
        defer { server.stop() }
        let clients = try ChildClients(port: server.port, count: count, mode: mode.clientFlag)
        defer { clients.stop() }
        _ = try clients.expect("warm")
        try await Task.sleep(nanoseconds: 300_000_000)
        let serverBefore = server.rssKiB
        clients.say("go")
        let opened = try clients.expect("open")  // "open N BEFORE_KIB AFTER_KIB"
        try await Task.sleep(nanoseconds: 500_000_000)
        let serverAfter = server.rssKiB
        let serverCount = serverConnectionCount(port: server.port) ?? -1
        clients.say("close")
        _ = try clients.expect("closed")
        guard opened.count == 4, let n = Int(opened[1]), let cBefore = Int(opened[2]), let cAfter = Int(opened[3]) else {
            throw LoadFailure("clients said \(opened)")
        }
        let perServer = Double(serverAfter - serverBefore) / Double(max(1, n))
        let perClient = Double(cAfter - cBefore) / Double(max(1, n))
        report.note("\(mode.rawValue): server \(fmt(perServer)) KiB/conn (\(serverBefore / 1024) -> \(serverAfter / 1024) MiB), client \(fmt(perClient)) KiB/conn (\(cBefore / 1024) -> \(cAfter / 1024) MiB)")
        report.check(n == count && serverCount == count, "\(mode.rawValue): \(count) idle connections open on both sides")
    }
}

/// `wsload clients` as a child process, driven line by line over stdin/stdout.
final class ChildClients {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    init(port: Int, count: Int, mode: String) throws {
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["clients", "--port", "\(port)", "--count", "\(count)", "--deflate", mode]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func say(_ line: String) { input.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Reads the next line, which must start with `word`; returns its words.
    func expect(_ word: String) throws -> [String] {
        var line: [UInt8] = []
        let handle = output.fileHandleForReading
        while line.count < 1000 {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte.first == 10 { break }
            line.append(byte.first!)
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ").map(String.init)
        guard words.first == word else { throw LoadFailure("clients process: expected \(word), got \(words)") }
        return words
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// `wsload clients --port P --count N --deflate off|takeover|none`: warms up, says `warm`,
/// waits for `go`, opens N connections (one echo each), says `open N RSS_BEFORE RSS_AFTER`
/// (KiB), waits for `close`, closes them all and says `closed`.
func runClientsChild(port: Int, count: Int, mode: String) async -> Int32 {
    ProcessStats.raiseFileLimit()
    var settings = clientConfiguration(deflate: mode != "off")
    if mode == "none" {
        settings.deflate?.serverNoContextTakeover = true
        settings.deflate?.clientNoContextTakeover = true
    }
    let configuration = settings
    let lines = StdinLines()
    func tell(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    // Warm-up: the event loops, allocator arenas and codec pools exist before measuring.
    let warm = await runBounded(count: 64, width: 16) { i in
        let ws = try await connectAndEcho(port: port, configuration: configuration, tag: i)
        try await ws.close()
    }
    guard warm.failures == 0 else {
        tell("error warm-up: \(warm.samples)")
        return 1
    }
    tell("warm")
    guard await lines.next() == "go" else { return 1 }
    try? await Task.sleep(nanoseconds: 200_000_000)
    let before = ProcessStats.rssKiB() ?? -1
    let sockets = NIOLockedValueBox<[WebSocket]>([])
    let opened = await runBounded(count: count, width: 64) { i in
        let ws = try await connectAndEcho(port: port, configuration: configuration, tag: i)
        sockets.withLockedValue { $0.append(ws) }
    }
    try? await Task.sleep(nanoseconds: 300_000_000)
    let after = ProcessStats.rssKiB() ?? -1
    let open = sockets.withLockedValue { $0 }
    tell("open \(count - opened.failures) \(before) \(after)")
    _ = await lines.next()
    _ = await runBounded(count: open.count, width: 256) { i in try await open[i].close() }
    tell("closed")
    return 0
}

/// Lines of stdin, read on a thread of their own (readLine blocks).
final class StdinLines: @unchecked Sendable {
    func next() async -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            Thread.detachNewThread { c.resume(returning: readLine()) }
        }
    }
}
