// wsload: load and churn scenarios against the library's own server and client, all on
// 127.0.0.1, each bounded (see scripts/loadtest and the README's "Load and memory").
import Foundation

let usage = """
    usage: wsload [--quick] [--connections N] [--idle N] [--churn N] [--only NAME]
           wsload serve [--no-deflate] [--no-context-takeover] [--fragment-size N]   (child process)
           wsload clients --port P --count N --deflate off|takeover|none             (child process)
    Scenarios (--only): concurrency, memory, churn, ordering. Exits 1 if any check fails.
    """

/// A line on stdout, unbuffered (the scenarios write their lines the same way).
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

func fail(_ why: String) -> Never {
    FileHandle.standardError.write(Data("wsload: \(why)\n\(usage)\n".utf8))
    exit(2)
}

/// `--name value` pairs of the command line.
func options(_ arguments: ArraySlice<String>, flags: Set<String>) -> [String: String] {
    var result: [String: String] = [:]
    var rest = arguments
    while let name = rest.popFirst() {
        guard name.hasPrefix("--") else { fail("unexpected argument \(name)") }
        if flags.contains(name) { result[name] = "" } else {
            guard let value = rest.popFirst() else { fail("\(name) needs a value") }
            result[name] = value
        }
    }
    return result
}

func number(_ text: String?, _ name: String, default value: Int) -> Int {
    guard let text else { return value }
    guard let n = Int(text), n > 0 else { fail("\(name) must be a positive number") }
    return n
}

let arguments = CommandLine.arguments.dropFirst()
switch arguments.first {
case "serve":
    let o = options(arguments.dropFirst(), flags: ["--no-deflate", "--no-context-takeover"])
    var serve = ServeOptions()
    serve.deflate = o["--no-deflate"] == nil
    serve.noContextTakeover = o["--no-context-takeover"] != nil
    serve.fragmentSize = o["--fragment-size"].map { number($0, "--fragment-size", default: 0) }
    exit(await runServe(serve))
case "clients":
    let o = options(arguments.dropFirst(), flags: [])
    guard let port = o["--port"].flatMap({ Int($0) }) else { fail("clients needs --port") }
    exit(await runClientsChild(port: port, count: number(o["--count"], "--count", default: 1000), mode: o["--deflate"] ?? "takeover"))
default:
    break
}

let o = options(arguments, flags: ["--quick", "--help"])
if o["--help"] != nil {
    say(usage)
    exit(0)
}
let quick = o["--quick"] != nil
let connections = number(o["--connections"], "--connections", default: quick ? 1000 : 10_000)
let idle = number(o["--idle"], "--idle", default: quick ? 500 : 2000)
let churn = number(o["--churn"], "--churn", default: quick ? 5000 : 100_000)
let only = o["--only"]

let report = LoadReport()
let limits = ProcessStats.raiseFileLimit()
say("wsload: RLIMIT_NOFILE soft \(limits.soft), hard \(limits.hard); \(ProcessInfo.processInfo.activeProcessorCount) cores")
// The clients of the concurrency scenario live here, the server in a child process:
// each side needs one descriptor per connection plus a few dozen.
if limits.soft < connections + 256 {
    report.check(false, "RLIMIT_NOFILE \(limits.soft) is too low for \(connections) connections; raise the hard limit (scripts/loadtest does when root)")
}
let start = Date()
do {
    if only == nil || only == "memory" { try await runMemory(count: idle, report: report) }
    if (only == nil || only == "concurrency") && limits.soft >= connections + 256 {
        try await runConcurrency(count: connections, report: report)
    }
    if only == nil || only == "churn" { try await runChurn(cycles: churn, width: 48, report: report) }
    if only == nil || only == "ordering" {
        try await runOrdering(connections: quick ? 16 : 64, messages: quick ? 200 : 500, report: report)
    }
} catch {
    report.check(false, "scenario aborted: \(error)")
}
let total = seconds(since: start)
say("\n== summary")
say("total time \(fmt(total)) s")
if report.failed.isEmpty {
    say("all checks passed")
    exit(0)
}
say("\(report.failed.count) check(s) FAILED:")
for f in report.failed { say("  - \(f)") }
exit(1)
