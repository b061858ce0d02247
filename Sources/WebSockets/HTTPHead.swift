import NIOCore

/// A minimal HTTP/1.1 response head parser for the client's handshake (the server uses
/// NIO's full HTTP decoder).
struct HTTPHead {
    var status: Int
    var headers: [(name: String, value: String)]

    enum ParseResult {
        case incomplete
        case invalid(String)
        case complete(HTTPHead, length: Int)
    }

    /// Parses a response head at the start of `buffer`: the status line and header
    /// fields up to the blank line. Rejects heads over `maxSize`, obs-fold and bytes that
    /// cannot appear in a field.
    static func parse(_ buffer: ByteBuffer, maxSize: Int) -> ParseResult {
        buffer.withUnsafeReadableBytes { bytes -> ParseResult in
            let n = bytes.count
            var end = -1
            var i = 3
            while i < n {
                if bytes[i] == 0x0A && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A && bytes[i - 3] == 0x0D {
                    end = i + 1
                    break
                }
                i += 1
            }
            if end < 0 { return n > maxSize ? .invalid("response head larger than \(maxSize) bytes") : .incomplete }
            if end > maxSize { return .invalid("response head larger than \(maxSize) bytes") }
            let text = String(decoding: bytes[..<(end - 4)], as: UTF8.self)
            var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
            guard !lines.isEmpty else { return .invalid("empty response") }
            let statusLine = lines.removeFirst()
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), parts[1].count == 3 else {
                return .invalid("bad status line: \(statusLine.prefix(80))")
            }
            var headers: [(name: String, value: String)] = []
            for line in lines {
                guard let first = line.first, first != " " && first != "\t" else { return .invalid("obs-fold in response") }
                guard let colon = line.firstIndex(of: ":") else { return .invalid("header line without colon") }
                let name = String(line[..<colon])
                let value = String(line[line.index(after: colon)...]).trimmingOWS()
                guard isSafe(name: name, value: value) else { return .invalid("bad header field") }
                headers.append((name, value))
            }
            return .complete(HTTPHead(status: status, headers: headers), length: end)
        }
    }

    /// Whether a header can be written without breaking the message: a token name and
    /// a value without CR, LF or NUL.
    static func isSafe(name: String, value: String) -> Bool {
        Handshake.isToken(name) && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    func trimmingOWS() -> String {
        let u = utf8
        guard let a = u.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        let b = u.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        return String(self[a...b])
    }
}
