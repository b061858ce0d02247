// Fuzz target extension_header: Sec-WebSocket-Extensions parsing (ExtensionOffer
// .parseList) and permessage-deflate negotiation on what it parses.
//
// Input: [policy flags] [server window] [client window], then the header value.
//
// Checks: parseList accepts exactly what a separate recognizer of the RFC 6455 9.1
// grammar (written here) accepts; what it parses is tokens and formats back to an equal
// list; and when the server agrees to an offer, its response, sent as text and parsed
// back, is accepted by a client that made that offer, with the same parameters.
@testable import WebSocketFraming

enum ExtensionHeaderFuzz {
    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let flags = input.byte()
        let serverBits = input.int(in: 0...20)
        let clientBits = input.int(in: 0...20)
        let bytes = input.rest()
        let value = String(decoding: bytes, as: UTF8.self)

        let offers = ExtensionOffer.parseList(value)
        let expected = recognize(Array(value.utf8))
        try fuzzRequire((offers != nil) == expected, "parseList: \(offers == nil ? "rejected" : "accepted"), grammar: \(expected)")
        guard let offers else { return }
        for offer in offers {
            try fuzzRequire(Handshake.isToken(offer.name), "name \(offer.name) is not a token")
            for p in offer.parameters {
                try fuzzRequire(Handshake.isToken(p.name) && p.value.map(Handshake.isToken) ?? true,
                                "parameter \(p) is not tokens")
            }
        }
        try fuzzRequire(ExtensionOffer.parseList(ExtensionOffer.format(offers)) == offers, "format does not parse back")

        let policy = DeflateServerPolicy(
            enabled: flags & 1 == 0, serverMaxWindowBits: serverBits,
            clientMaxWindowBits: flags & 2 != 0 ? clientBits : nil,
            serverNoContextTakeover: flags & 4 != 0, clientNoContextTakeover: flags & 8 != 0)
        let agreed = PerMessageDeflate.negotiate(offers: offers, policy: policy)
        let answer = PerMessageDeflate.negotiateResponse(offers: offers, policy: policy)
        try fuzzRequire(agreed == answer?.parameters, "negotiate and negotiateResponse disagree")
        guard let answer else { return }
        for bits in [answer.parameters.serverMaxWindowBits, answer.parameters.clientMaxWindowBits] {
            try fuzzRequire((8...15).contains(bits), "agreed window \(bits)")
        }
        // The offer the server took: the first permessage-deflate offer that is valid.
        guard let chosen = offers.first(where: {
            $0.name == PerMessageDeflate.name && (try? PerMessageDeflate.Parsed($0.parameters, isResponse: false)) != nil
        }) else {
            throw FuzzFailure(message: "agreement without a valid offer")
        }
        let clientOffer = try clientView(of: chosen)
        guard let sent = ExtensionOffer.parseList(ExtensionOffer.format([answer.response])), sent.count == 1 else {
            throw FuzzFailure(message: "response \(answer.response) does not parse")
        }
        do {
            let accepted = try PerMessageDeflate.accept(response: sent[0], offer: clientOffer)
            try fuzzRequire(accepted == answer.parameters,
                            "client agreed \(accepted), server \(answer.parameters), for \(chosen)")
        } catch let error as DeflateNegotiationError {
            throw FuzzFailure(message: "client rejects the server's response \(answer.response) to \(chosen): \(error)")
        }
    }

    /// The offer as the client that sent it meant it.
    static func clientView(of offer: ExtensionOffer) throws -> DeflateClientOffer {
        var client = DeflateClientOffer(clientMaxWindowBits: .notOffered)
        for p in offer.parameters {
            switch p.name {
            case "server_no_context_takeover": client.serverNoContextTakeover = true
            case "client_no_context_takeover": client.clientNoContextTakeover = true
            case "server_max_window_bits": client.serverMaxWindowBits = p.value.flatMap { Int($0) }
            case "client_max_window_bits":
                client.clientMaxWindowBits = p.value.flatMap { Int($0) }.map { .value($0) } ?? .offeredWithoutValue
            default: throw FuzzFailure(message: "valid offer with parameter \(p.name)")
            }
        }
        return client
    }

    // MARK: - An independent recognizer

    /// RFC 6455 9.1 (with RFC 9110's list, token and quoted-string rules):
    ///   list = [ext] *(OWS "," OWS [ext]), ext = token *(OWS ";" OWS param),
    ///   param = token [OWS "=" OWS (token | quoted-string)], and a quoted value must be
    ///   a token once unescaped. Written as a character-class state machine.
    static func recognize(_ s: [UInt8]) -> Bool {
        enum State { case elementStart, name, afterName, paramStart, param, afterParam, valueStart, value, quoted, escape, afterValue }
        var state = State.elementStart
        var unquoted: [UInt8] = []
        for c in s {
            let ows = c == 0x20 || c == 0x09
            let tchar = isTchar(c)
            switch state {
            case .elementStart:
                if ows || c == 0x2C { continue }
                guard tchar else { return false }
                state = .name
            case .name:
                if tchar { continue }
                if ows { state = .afterName } else if c == 0x3B { state = .paramStart } else if c == 0x2C { state = .elementStart } else { return false }
            case .afterName, .afterValue:
                if ows { continue }
                if c == 0x3B { state = .paramStart } else if c == 0x2C { state = .elementStart } else { return false }
            case .paramStart:
                if ows { continue }
                guard tchar else { return false }
                state = .param
            case .param:
                if tchar { continue }
                if ows { state = .afterParam } else if c == 0x3D { state = .valueStart } else if c == 0x3B { state = .paramStart } else if c == 0x2C { state = .elementStart } else { return false }
            case .afterParam:
                if ows { continue }
                if c == 0x3D { state = .valueStart } else if c == 0x3B { state = .paramStart } else if c == 0x2C { state = .elementStart } else { return false }
            case .valueStart:
                if ows { continue }
                if c == 0x22 { state = .quoted; unquoted = [] } else if tchar { state = .value } else { return false }
            case .value:
                if tchar { continue }
                if ows { state = .afterValue } else if c == 0x3B { state = .paramStart } else if c == 0x2C { state = .elementStart } else { return false }
            case .quoted:
                if c == 0x22 {
                    guard !unquoted.isEmpty, unquoted.allSatisfy(isTchar) else { return false }
                    state = .afterValue
                } else if c == 0x5C {
                    state = .escape
                } else if c == 0x09 || (c >= 0x20 && c != 0x7F) {
                    unquoted.append(c)
                } else {
                    return false
                }
            case .escape:
                guard c == 0x09 || (c >= 0x20 && c != 0x7F) else { return false }
                unquoted.append(c)
                state = .quoted
            }
        }
        return [.elementStart, .name, .afterName, .param, .afterParam, .value, .afterValue].contains(state)
    }

    static func isTchar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || Array("!#$%&'*+-.^_`|~".utf8).contains(c)
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, ExtensionHeaderFuzz.run)
}
#endif
