import CWebSocket

/// The opening handshake (RFC 6455 §4): keys, the server's checks of an upgrade
/// request and the client's checks of the server's answer. Pure functions over header
/// lists; no I/O.
public enum Handshake {
    /// The one protocol version this library speaks.
    public static let version = "13"

    /// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)).
    public static func acceptKey(for key: String) -> String {
        var out = [UInt8](repeating: 0, count: Int(CWS_ACCEPT_LENGTH))
        var key = key
        let status = key.withUTF8 { k in
            out.withUnsafeMutableBufferPointer { o in
                o.withMemoryRebound(to: CChar.self) { o in
                    k.withMemoryRebound(to: CChar.self) { k in
                        cws_accept_key(k.baseAddress, k.count, o.baseAddress)
                    }
                }
            }
        }
        precondition(status == CWS_OK, "SHA-1 unavailable in libcrypto")
        return String(decoding: out, as: UTF8.self)
    }

    /// A fresh random `Sec-WebSocket-Key` (16 bytes from OpenSSL's generator, base64).
    public static func generateKey() -> String {
        var out = [UInt8](repeating: 0, count: Int(CWS_KEY_LENGTH))
        let status = out.withUnsafeMutableBufferPointer { o in
            o.withMemoryRebound(to: CChar.self) { cws_generate_key($0.baseAddress) }
        }
        precondition(status == CWS_OK, "no entropy from libcrypto")
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes.
    public static func isValidKey(_ key: some StringProtocol) -> Bool {
        var key = String(key)
        return key.withUTF8 { k in
            k.withMemoryRebound(to: CChar.self) { cws_key_valid($0.baseAddress, $0.count) }
        }
    }

    /// Whether `s` is an HTTP token (the syntax of subprotocol names).
    public static func isToken(_ s: String) -> Bool { HTTPFields.isToken(Substring(s).utf8) }

    /// Whether any of the header's comma-separated elements equals `token`, ignoring case.
    static func listContains(_ values: [Substring], _ token: String) -> Bool {
        values.contains { v in HTTPFields.listElements(v).contains { HTTPFields.equalsIgnoringCase($0, token) } }
    }

    /// Parses a `Sec-WebSocket-Protocol` list (tokens); nil when malformed.
    public static func parseProtocols(_ values: [some StringProtocol]) -> [String]? {
        var out: [String] = []
        for v in values {
            for element in HTTPFields.listElements(Substring(v)) {
                guard HTTPFields.isToken(element.utf8) else { return nil }
                out.append(String(element))
            }
        }
        return out
    }

    /// Checks a client's upgrade request (RFC 6455 §4.2.1) and returns what the server
    /// needs to answer it, or throws the HTTP error response to send instead.
    /// - Parameters:
    ///   - method: the request method (`GET` required).
    ///   - version: the HTTP version as (major, minor); 1.1 or later required.
    ///   - headers: the request header fields in order.
    public static func validateUpgradeRequest(
        method: String, version: (major: Int, minor: Int), headers: [(name: String, value: String)]
    ) throws(HandshakeError) -> UpgradeRequest {
        guard method == "GET" else { throw .init(status: 400, reason: "WebSocket upgrade requires GET") }
        guard version.major > 1 || (version.major == 1 && version.minor >= 1) else {
            throw .init(status: 400, reason: "WebSocket upgrade requires HTTP/1.1")
        }
        for h in headers where !HTTPFields.isSafeValue(h.value) || !HTTPFields.isToken(Substring(h.name).utf8) {
            throw .init(status: 400, reason: "malformed header field")
        }
        let fields = HandshakeFields(headers)
        let hosts = fields[.host]
        guard hosts.count == 1, !hosts[0].isEmpty else {
            throw .init(status: 400, reason: "exactly one Host header is required")
        }
        guard listContains(fields[.upgrade], "websocket") else {
            throw .init(status: 400, reason: "missing Upgrade: websocket")
        }
        guard listContains(fields[.connection], "upgrade") else {
            throw .init(status: 400, reason: "missing Connection: Upgrade")
        }
        // A body on an upgrade request is how request smuggling starts: refuse it.
        let lengths = fields[.contentLength]
        guard fields[.transferEncoding].isEmpty, lengths.allSatisfy({ $0 == "0" }) else {
            throw .init(status: 400, reason: "an upgrade request must not have a body")
        }
        let versions = fields[.version]
        guard versions.count == 1, versions[0] == Self.version else {
            throw .init(
                status: 426, reason: "unsupported WebSocket version (this server speaks 13)",
                headers: [("Sec-WebSocket-Version", Self.version)])
        }
        let keys = fields[.key]
        guard keys.count == 1, isValidKey(keys[0]) else {
            throw .init(status: 400, reason: "missing or invalid Sec-WebSocket-Key")
        }
        guard let protocols = parseProtocols(fields[.protocols]) else {
            throw .init(status: 400, reason: "malformed Sec-WebSocket-Protocol")
        }
        guard let extensions = ExtensionOffer.parseList(fields[.extensions].joined(separator: ",")) else {
            throw .init(status: 400, reason: "malformed Sec-WebSocket-Extensions")
        }
        return UpgradeRequest(
            key: String(keys[0]), host: String(hosts[0]), origin: fields[.origin].first.map(String.init),
            protocols: protocols, extensions: extensions)
    }

    /// Checks the server's answer to our upgrade request (RFC 6455 §4.1), returning the
    /// subprotocol and extensions it chose, or throwing why the connection must fail.
    public static func validateUpgradeResponse(
        status: Int, headers: [(name: String, value: String)], key: String,
        offeredProtocols: [String], offeredExtensions: [String]
    ) throws(HandshakeError) -> (protocol: String?, extensions: [ExtensionOffer]) {
        guard status == 101 else { throw .init(status: status, reason: "server answered \(status), not 101") }
        let fields = HandshakeFields(headers)
        guard listContains(fields[.upgrade], "websocket") else {
            throw .init(status: status, reason: "response lacks Upgrade: websocket")
        }
        guard listContains(fields[.connection], "upgrade") else {
            throw .init(status: status, reason: "response lacks Connection: Upgrade")
        }
        guard fields[.accept].count == 1, fields[.accept][0] == acceptKey(for: key) else {
            throw .init(status: status, reason: "wrong Sec-WebSocket-Accept")
        }
        let chosen = fields[.protocols].map(String.init)
        guard chosen.count <= 1, chosen.allSatisfy(offeredProtocols.contains) else {
            throw .init(status: status, reason: "server chose a subprotocol we did not offer")
        }
        guard let extensions = ExtensionOffer.parseList(fields[.extensions].joined(separator: ",")),
            extensions.allSatisfy({ offeredExtensions.contains($0.name) })
        else {
            throw .init(status: status, reason: "server chose an extension we did not offer")
        }
        return (chosen.first, extensions)
    }

    /// Response header fields accepting `request`, with the chosen subprotocol and
    /// extensions (a 101 Switching Protocols response carries these).
    public static func acceptHeaders(
        for request: UpgradeRequest, protocol chosen: String? = nil, extensions: [ExtensionOffer] = []
    ) -> [(name: String, value: String)] {
        var h: [(name: String, value: String)] = [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", acceptKey(for: request.key)),
        ]
        if let chosen { h.append(("Sec-WebSocket-Protocol", chosen)) }
        if !extensions.isEmpty { h.append(("Sec-WebSocket-Extensions", ExtensionOffer.format(extensions))) }
        return h
    }
}

/// What a valid upgrade request asked for.
public struct UpgradeRequest: Hashable, Sendable {
    /// The client's `Sec-WebSocket-Key`.
    public var key: String
    /// The `Host` header.
    public var host: String
    /// The `Origin` header, when a browser sent one.
    public var origin: String?
    /// The subprotocols offered, in the client's order of preference.
    public var protocols: [String]
    /// The extensions offered, in order.
    public var extensions: [ExtensionOffer]
}

/// A failed handshake: the HTTP status to answer with (server side) or that was
/// received (client side), and why.
public struct HandshakeError: Error, Sendable, CustomStringConvertible {
    /// 400 Bad Request, 426 Upgrade Required (with `Sec-WebSocket-Version`), or the
    /// status the server answered.
    public var status: Int
    /// A short explanation, also fit for the response body.
    public var reason: String
    /// Extra response header fields (426 carries `Sec-WebSocket-Version: 13`).
    public var headers: [(name: String, value: String)]

    /// Creates a handshake error.
    public init(status: Int, reason: String, headers: [(name: String, value: String)] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    public var description: String { "handshake failed (\(status)): \(reason)" }
}
