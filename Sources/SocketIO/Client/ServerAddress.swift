/// Where a Socket.IO server is, parsed from the URL given to `io(_:)`: scheme, host,
/// port, and the namespace (the URL's path, as socket.io-client reads it). The
/// Engine.IO endpoint path comes from the options, not from the URL.
struct ServerAddress: Sendable, Equatable {
    /// Whether to use TLS (`https` / `wss`).
    var secure: Bool
    /// The host name or IP address (IPv6 without brackets).
    var host: String
    /// The TCP port (80 / 443 when the URL has none).
    var port: Int
    /// The namespace: the URL's path, "/" when it has none.
    var namespace: String
    /// The URL's query string without the `?` (added to every Engine.IO request).
    var query: String

    /// Why a URL is not usable.
    struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        let description: String
    }

    /// Parses `http(s)://host[:port][/namespace][?query]`; `ws`/`wss` are accepted as
    /// synonyms, and a URL without a scheme is taken as `http`.
    static func parse(_ url: String) throws(ParseError) -> ServerAddress {
        var rest = Substring(url)
        var secure = false
        if let range = rest.firstRange(of: "://") {
            switch rest[..<range.lowerBound].lowercased() {
            case "http", "ws": secure = false
            case "https", "wss": secure = true
            default: throw ParseError(description: "unsupported scheme in \(url) (use http, https, ws or wss)")
            }
            rest = rest[range.upperBound...]
        } else if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var pathAndQuery = rest[authorityEnd...]
        guard !authority.contains("@") else { throw ParseError(description: "user info in URLs is not supported: \(url)") }

        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ParseError(description: "unclosed IPv6 address in \(url)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw ParseError(description: "bad authority in \(url)") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "%" }) else {
            throw ParseError(description: "missing or invalid host in \(url)")
        }
        var port = secure ? 443 : 80
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII),
                  let n = Int(portText), (1...65535).contains(n)
            else { throw ParseError(description: "invalid port in \(url)") }
            port = n
        }

        var query = ""
        if let q = pathAndQuery.firstIndex(of: "?") {
            query = String(pathAndQuery[pathAndQuery.index(after: q)...])
            pathAndQuery = pathAndQuery[..<q]
        }
        guard !pathAndQuery.contains(where: { $0 == " " || $0 == "," }) else {
            throw ParseError(description: "invalid namespace in \(url)")
        }
        let namespace = pathAndQuery.isEmpty ? "/" : String(pathAndQuery)
        return ServerAddress(secure: secure, host: String(host), port: port, namespace: namespace, query: query)
    }

    /// The Host header value (port omitted when it is the scheme's default).
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Whether the host is an IP address literal (no SNI for those).
    var hostIsIPAddress: Bool {
        host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0 == "." || $0.isNumber }
    }

    /// The request target (path and query) of an Engine.IO request.
    func target(path: String, transport: SocketIOClientOptions.Transport, sid: String?,
                extraQuery: [(name: String, value: String)]) -> String {
        var target = path.hasPrefix("/") ? path : "/" + path
        target += "?EIO=4&transport=" + transport.rawValue
        if let sid { target += "&sid=" + QueryString.encode(sid) }
        if !query.isEmpty { target += "&" + query }
        for (name, value) in extraQuery { target += "&" + QueryString.encode(name) + "=" + QueryString.encode(value) }
        return target
    }

    /// The WebSocket URL of an Engine.IO request.
    func webSocketURL(path: String, sid: String?, extraQuery: [(name: String, value: String)]) -> String {
        (secure ? "wss://" : "ws://") + hostHeaderWithPort + target(path: path, transport: .websocket, sid: sid, extraQuery: extraQuery)
    }

    /// Host and port, always with the port (the WebSocket client parses it back).
    private var hostHeaderWithPort: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }
}
