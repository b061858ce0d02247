import Testing

@testable import WebSocketFraming

// Opening handshake (RFC 6455 §4): the server's checks of an upgrade request, the
// client's checks of the 101 response, and the key helpers.

private typealias Headers = [(name: String, value: String)]

/// The sample key of RFC 6455 §1.3 and its accept value.
private let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="
private let sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// An upgrade request as Chrome sends it (header order and extras included).
private let chromeRequest: Headers = [
    ("Host", "example.com:8000"),
    ("Connection", "Upgrade"),
    ("Pragma", "no-cache"),
    ("Cache-Control", "no-cache"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    ("Upgrade", "websocket"),
    ("Origin", "http://example.com"),
    ("Sec-WebSocket-Version", "13"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Sec-WebSocket-Key", sampleKey),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
]

/// An upgrade request as Firefox sends it: `Connection: keep-alive, Upgrade`.
private let firefoxRequest: Headers = [
    ("Host", "example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    ("Accept", "*/*"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Sec-WebSocket-Version", "13"),
    ("Origin", "https://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ("Connection", "keep-alive, Upgrade"),
    ("Sec-Fetch-Dest", "empty"),
    ("Sec-Fetch-Mode", "websocket"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Pragma", "no-cache"),
    ("Cache-Control", "no-cache"),
    ("Upgrade", "websocket"),
]

/// The extension list both browsers offer.
private let browserExtensions = [
    ExtensionOffer(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits")])
]

/// `headers` without any field named `name` (compared ignoring case).
private func removing(_ name: String, from headers: Headers) -> Headers {
    headers.filter { $0.name.lowercased() != name.lowercased() }
}

/// `headers` with every `name` field replaced by one `name: value` field at the end.
private func replacing(_ name: String, with value: String, in headers: Headers) -> Headers {
    removing(name, from: headers) + [(name, value)]
}

/// The request when the server accepts it, or nil.
private func accepted(
    _ headers: Headers, method: String = "GET", version: (major: Int, minor: Int) = (1, 1)
) -> UpgradeRequest? {
    try? Handshake.validateUpgradeRequest(method: method, version: version, headers: headers)
}

/// The error the server answers with, or nil when it accepts the request.
private func rejection(
    _ headers: Headers, method: String = "GET", version: (major: Int, minor: Int) = (1, 1)
) -> HandshakeError? {
    do {
        _ = try Handshake.validateUpgradeRequest(method: method, version: version, headers: headers)
        return nil
    } catch {
        return error
    }
}

/// The error the client fails the connection with, or nil when the response is accepted.
private func responseRejection(
    status: Int = 101, _ headers: Headers, key: String = sampleKey,
    protocols: [String] = ["chat", "superchat"], extensions: [String] = ["permessage-deflate"]
) -> HandshakeError? {
    do {
        _ = try Handshake.validateUpgradeResponse(
            status: status, headers: headers, key: key, offeredProtocols: protocols,
            offeredExtensions: extensions)
        return nil
    } catch {
        return error
    }
}

/// Header fields as "Name: value" lines, for comparing (tuples are not Equatable).
private func lines(_ headers: Headers) -> [String] {
    headers.map { "\($0.name): \($0.value)" }
}

/// A correct 101 response to a request with `sampleKey`.
private let goodResponse: Headers = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Accept", sampleAccept),
    ("Sec-WebSocket-Protocol", "chat"),
    ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10"),
]

@Suite struct UpgradeHandshakeTests {

    // MARK: Accepted requests

    @Test func chromeRequestIsAccepted() throws {
        let request = try Handshake.validateUpgradeRequest(
            method: "GET", version: (1, 1), headers: chromeRequest)
        #expect(request.key == sampleKey)
        #expect(request.host == "example.com:8000")
        #expect(request.origin == "http://example.com")
        #expect(request.protocols == ["chat", "superchat"])
        #expect(request.extensions == browserExtensions)
    }

    @Test func firefoxRequestIsAccepted() throws {
        let request = try Handshake.validateUpgradeRequest(
            method: "GET", version: (1, 1), headers: firefoxRequest)
        #expect(request.key == "x3JJHMbDL1EzLkh9GBhXDw==")
        #expect(request.host == "example.com")
        #expect(request.origin == "https://example.com")
        #expect(request.protocols == ["chat", "superchat"])
        #expect(request.extensions == browserExtensions)
    }

    @Test func minimalRequestIsAcceptedWithNoOriginProtocolsOrExtensions() throws {
        let headers: Headers = [
            ("Host", "server.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", sampleKey), ("Sec-WebSocket-Version", "13"),
        ]
        let request = try #require(accepted(headers))
        #expect(request.host == "server.example.com")
        #expect(request.origin == nil)
        #expect(request.protocols == [])
        #expect(request.extensions == [])
    }

    @Test func laterHTTPVersionsAreAccepted() {
        #expect(accepted(chromeRequest, version: (1, 2)) != nil)
        #expect(accepted(chromeRequest, version: (2, 0)) != nil)
    }

    @Test func headerNamesAreCaseInsensitive() throws {
        let lower = chromeRequest.map { (name: $0.name.lowercased(), value: $0.value) }
        let upper = chromeRequest.map { (name: $0.name.uppercased(), value: $0.value) }
        for headers in [lower, upper] {
            let request = try #require(accepted(headers))
            #expect(request.key == sampleKey)
            #expect(request.host == "example.com:8000")
            #expect(request.origin == "http://example.com")
            #expect(request.protocols == ["chat", "superchat"])
            #expect(request.extensions == browserExtensions)
        }
    }

    @Test(arguments: ["websocket", "WebSocket", "WEBSOCKET", "h2c, websocket", " websocket "])
    func upgradeTokenIsCaseInsensitive(upgrade: String) {
        #expect(accepted(replacing("Upgrade", with: upgrade, in: chromeRequest)) != nil)
    }

    @Test(arguments: ["Upgrade", "upgrade", "UPGRADE", "keep-alive, Upgrade", "Keep-Alive,upgrade", "close ,  UpGrAdE"])
    func connectionTokenIsCaseInsensitive(connection: String) {
        #expect(accepted(replacing("Connection", with: connection, in: chromeRequest)) != nil)
    }

    @Test func valuesAreTrimmedOfSpacesAndTabs() throws {
        var headers = replacing("Sec-WebSocket-Key", with: " \t\(sampleKey)\t ", in: chromeRequest)
        headers = replacing("Host", with: "  example.com \t", in: headers)
        headers = replacing("Sec-WebSocket-Version", with: " 13 ", in: headers)
        let request = try #require(accepted(headers))
        #expect(request.key == sampleKey)
        #expect(request.host == "example.com")
    }

    @Test func protocolsAndExtensionsFromSeveralLinesAreCombinedInOrder() throws {
        var headers = removing("Sec-WebSocket-Protocol", from: chromeRequest)
        headers += [("Sec-WebSocket-Protocol", "chat"), ("Sec-WebSocket-Protocol", "superchat, v2.json")]
        headers = removing("Sec-WebSocket-Extensions", from: headers)
        headers += [
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame"),
        ]
        let request = try #require(accepted(headers))
        #expect(request.protocols == ["chat", "superchat", "v2.json"])
        #expect(request.extensions == browserExtensions + [ExtensionOffer(name: "x-webkit-deflate-frame")])
    }

    @Test func contentLengthZeroIsAccepted() {
        #expect(accepted(chromeRequest + [("Content-Length", "0")]) != nil)
    }

    // MARK: Rejected requests (400)

    /// Checks that `error` is a 400 with a reason.
    private func expectBadRequest(_ error: HandshakeError?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error != nil, "request was accepted", sourceLocation: sourceLocation)
        guard let error else { return }
        #expect(error.status == 400, sourceLocation: sourceLocation)
        #expect(!error.reason.isEmpty, sourceLocation: sourceLocation)
        #expect(error.headers.isEmpty, sourceLocation: sourceLocation)
    }

    @Test(arguments: ["POST", "PUT", "HEAD", "get", "CONNECT"])
    func methodOtherThanGETIsRejected(method: String) {
        expectBadRequest(rejection(chromeRequest, method: method))
    }

    @Test func http10IsRejected() {
        expectBadRequest(rejection(chromeRequest, version: (1, 0)))
        expectBadRequest(rejection(chromeRequest, version: (0, 9)))
    }

    @Test func missingHostIsRejected() {
        expectBadRequest(rejection(removing("Host", from: chromeRequest)))
    }

    @Test func emptyHostIsRejected() {
        expectBadRequest(rejection(replacing("Host", with: "", in: chromeRequest)))
        expectBadRequest(rejection(replacing("Host", with: "  ", in: chromeRequest)))
    }

    @Test func twoHostHeadersAreRejected() {
        expectBadRequest(rejection(chromeRequest + [("Host", "evil.example")]))
        expectBadRequest(rejection(chromeRequest + [("host", "example.com:8000")]))  // even equal
    }

    @Test func missingUpgradeIsRejected() {
        expectBadRequest(rejection(removing("Upgrade", from: chromeRequest)))
    }

    @Test(arguments: ["h2c", "websocket2", "web socket", "", "TLS/1.0"])
    func wrongUpgradeIsRejected(upgrade: String) {
        expectBadRequest(rejection(replacing("Upgrade", with: upgrade, in: chromeRequest)))
    }

    @Test func missingConnectionIsRejected() {
        expectBadRequest(rejection(removing("Connection", from: chromeRequest)))
    }

    @Test(arguments: ["keep-alive", "close", "upgraded", "keep-alive upgrade", ""])
    func connectionWithoutUpgradeTokenIsRejected(connection: String) {
        expectBadRequest(rejection(replacing("Connection", with: connection, in: chromeRequest)))
    }

    @Test func missingKeyIsRejected() {
        expectBadRequest(rejection(removing("Sec-WebSocket-Key", from: chromeRequest)))
    }

    @Test func duplicateKeyIsRejectedEvenWhenEqual() {
        expectBadRequest(rejection(chromeRequest + [("Sec-WebSocket-Key", sampleKey)]))
        expectBadRequest(rejection(chromeRequest + [("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw==")]))
    }

    @Test(arguments: [
        "",  // empty
        "dGhlIHNhbXBsZSBub25jZQ=",  // 23 chars
        "dGhlIHNhbXBsZSBub25jZQ===",  // 25 chars
        "dGhlIHNhbXBsZSBub25jZQ",  // padding dropped
        "dGhlIHNhbXBsZSBub25j",  // 15 bytes, 20 chars
        "dGhlIHNhbXBsZSBub25j====",  // 15 bytes padded out to 24 chars
        "dGhlIHNhbXBsZSBub25jZSE=",  // 17 bytes
        "dGhlIHNhbXBsZSBub25jZSEh",  // 18 bytes
        "dGhl-HNhbXBsZSBub25jZQ==",  // '-' (base64url) is not in the alphabet
        "dGhl_HNhbXBsZSBub25jZQ==",  // '_'
        "dGhlIHNhbX BsZSBub25jZQ=",  // space inside
        "dGhlIHNhbXBsZSBub25jZQ!=",  // '!'
        "dGhlIHNhbXBsZSBub25jZR==",  // non-canonical: leftover bits set
        "dGhlIHNhbXBsZSBub25jZQ=A",  // '=' before the end
        "the sample nonce the sam",  // 24 chars, not base64
    ])
    func invalidKeyIsRejected(key: String) {
        #expect(!Handshake.isValidKey(key))
        expectBadRequest(rejection(replacing("Sec-WebSocket-Key", with: key, in: chromeRequest)))
    }

    @Test func contentLengthIsRejected() {
        expectBadRequest(rejection(chromeRequest + [("Content-Length", "5")]))
        expectBadRequest(rejection(chromeRequest + [("content-length", "5")]))
        expectBadRequest(rejection(chromeRequest + [("Content-Length", "0"), ("Content-Length", "5")]))
    }

    @Test(arguments: ["chunked", "identity", "gzip, chunked", ""])
    func anyTransferEncodingIsRejected(encoding: String) {
        expectBadRequest(rejection(chromeRequest + [("Transfer-Encoding", encoding)]))
    }

    @Test(arguments: [
        "a\rb", "a\nb", "a\r\nX-Injected: 1", "a\0b", "\0", "a\u{7F}b", "a\u{1}b",
    ])
    func headerValueWithControlCharacterIsRejected(value: String) {
        expectBadRequest(rejection(chromeRequest + [("X-Custom", value)]))
        expectBadRequest(rejection(replacing("User-Agent", with: value, in: chromeRequest)))
        expectBadRequest(rejection(replacing("Host", with: "example.com" + value, in: chromeRequest)))
        expectBadRequest(rejection(replacing("Sec-WebSocket-Protocol", with: "chat" + value, in: chromeRequest)))
    }

    @Test func headerValueWithTabIsAccepted() {
        #expect(accepted(chromeRequest + [("X-Custom", "a\tb")]) != nil)
    }

    @Test(arguments: ["Bad Name", "", "X-Custom:", "X\r\nY", "Ünicode"])
    func headerNameThatIsNotATokenIsRejected(name: String) {
        expectBadRequest(rejection(chromeRequest + [(name, "1")]))
    }

    @Test(arguments: ["chat, sup er", "chat; superchat", "\"chat\"", "chat, sup/er", "chat,super@chat"])
    func malformedProtocolListIsRejected(list: String) {
        expectBadRequest(rejection(replacing("Sec-WebSocket-Protocol", with: list, in: chromeRequest)))
    }

    @Test(arguments: [
        "permessage-deflate;", "permessage-deflate; client_max_window_bits=",
        "; client_max_window_bits", "permessage deflate", "permessage-deflate; x=\"1 0\"",
        "permessage-deflate; x=\"10",
    ])
    func malformedExtensionHeaderIsRejected(value: String) {
        expectBadRequest(rejection(replacing("Sec-WebSocket-Extensions", with: value, in: chromeRequest)))
    }

    // MARK: Rejected requests (426)

    /// Checks that `error` is a 426 carrying `Sec-WebSocket-Version: 13`.
    private func expectUpgradeRequired(_ error: HandshakeError?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error != nil, "request was accepted", sourceLocation: sourceLocation)
        guard let error else { return }
        #expect(error.status == 426, sourceLocation: sourceLocation)
        #expect(!error.reason.isEmpty, sourceLocation: sourceLocation)
        #expect(lines(error.headers) == ["Sec-WebSocket-Version: 13"], sourceLocation: sourceLocation)
    }

    @Test(arguments: ["8", "13, 8", "8, 13", "7", "14", "", "013", "13.0"])
    func unsupportedVersionGets426(version: String) {
        expectUpgradeRequired(rejection(replacing("Sec-WebSocket-Version", with: version, in: chromeRequest)))
    }

    @Test func missingVersionGets426() {
        // What the code does: a missing version is answered like an unsupported one.
        expectUpgradeRequired(rejection(removing("Sec-WebSocket-Version", from: chromeRequest)))
    }

    @Test func twoVersionLinesGet426() {
        expectUpgradeRequired(rejection(chromeRequest + [("Sec-WebSocket-Version", "13")]))
        expectUpgradeRequired(rejection(chromeRequest + [("Sec-WebSocket-Version", "8")]))
    }

    // MARK: Keys

    @Test func acceptKeyOfTheRFCSample() {
        #expect(Handshake.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func acceptKeyOfOtherKeys() {
        // Computed independently (Python: base64(sha1(key + GUID))).
        #expect(Handshake.acceptKey(for: "x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
        #expect(Handshake.acceptKey(for: "") == "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=")
        // The key is hashed as given: no trimming.
        #expect(Handshake.acceptKey(for: " " + sampleKey) != sampleAccept)
    }

    @Test func generatedKeysAreValidAndDistinct() {
        var seen = Set<String>()
        for _ in 0..<200 {
            let key = Handshake.generateKey()
            #expect(key.utf8.count == 24)
            #expect(key.hasSuffix("=="))
            #expect(Handshake.isValidKey(key))
            seen.insert(key)
        }
        #expect(seen.count == 200)
    }

    @Test func generatedKeyIsAcceptedByTheServer() throws {
        let key = Handshake.generateKey()
        let request = try #require(accepted(replacing("Sec-WebSocket-Key", with: key, in: chromeRequest)))
        #expect(request.key == key)
    }

    @Test func isValidKeyAcceptsCanonicalKeys() {
        #expect(Handshake.isValidKey(sampleKey))
        #expect(Handshake.isValidKey("AAAAAAAAAAAAAAAAAAAAAA=="))
        #expect(Handshake.isValidKey("/////////////////////w=="))
        #expect(Handshake.isValidKey(Substring("xx" + sampleKey).dropFirst(2)))
    }

    // MARK: acceptHeaders

    @Test func acceptHeadersWithoutProtocolOrExtensions() throws {
        let request = try #require(accepted(chromeRequest))
        #expect(
            lines(Handshake.acceptHeaders(for: request)) == [
                "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: \(sampleAccept)",
            ])
    }

    @Test func acceptHeadersWithProtocolAndExtensions() throws {
        let request = try #require(accepted(chromeRequest))
        let chosen = [
            ExtensionOffer(
                name: "permessage-deflate",
                parameters: [.init(name: "server_no_context_takeover"), .init(name: "client_max_window_bits", value: "15")])
        ]
        #expect(
            lines(Handshake.acceptHeaders(for: request, protocol: "chat", extensions: chosen)) == [
                "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: \(sampleAccept)",
                "Sec-WebSocket-Protocol: chat",
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
            ])
        let two = chosen + [ExtensionOffer(name: "x-foo")]
        #expect(
            lines(Handshake.acceptHeaders(for: request, extensions: two)).last
                == "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=15, x-foo")
    }

    @Test func acceptHeadersPassTheClientsCheck() throws {
        let request = try #require(accepted(firefoxRequest))
        let chosen = [ExtensionOffer(name: "permessage-deflate")]
        let headers = Handshake.acceptHeaders(for: request, protocol: "superchat", extensions: chosen)
        let result = try Handshake.validateUpgradeResponse(
            status: 101, headers: headers, key: request.key, offeredProtocols: request.protocols,
            offeredExtensions: ["permessage-deflate"])
        #expect(result.protocol == "superchat")
        #expect(result.extensions == chosen)
    }

    // MARK: Client side: the server's response

    @Test func correctResponseIsAccepted() throws {
        let result = try Handshake.validateUpgradeResponse(
            status: 101, headers: goodResponse, key: sampleKey, offeredProtocols: ["chat", "superchat"],
            offeredExtensions: ["permessage-deflate"])
        #expect(result.protocol == "chat")
        #expect(
            result.extensions == [
                ExtensionOffer(name: "permessage-deflate", parameters: [.init(name: "server_max_window_bits", value: "10")])
            ])
    }

    @Test func responseWithoutProtocolOrExtensionsIsAccepted() throws {
        let headers: Headers = [
            ("upgrade", "WebSocket"), ("connection", "keep-alive, upgrade"), ("sec-websocket-accept", sampleAccept),
        ]
        let result = try Handshake.validateUpgradeResponse(
            status: 101, headers: headers, key: sampleKey, offeredProtocols: [], offeredExtensions: [])
        #expect(result.protocol == nil)
        #expect(result.extensions == [])
    }

    @Test(arguments: [200, 400, 426, 100, 301])
    func non101StatusIsRejected(status: Int) throws {
        let error = try #require(responseRejection(status: status, goodResponse))
        #expect(error.status == status)
        #expect(!error.reason.isEmpty)
    }

    @Test func missingUpgradeIsRejectedByClient() {
        #expect(responseRejection(removing("Upgrade", from: goodResponse)) != nil)
        #expect(responseRejection(replacing("Upgrade", with: "h2c", in: goodResponse)) != nil)
    }

    @Test func missingConnectionIsRejectedByClient() {
        #expect(responseRejection(removing("Connection", from: goodResponse)) != nil)
        #expect(responseRejection(replacing("Connection", with: "keep-alive", in: goodResponse)) != nil)
    }

    @Test func wrongAcceptIsRejected() throws {
        // The accept value of another key.
        let other = replacing("Sec-WebSocket-Accept", with: "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", in: goodResponse)
        let error = try #require(responseRejection(other))
        #expect(error.status == 101)
        #expect(!error.reason.isEmpty)
        // The key echoed back instead of its accept value.
        #expect(responseRejection(replacing("Sec-WebSocket-Accept", with: sampleKey, in: goodResponse)) != nil)
        // Missing.
        #expect(responseRejection(removing("Sec-WebSocket-Accept", from: goodResponse)) != nil)
        // Right value for the wrong key.
        #expect(responseRejection(goodResponse, key: "x3JJHMbDL1EzLkh9GBhXDw==") != nil)
        // Twice, even if equal.
        #expect(responseRejection(goodResponse + [("Sec-WebSocket-Accept", sampleAccept)]) != nil)
    }

    @Test func protocolNotOfferedIsRejected() {
        #expect(responseRejection(replacing("Sec-WebSocket-Protocol", with: "v2.json", in: goodResponse)) != nil)
        #expect(responseRejection(goodResponse, protocols: []) != nil)
        #expect(responseRejection(replacing("Sec-WebSocket-Protocol", with: "", in: goodResponse)) != nil)
    }

    @Test func twoProtocolValuesAreRejected() {
        // Two header lines, each offered.
        #expect(responseRejection(goodResponse + [("Sec-WebSocket-Protocol", "superchat")]) != nil)
        // One line with a list.
        #expect(responseRejection(replacing("Sec-WebSocket-Protocol", with: "chat, superchat", in: goodResponse)) != nil)
    }

    @Test func extensionNotOfferedIsRejected() {
        #expect(
            responseRejection(replacing("Sec-WebSocket-Extensions", with: "x-webkit-deflate-frame", in: goodResponse))
                != nil)
        #expect(
            responseRejection(
                replacing("Sec-WebSocket-Extensions", with: "permessage-deflate, x-foo", in: goodResponse)) != nil)
        #expect(responseRejection(goodResponse, extensions: []) != nil)
    }

    @Test func malformedExtensionInResponseIsRejected() {
        #expect(
            responseRejection(replacing("Sec-WebSocket-Extensions", with: "permessage-deflate;", in: goodResponse))
                != nil)
    }
}
