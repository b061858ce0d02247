import NIOCore

/// Where and how to connect to Redis, and how hard to retry.
public struct RedisConfiguration: Sendable {
    /// Host name or address.
    public var host: String
    /// TCP port (default 6379).
    public var port: Int
    /// ACL user name for `AUTH user password` (nil: `AUTH password`, the default user).
    public var username: String?
    /// Password; nil sends no AUTH.
    public var password: String?
    /// Database selected with SELECT on every connection (default 0). Pub/sub channels
    /// are shared by all databases; this matters only for other commands.
    public var database: Int
    /// Connecting (TCP, AUTH, SELECT) must finish within this (default 5 s).
    public var connectTimeout: TimeAmount = .seconds(5)
    /// First retry delay after a failed or lost connection (default 50 ms); each failure
    /// doubles it, up to `maxBackoff`, and a successful connection resets it.
    public var minBackoff: TimeAmount = .milliseconds(50)
    /// Longest retry delay (default 2 s).
    public var maxBackoff: TimeAmount = .seconds(2)
    /// Commands held while disconnected (default 10,000); when full, new commands fail
    /// at once with `RedisError.queueFull`.
    public var maxQueuedCommands = 10_000
    /// Bytes of commands held while disconnected (default 64 MiB), same rule.
    public var maxQueuedBytes = 64 << 20
    /// Limits on what the server may send.
    public var parser = RESPParser()

    /// Creates a configuration for a server.
    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` (the form redis-cli and most
    /// clients accept; user and password percent-decoded). Throws `RedisError.invalidURL`.
    public init(url: String) throws(RedisError) {
        let prefix = "redis://"
        guard url.lowercased().hasPrefix(prefix) else { throw .invalidURL("\(url): the scheme must be redis://") }
        var rest = Substring(url.dropFirst(prefix.count))
        if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<q] }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = try Self.percentDecoded(userInfo[..<colon], url)
                username = user.isEmpty ? nil : user
                password = try Self.percentDecoded(userInfo[userInfo.index(after: colon)...], url)
            } else if !userInfo.isEmpty {
                // `redis://secret@host`: a lone user-info part is the password (as redis-py reads it).
                password = try Self.percentDecoded(userInfo, url)
            }
        }
        var host = rest
        var port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .invalidURL("\(url): unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .invalidURL("\(url): bad port") }
                port = p
            } else if !after.isEmpty {
                throw .invalidURL("\(url): junk after the address")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw .invalidURL("\(url): bad port")
            }
            port = p
        }
        guard !host.isEmpty else { throw .invalidURL("\(url): no host") }
        var database = 0
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw .invalidURL("\(url): the path must be a database number") }
            database = db
        }
        self.init(host: String(host), port: port, username: username, password: password, database: database)
    }

    private static func percentDecoded(_ s: Substring, _ url: String) throws(RedisError) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else {
                    throw .invalidURL("\(url): bad percent escape")
                }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The retry delay after `failures` consecutive failures (1 for the first).
    public func backoff(after failures: Int) -> TimeAmount {
        let shift = min(max(failures - 1, 0), 20)
        let delay = minBackoff.nanoseconds << shift
        return .nanoseconds(min(delay, maxBackoff.nanoseconds))
    }
}

/// Errors of the Redis client.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL cannot be used.
    case invalidURL(String)
    /// Redis answered the command with an error reply.
    case server(String)
    /// The connection dropped after the command was sent: it may or may not have run.
    case connectionLost
    /// Too many commands wait for a connection (`maxQueuedCommands`, `maxQueuedBytes`).
    case queueFull
    /// The client was closed.
    case closed
    /// The reply was not what the command returns.
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .invalidURL(let s): "invalid Redis URL: \(s)"
        case .server(let s): "Redis error: \(s)"
        case .connectionLost: "connection to Redis lost"
        case .queueFull: "too many commands queued for Redis"
        case .closed: "Redis client closed"
        case .unexpectedReply(let s): "unexpected Redis reply: \(s)"
        }
    }
}
