/// A plain HTTP request (or the upgrade request of a WebSocket), as the server's hooks
/// and HTTP handler see it.
public struct HTTPRequest: Sendable {
    /// The method, such as GET.
    public var method: String
    /// The request target: path and query, as sent.
    public var uri: String
    /// The HTTP version as (major, minor).
    public var version: (major: Int, minor: Int)
    /// The header fields in order.
    public var headers: [(name: String, value: String)]
    /// The body (empty for upgrade requests).
    public var body: [UInt8]
    /// The remote address, when known ("127.0.0.1:54321").
    public var remoteAddress: String?

    /// The path part of the target, without the query.
    public var path: String { String(uri.prefix { $0 != "?" }) }

    /// The query part of the target (after "?"), or "".
    public var query: String { uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) } ?? "" }

    /// The first value of a header (name compared without case).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Creates a request.
    public init(method: String, uri: String, version: (major: Int, minor: Int) = (1, 1),
                headers: [(name: String, value: String)] = [], body: [UInt8] = [], remoteAddress: String? = nil) {
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }
}

/// A plain HTTP response from the server's HTTP handler or hooks.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// The header fields (Content-Length is added).
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// An HTML page.
    public static func html(_ html: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(html.utf8))
    }

    /// Plain text.
    public static func text(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }
}
