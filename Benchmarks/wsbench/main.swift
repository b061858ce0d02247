// wsbench: throughput of the engine beside its peers and the machine's limit, in one run.
// Usage: wsbench [--quick] [--json PATH] [--svg PATH] [--filter TEXT] [--list]
import CWebSocket
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var quick = false
    var json: String?
    var svg: String?
    var filter: String?
    var list = false
}

func parseOptions() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let v = args.popFirst() else { fail("\(flag) needs a value") }
        return v
    }
    while let a = args.popFirst() {
        switch a {
        case "--quick": o.quick = true
        case "--json": o.json = value(a)
        case "--svg": o.svg = value(a)
        case "--filter": o.filter = value(a)
        case "--list": o.list = true
        case "-h", "--help":
            print("usage: wsbench [--quick] [--json PATH] [--svg PATH] [--filter TEXT] [--list]")
            exit(0)
        default: fail("unknown option \(a)")
        }
    }
    return o
}

/// Writes to standard error (progress and errors; the table goes to stdout).
func eprint(_ s: String) {
    var s = s
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    eprint("wsbench: \(message)\n")
    exit(2)
}

/// The CPU model from /proc/cpuinfo.
func cpuModel() -> String {
    guard let f = fopen("/proc/cpuinfo", "r") else { return "unknown" }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, 512, f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if s.hasPrefix("model name"), let colon = s.firstIndex(of: ":") {
            return String(s[s.index(after: colon)...]).trimmingWhitespace()
        }
    }
    return "unknown"
}

extension String {
    func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\n" || $0 == "\t" }.reversed())
    }
}

func writeFile(_ path: String, _ text: String) {
    guard let f = fopen(path, "w") else { fail("cannot write \(path)") }
    fputs(text, f)
    fclose(f)
}

let options = parseOptions()
/// Groups build their inputs lazily, so --list and --filter stay cheap.
let groups: [(name: String, cases: () -> [Case])] = [
    ("mask", maskCases), ("utf8", utf8Cases), ("parse", parseCases), ("write", writeCases),
    ("deflate", { deflateCases().filter { $0.group == "deflate" } }),
    ("inflate", { deflateCases().filter { $0.group == "inflate" } }),
    ("handshake", handshakeCases),
    ("echo", echoCases),
    ("fanout", fanoutCases),
]

func matches(_ c: Case, _ impl: String? = nil) -> Bool {
    guard let f = options.filter else { return true }
    let name = "\(c.group)/\(c.name)" + (impl.map { "/\($0)" } ?? "")
    return name.contains(f)
}

if options.list {
    for g in groups { for c in g.cases() { for i in c.impls where matches(c, i.name) { print("\(c.group)/\(c.name)/\(i.name)") } } }
    exit(0)
}

let isa = String(cString: cws_isa_name(cws_isa_active()))
let machine = ["cpu": cpuModel(), "simd": isa, "mode": options.quick ? "quick" : "full"]
print("wsbench: CPU \(machine["cpu"]!), engine SIMD path \(isa)\(options.quick ? ", quick mode" : "")")
let budget = options.quick ? Budget.quick : Budget.full

var selected: [Case] = []
for g in groups {
    // A filter naming a group ("parse/...") skips building the other groups' inputs.
    if let f = options.filter, let slash = f.firstIndex(of: "/"), String(f[..<slash]) != g.name { continue }
    for var c in g.cases() {
        c.impls = c.impls.filter { matches(c, $0.name) }
        if !c.impls.isEmpty { selected.append(c) }
    }
}
if selected.isEmpty { fail("no case matches the filter") }

var rows: [Row] = []
let totalRows = selected.reduce(0) { $0 + $1.impls.count }
for (i, c) in selected.enumerated() {
    let done = rows.count
    eprint("\r\u{1B}[K[\(c.group)] \(c.name) (\(done + 1)-\(done + c.impls.count) of \(totalRows), case \(i + 1) of \(selected.count))")
    rows += measure(c, budget: budget)
}
eprint("\r\u{1B}[K")
print(table(rows), terminator: "")
if let path = options.json { writeFile(path, json(rows, machine: machine)) }
if let path = options.svg {
    writeFile(path, svg(rows, title: "wsbench on \(machine["cpu"]!) (\(isa)), throughput relative to the fastest per case"))
}
consume(sink)
