/// A parsed `ws://` or `wss://` URL.
struct WebSocketURL: Equatable, Sendable {
    var secure: Bool
    /// Host name or IP literal (IPv6 without brackets).
    var host: String
    var port: Int
    /// Path and query, at least "/".
    var target: String
    /// Whether `host` is an IP literal (no SNI for those).
    var isIPLiteral: Bool

    /// The Host header value: brackets for IPv6, the port unless it is the default.
    var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? h : "\(h):\(port)"
    }

    /// Parses `url`, or throws `WebSocketError.invalidURL` as a browser would throw
    /// SyntaxError (bad scheme, fragment, missing host, bad port).
    init(_ url: String) throws(WebSocketError) {
        var rest = Substring(url)
        if rest.lowercased().hasPrefix("ws://") {
            secure = false
            rest = rest.dropFirst(5)
        } else if rest.lowercased().hasPrefix("wss://") {
            secure = true
            rest = rest.dropFirst(6)
        } else {
            throw .invalidURL("scheme must be ws or wss: \(url)")
        }
        if rest.contains("#") { throw .invalidURL("fragments are not allowed: \(url)") }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        if authority.contains("@") { throw .invalidURL("credentials in the URL are not supported: \(url)") }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL("unterminated IPv6 literal: \(url)") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL("bad authority: \(url)") }
                portText = after.dropFirst()
            }
            isIPLiteral = true
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                portText = authority[authority.index(after: colon)...]
            } else {
                host = String(authority)
            }
            isIPLiteral = !host.isEmpty && host.allSatisfy { $0.isNumber || $0 == "." } && host.split(separator: ".").count == 4
        }
        if host.isEmpty { throw .invalidURL("missing host: \(url)") }
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw .invalidURL("bad port: \(url)") }
            port = p
        } else {
            port = secure ? 443 : 80
        }
        // Spaces and controls cannot go into a request line.
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { throw .invalidURL("bad characters in path: \(url)") }
        self.target = target
    }
}
