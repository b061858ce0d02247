import Foundation

/// A `wsload serve` child process: started with the given flags, its port read from the
/// `listening on HOST:PORT` line, stopped by closing its stdin.
final class ServerProcess {
    let process = Process()
    let port: Int
    private let input = Pipe()

    var pid: Int32 { process.processIdentifier }

    init(flags: [String]) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["serve"] + flags
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        // Read the first line byte by byte (bounded: the server prints it at once or exits).
        var line: [UInt8] = []
        let handle = output.fileHandleForReading
        while line.count < 200 {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte.first == 10 { break }
            line.append(byte.first!)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("listening on "), let port = text.split(separator: ":").last.flatMap({ Int($0) }) else {
            process.terminate()
            throw LoadFailure("server did not start (said: \(text))")
        }
        self.port = port
    }

    var rssKiB: Int { ProcessStats.rssKiB(pid: pid) ?? -1 }
    var fdCount: Int { ProcessStats.fdCount(pid: pid) ?? -1 }

    /// Closes stdin (the server shuts down) and waits up to 5 s, then kills it.
    func stop() {
        try? input.fileHandleForWriting.close()
        let end = Date().addingTimeInterval(5)
        while process.isRunning && Date() < end { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A scenario failure, with what went wrong.
struct LoadFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
