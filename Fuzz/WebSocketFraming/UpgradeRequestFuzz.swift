// Fuzz target upgrade_request: the server's check of an opening handshake
// (Handshake.validateUpgradeRequest) on requests decoded from the input.
//
// Input: an HTTP/1.1 request head, as text: the first line gives the method (up to the
// first space) and the version (the digits after "HTTP/"); each further line is a
// header field, split at its first colon. Lines end at LF (a CR before it is dropped).
//
// Checks: failures are 400, or 426 with Sec-WebSocket-Version: 13; the outcome does not
// depend on the case of header names, on spaces around values, or on unrelated headers
// in between; and an accepted request yields a key, host and lists that hold up, and
// accept headers (with the first subprotocol and the negotiated permessage-deflate)
// that the client side, validateUpgradeResponse, accepts for that key and offer.
import WebSocketFraming

enum UpgradeRequestFuzz {
    typealias Headers = [(name: String, value: String)]

    static func run(_ data: [UInt8]) throws {
        let (method, version, headers) = decode(data)
        let outcome = validate(method, version, headers)
        switch outcome {
        case .failure(let error):
            try fuzzRequire(error.status == 400 || error.status == 426, "status \(error.status)")
            if error.status == 426 {
                try fuzzRequire(error.headers.contains { $0.name == "Sec-WebSocket-Version" && $0.value == "13" },
                                "426 without Sec-WebSocket-Version: 13")
            }
        case .success(let request):
            try checkAccepted(request, headers)
        }

        // Metamorphic variants: none may change the outcome.
        let variants: [(String, Headers)] = [
            ("upper-case names", headers.map { (swapCase($0.name, upper: true), $0.value) }),
            ("lower-case names", headers.map { (swapCase($0.name, upper: false), $0.value) }),
            ("spaces around values", headers.map { ($0.name, " \t" + $0.value + " ") }),
            ("an unrelated header between each", headers.flatMap { [$0, (name: "X-Fuzz", value: "1")] }),
        ]
        for (what, variant) in variants {
            let other = validate(method, version, variant)
            try fuzzRequire(summary(other) == summary(outcome),
                            "\(what) changed \(summary(outcome)) into \(summary(other))")
        }
    }

    static func validate(_ method: String, _ version: (Int, Int), _ headers: Headers) -> Result<UpgradeRequest, HandshakeError> {
        do {
            return .success(try Handshake.validateUpgradeRequest(method: method, version: version, headers: headers))
        } catch {
            return .failure(error)
        }
    }

    /// What must match between variants: the status, or the accepted request.
    static func summary(_ r: Result<UpgradeRequest, HandshakeError>) -> String {
        switch r {
        case .success(let request): "accepted \(request)"
        case .failure(let error): "refused \(error.status)"
        }
    }

    static func checkAccepted(_ request: UpgradeRequest, _ headers: Headers) throws {
        try fuzzRequire(Handshake.isValidKey(request.key) && request.key.utf8.count == 24, "accepted key \(request.key)")
        try fuzzRequire(!request.host.isEmpty, "empty host accepted")
        try fuzzRequire(request.protocols.allSatisfy(Handshake.isToken), "subprotocol that is not a token")

        let chosen = request.protocols.first
        let deflate = PerMessageDeflate.negotiateResponse(offers: request.extensions, policy: DeflateServerPolicy())
        let response = Handshake.acceptHeaders(for: request, protocol: chosen, extensions: deflate.map { [$0.response] } ?? [])
        do {
            let answer = try Handshake.validateUpgradeResponse(
                status: 101, headers: response, key: request.key, offeredProtocols: request.protocols,
                offeredExtensions: request.extensions.map(\.name))
            try fuzzRequire(answer.protocol == chosen, "client saw subprotocol \(String(describing: answer.protocol))")
            try fuzzRequire(answer.extensions == (deflate.map { [$0.response] } ?? []), "client saw other extensions")
        } catch {
            throw FuzzFailure(message: "client rejects the server's answer \(response): \(error)")
        }
    }

    /// Splits the input into a request line and header fields.
    static func decode(_ data: [UInt8]) -> (String, (Int, Int), Headers) {
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? line.dropLast() : line
        }
        let first = lines.isEmpty ? [] : lines.removeFirst()
        let method = String(decoding: first.prefix { $0 != 0x20 }, as: UTF8.self)
        var version = (0, 0)
        if let at = first.firstRange(of: Array("HTTP/".utf8)) {
            let rest = first[at.upperBound...]
            let major = rest.prefix { $0 >= 0x30 && $0 <= 0x39 }.prefix(3)
            let minor = rest.dropFirst(major.count + 1).prefix { $0 >= 0x30 && $0 <= 0x39 }.prefix(3)
            version = (Int(String(decoding: major, as: UTF8.self)) ?? 0, Int(String(decoding: minor, as: UTF8.self)) ?? 0)
        }
        let headers: Headers = lines.filter { !$0.isEmpty }.map { line in
            let colon = line.firstIndex(of: 0x3A) ?? line.endIndex
            return (String(decoding: line[..<colon], as: UTF8.self),
                    String(decoding: line[colon...].dropFirst(), as: UTF8.self))
        }
        return (method, version, headers)
    }

    static func swapCase(_ s: String, upper: Bool) -> String {
        String(decoding: s.utf8.map { c in
            upper ? (c >= 0x61 && c <= 0x7A ? c - 0x20 : c) : (c >= 0x41 && c <= 0x5A ? c + 0x20 : c)
        }, as: UTF8.self)
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, UpgradeRequestFuzz.run)
}
#endif
