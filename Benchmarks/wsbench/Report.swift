#if canImport(Glibc)
import Glibc
#endif

/// Formats a number with `digits` decimals.
func fmt(_ x: Double, _ digits: Int = 2) -> String {
    var s = String(Int((x * pow(10, Double(digits))).rounded()))
    if digits > 0 {
        let neg = s.hasPrefix("-")
        if neg { s.removeFirst() }
        while s.count <= digits { s = "0" + s }
        s.insert(".", at: s.index(s.endIndex, offsetBy: -digits))
        if neg { s = "-" + s }
    }
    return s
}

func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
    s.count >= n ? s : (right ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count))
}

/// A duration for people: ns, us or ms.
func duration(_ ns: Double) -> String {
    ns < 1_000 ? fmt(ns, 1) + " ns" : ns < 1_000_000 ? fmt(ns / 1_000, 2) + " us" : fmt(ns / 1_000_000, 2) + " ms"
}

/// The plain-text table.
func table(_ rows: [Row]) -> String {
    var out = pad("group", 10) + pad("case", 22) + pad("impl", 14) + pad("median", 12, right: true)
        + pad("min", 12, right: true) + pad("max", 12, right: true) + pad("GB/s", 9, right: true)
        + pad("ops/s", 14, right: true) + "  vs engine\n"
    var engineMedian: [String: Double] = [:]
    for r in rows where r.impl == "engine" { engineMedian[r.group + "/" + r.caseName] = r.medianNs }
    for r in rows {
        let ratio = engineMedian[r.group + "/" + r.caseName].map { r.impl == "engine" ? "" : fmt(r.medianNs / $0, 2) + "x" } ?? ""
        var line = pad(r.group, 10) + pad(r.caseName, 22) + pad(r.impl, 14) + pad(duration(r.medianNs), 12, right: true)
        line += pad(duration(r.minNs), 12, right: true) + pad(duration(r.maxNs), 12, right: true)
        line += pad(r.gbps.map { fmt($0, 2) } ?? "-", 9, right: true) + pad(fmt(r.opsPerS, 0), 14, right: true)
        line += "  " + ratio
        for (k, v) in r.extra.sorted(by: { $0.key < $1.key }) { line += "  \(k)=\(fmt(v, 2))" }
        out += line + "\n"
    }
    return out
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out += u.value < 0x20 ? "\\u" + pad(String(u.value, radix: 16), 4).replacingSpaces() : String(u)
        }
    }
    return out + "\""
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "0" : $0 }) }
}

func jsonNumber(_ x: Double?) -> String {
    guard let x, x.isFinite else { return "null" }
    return fmt(x, 4)
}

/// The rows as the JSON document of the command-line contract.
func json(_ rows: [Row], machine: [String: String]) -> String {
    let items = rows.map { r in
        var fields = [
            "\"group\":\(jsonString(r.group))", "\"case\":\(jsonString(r.caseName))", "\"impl\":\(jsonString(r.impl))",
            "\"median_ns\":\(jsonNumber(r.medianNs))", "\"min_ns\":\(jsonNumber(r.minNs))",
            "\"max_ns\":\(jsonNumber(r.maxNs))", "\"gbps\":\(jsonNumber(r.gbps))",
            "\"ops_per_s\":\(jsonNumber(r.opsPerS))",
        ]
        for (k, v) in r.extra.sorted(by: { $0.key < $1.key }) { fields.append("\(jsonString(k)):\(jsonNumber(v))") }
        return "{" + fields.joined(separator: ",") + "}"
    }
    let m = machine.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
    return "{\"machine\":{" + m.joined(separator: ",") + "},\"results\":[\n" + items.joined(separator: ",\n") + "\n]}\n"
}

/// A bar chart: one panel per group, one cluster per case, one bar per impl, lengths
/// relative to the fastest impl of the case (throughput, so longer is better).
func svg(_ rows: [Row], title: String) -> String {
    let colors = ["engine": "#1f77b4", "engine-scalar": "#aec7e8", "nio": "#ff7f0e", "memcpy": "#7f7f7f",
                  "stdlib": "#d62728", "zlib": "#2ca02c"]
    let barH = 12.0, gap = 6.0, labelW = 150.0, chartW = 520.0, valueW = 170.0
    var y = 40.0
    var body = ""
    var groups: [String] = []
    for r in rows where !groups.contains(r.group) { groups.append(r.group) }
    for g in groups {
        body += "<text x=\"10\" y=\"\(y)\" font-size=\"15\" font-weight=\"bold\">\(g)</text>\n"
        y += 10
        var cases: [String] = []
        for r in rows where r.group == g && !cases.contains(r.caseName) { cases.append(r.caseName) }
        for c in cases {
            let cr = rows.filter { $0.group == g && $0.caseName == c }
            let best = cr.map(\.opsPerS).max() ?? 1
            body += "<text x=\"10\" y=\"\(y + barH)\" font-size=\"11\">\(c)</text>\n"
            for r in cr {
                let w = max(1, chartW * r.opsPerS / best)
                let color = colors[r.impl] ?? "#9467bd"
                let value = r.gbps.map { fmt($0, 2) + " GB/s" } ?? (fmt(r.opsPerS / 1e6, 2) + " M/s")
                body += "<rect x=\"\(labelW)\" y=\"\(y)\" width=\"\(fmt(w, 1))\" height=\"\(barH)\" fill=\"\(color)\"/>"
                body += "<text x=\"\(labelW + w + 4)\" y=\"\(y + barH - 2)\" font-size=\"10\">\(r.impl) \(value)</text>\n"
                y += barH + 2
            }
            y += gap
        }
        y += 14
    }
    let width = labelW + chartW + valueW
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(y + 10))\" font-family=\"sans-serif\">\n"
        + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        + "<text x=\"10\" y=\"22\" font-size=\"16\">\(title.replacingOccurrences(of: "&", with: "&amp;"))</text>\n"
        + body + "</svg>\n"
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: Character(a), omittingEmptySubsequences: false).joined(separator: b)
    }
}
