import Testing

@testable import WebSocketFraming

// permessage-deflate negotiation (RFC 7692 §7.1): the server's choice among offers, the
// client's check of the response, and the two sides agreeing.

/// A server case: the client's `Sec-WebSocket-Extensions` value, the policy, and the
/// response extension the server must write (nil: no compression).
struct DeflateServerCase: Sendable, CustomTestStringConvertible {
    var offers: String
    var policy = DeflateServerPolicy()
    var response: String?
    var testDescription: String { "\(offers) → \(response ?? "nil")" }
}

/// A client case: what we offered, the server's response extension, and the parameters
/// we must agree on (nil: the response must be rejected with 1010).
struct DeflateClientCase: Sendable, CustomTestStringConvertible {
    var offer = DeflateClientOffer()
    var response: String
    var agreed: DeflateParameters?
    var testDescription: String { "\(offer.extensionOffer) ← \(response)" }
}

private func serverResponse(_ offers: String, _ policy: DeflateServerPolicy) throws -> String? {
    let parsed = try #require(ExtensionOffer.parseList(offers), "offer header did not parse")
    return PerMessageDeflate.negotiate(offers: parsed, policy: policy).map {
        ExtensionOffer.format([$0.responseExtension])
    }
}

private let pmd = "permessage-deflate"

@Suite struct DeflateNegotiationTests {

    // MARK: Server

    static let browserAndBasicOffers: [DeflateServerCase] = [
        // Chrome and Safari
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", response: pmd),
        // Firefox
        DeflateServerCase(offers: "permessage-deflate", response: pmd),
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=10", response: "\(pmd); server_max_window_bits=10"),
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=\"10\"", response: "\(pmd); server_max_window_bits=10"),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits=\"12\"", response: "\(pmd); client_max_window_bits=12"),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits=15", response: pmd),
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=15", response: pmd),
        // 8 bits is accepted even though zlib cannot compress with it (sent uncompressed).
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=8", response: "\(pmd); server_max_window_bits=8"),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits=8", response: "\(pmd); client_max_window_bits=8"),
        DeflateServerCase(
            offers: "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            response: "\(pmd); server_no_context_takeover; client_no_context_takeover"),
        // The response has a fixed order whatever the offer's order.
        DeflateServerCase(
            offers: "permessage-deflate; client_max_window_bits=9; server_max_window_bits=11; client_no_context_takeover; server_no_context_takeover",
            response: "\(pmd); server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9"),
        // Other extensions are skipped, before or after.
        DeflateServerCase(offers: "x-foo, permessage-deflate", response: pmd),
        DeflateServerCase(offers: "x-foo; server_max_window_bits=10, permessage-deflate; server_no_context_takeover, x-bar", response: "\(pmd); server_no_context_takeover"),
        DeflateServerCase(offers: "x-webkit-deflate-frame", response: nil),
        DeflateServerCase(offers: "x-foo; server_max_window_bits=10", response: nil),
        DeflateServerCase(offers: "", response: nil),
        // Names are compared exactly, as the handshake compares extension names.
        DeflateServerCase(offers: "PerMessage-Deflate", response: nil),
        DeflateServerCase(offers: "permessage-deflate; Server_No_Context_Takeover", response: nil),
        // Only the first acceptable offer counts.
        DeflateServerCase(
            offers: "permessage-deflate; server_max_window_bits=9, permessage-deflate; server_max_window_bits=12",
            response: "\(pmd); server_max_window_bits=9"),
    ]

    @Test(arguments: browserAndBasicOffers)
    func serverAnswersOffers(_ c: DeflateServerCase) throws {
        #expect(try serverResponse(c.offers, c.policy) == c.response)
    }

    /// An invalid first offer followed by a valid fallback: the fallback's distinctive
    /// answer proves the first was declined rather than half-accepted.
    static let invalidFirstOffers: [String] = [
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",  // duplicate
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; x-unknown",  // unknown parameter
        "permessage-deflate; client_max_window_bits; mux",
        "permessage-deflate; server_max_window_bits=7",  // out of range
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=150",
        "permessage-deflate; server_max_window_bits=08",  // leading zero
        "permessage-deflate; server_max_window_bits=\"08\"",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",  // not a plain decimal
        "permessage-deflate; server_max_window_bits=9.0",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; server_max_window_bits=0x9",
        "permessage-deflate; server_max_window_bits=ten",
        "permessage-deflate; server_max_window_bits",  // a value is required
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=\"+9\"",
        "permessage-deflate; server_no_context_takeover=1",  // value on a flag
        "permessage-deflate; client_no_context_takeover=\"true\"",
    ]

    @Test(arguments: invalidFirstOffers)
    func invalidOfferIsDeclinedForTheNext(_ first: String) throws {
        let fallback = "permessage-deflate; server_max_window_bits=11; client_max_window_bits"
        #expect(try serverResponse("\(first), \(fallback)", DeflateServerPolicy()) == "\(pmd); server_max_window_bits=11")
        // Alone, it leaves the connection uncompressed.
        #expect(try serverResponse(first, DeflateServerPolicy()) == nil)
    }

    static let policyCases: [DeflateServerCase] = [
        // Server window bound.
        DeflateServerCase(offers: "permessage-deflate", policy: .init(serverMaxWindowBits: 10), response: "\(pmd); server_max_window_bits=10"),
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=9", policy: .init(serverMaxWindowBits: 10), response: "\(pmd); server_max_window_bits=9"),
        DeflateServerCase(offers: "permessage-deflate; server_max_window_bits=12", policy: .init(serverMaxWindowBits: 10), response: "\(pmd); server_max_window_bits=10"),
        // Out-of-range policy windows are clamped to 8...15.
        DeflateServerCase(offers: "permessage-deflate", policy: .init(serverMaxWindowBits: 4), response: "\(pmd); server_max_window_bits=8"),
        DeflateServerCase(offers: "permessage-deflate", policy: .init(serverMaxWindowBits: 20), response: pmd),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", policy: .init(clientMaxWindowBits: 30), response: pmd),
        // Client window request: only when the client offered client_max_window_bits.
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", policy: .init(clientMaxWindowBits: 12), response: "\(pmd); client_max_window_bits=12"),
        DeflateServerCase(offers: "permessage-deflate", policy: .init(clientMaxWindowBits: 12), response: pmd),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits=10", policy: .init(clientMaxWindowBits: 12), response: "\(pmd); client_max_window_bits=10"),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits=14", policy: .init(clientMaxWindowBits: 12), response: "\(pmd); client_max_window_bits=12"),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", policy: .init(clientMaxWindowBits: 15), response: pmd),
        // Forced no context takeover.
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", policy: .init(serverNoContextTakeover: true), response: "\(pmd); server_no_context_takeover"),
        DeflateServerCase(offers: "permessage-deflate", policy: .init(clientNoContextTakeover: true), response: "\(pmd); client_no_context_takeover"),
        DeflateServerCase(
            offers: "permessage-deflate; server_no_context_takeover",
            policy: .init(serverNoContextTakeover: true, clientNoContextTakeover: true),
            response: "\(pmd); server_no_context_takeover; client_no_context_takeover"),
        // Everything at once.
        DeflateServerCase(
            offers: "x-foo, permessage-deflate; server_max_window_bits=12; client_max_window_bits",
            policy: .init(serverMaxWindowBits: 10, clientMaxWindowBits: 9, serverNoContextTakeover: true, clientNoContextTakeover: true),
            response: "\(pmd); server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"),
        // Disabled.
        DeflateServerCase(offers: "permessage-deflate", policy: .init(enabled: false), response: nil),
        DeflateServerCase(offers: "permessage-deflate; client_max_window_bits", policy: .init(enabled: false, clientMaxWindowBits: 10), response: nil),
    ]

    @Test(arguments: policyCases)
    func serverAppliesPolicy(_ c: DeflateServerCase) throws {
        #expect(try serverResponse(c.offers, c.policy) == c.response)
    }

    @Test func emptyOfferListGivesNoCompression() {
        #expect(PerMessageDeflate.negotiate(offers: [], policy: DeflateServerPolicy()) == nil)
    }

    @Test func agreedParametersAreTheEffectiveValues() throws {
        // What the server itself must use, including values the response leaves out.
        let offers = try #require(ExtensionOffer.parseList("permessage-deflate; client_max_window_bits=11; server_no_context_takeover"))
        #expect(
            PerMessageDeflate.negotiate(offers: offers, policy: .init(serverMaxWindowBits: 9))
                == DeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 11))
        let firefox = [ExtensionOffer(name: pmd)]
        #expect(PerMessageDeflate.negotiate(offers: firefox, policy: .init(clientMaxWindowBits: 9)) == DeflateParameters())
    }

    // MARK: Formatting

    @Test func defaultParametersAnswerTheBareName() {
        #expect(DeflateParameters().responseExtension == ExtensionOffer(name: pmd))
        #expect(
            ExtensionOffer.format([DeflateParameters(clientNoContextTakeover: true, clientMaxWindowBits: 12).responseExtension])
                == "\(pmd); client_no_context_takeover; client_max_window_bits=12")
    }

    @Test(arguments: [
        (DeflateClientOffer(), "permessage-deflate; client_max_window_bits"),
        (DeflateClientOffer(clientMaxWindowBits: .notOffered), "permessage-deflate"),
        (DeflateClientOffer(clientMaxWindowBits: .value(10)), "permessage-deflate; client_max_window_bits=10"),
        (
            DeflateClientOffer(
                serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9,
                clientMaxWindowBits: .value(12)),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12"
        ),
    ])
    func clientOfferFormats(_ offer: DeflateClientOffer, _ header: String) {
        #expect(ExtensionOffer.format([offer.extensionOffer]) == header)
        #expect(ExtensionOffer.parseList(header) == [offer.extensionOffer])
    }

    // MARK: Client

    static let acceptedResponses: [DeflateClientCase] = [
        DeflateClientCase(response: "permessage-deflate", agreed: DeflateParameters()),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=10", agreed: .init(clientMaxWindowBits: 10)),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=\"8\"", agreed: .init(clientMaxWindowBits: 8)),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=8", agreed: .init(serverMaxWindowBits: 8)),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=\"12\"", agreed: .init(serverMaxWindowBits: 12)),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=15", agreed: DeflateParameters()),
        // The server may declare either flag unasked.
        DeflateClientCase(response: "permessage-deflate; server_no_context_takeover", agreed: .init(serverNoContextTakeover: true)),
        DeflateClientCase(response: "permessage-deflate; client_no_context_takeover", agreed: .init(clientNoContextTakeover: true)),
        DeflateClientCase(
            response: "permessage-deflate; client_max_window_bits=9; client_no_context_takeover; server_max_window_bits=10; server_no_context_takeover",
            agreed: .init(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9)),
        // Not offering client_max_window_bits: a response without it is fine.
        DeflateClientCase(offer: .init(clientMaxWindowBits: .notOffered), response: "permessage-deflate", agreed: DeflateParameters()),
        // Offering a client window: silence keeps our value, a smaller answer lowers it.
        DeflateClientCase(offer: .init(clientMaxWindowBits: .value(10)), response: "permessage-deflate", agreed: .init(clientMaxWindowBits: 10)),
        DeflateClientCase(offer: .init(clientMaxWindowBits: .value(10)), response: "permessage-deflate; client_max_window_bits=10", agreed: .init(clientMaxWindowBits: 10)),
        DeflateClientCase(offer: .init(clientMaxWindowBits: .value(10)), response: "permessage-deflate; client_max_window_bits=9", agreed: .init(clientMaxWindowBits: 9)),
        // Limiting the server window: the answer must be there and no larger.
        DeflateClientCase(offer: .init(serverMaxWindowBits: 10), response: "permessage-deflate; server_max_window_bits=10", agreed: .init(serverMaxWindowBits: 10)),
        DeflateClientCase(offer: .init(serverMaxWindowBits: 10), response: "permessage-deflate; server_max_window_bits=8", agreed: .init(serverMaxWindowBits: 8)),
        DeflateClientCase(offer: .init(serverMaxWindowBits: 15), response: "permessage-deflate", agreed: DeflateParameters()),
        // Requested server_no_context_takeover, echoed.
        DeflateClientCase(offer: .init(serverNoContextTakeover: true), response: "permessage-deflate; server_no_context_takeover", agreed: .init(serverNoContextTakeover: true)),
        // Our client_no_context_takeover holds even unechoed.
        DeflateClientCase(offer: .init(clientNoContextTakeover: true), response: "permessage-deflate", agreed: .init(clientNoContextTakeover: true)),
        DeflateClientCase(offer: .init(clientNoContextTakeover: true), response: "permessage-deflate; client_no_context_takeover", agreed: .init(clientNoContextTakeover: true)),
    ]

    static let rejectedResponses: [DeflateClientCase] = [
        // client_max_window_bits not offered.
        DeflateClientCase(offer: .init(clientMaxWindowBits: .notOffered), response: "permessage-deflate; client_max_window_bits=15"),
        DeflateClientCase(offer: .init(clientMaxWindowBits: .notOffered), response: "permessage-deflate; client_max_window_bits=10"),
        // Windows larger than offered.
        DeflateClientCase(offer: .init(clientMaxWindowBits: .value(10)), response: "permessage-deflate; client_max_window_bits=11"),
        DeflateClientCase(offer: .init(serverMaxWindowBits: 10), response: "permessage-deflate; server_max_window_bits=11"),
        DeflateClientCase(offer: .init(serverMaxWindowBits: 10), response: "permessage-deflate"),  // silence means 15
        // Required server_no_context_takeover missing.
        DeflateClientCase(offer: .init(serverNoContextTakeover: true), response: "permessage-deflate"),
        DeflateClientCase(offer: .init(serverNoContextTakeover: true), response: "permessage-deflate; client_no_context_takeover"),
        // Unknown and duplicate parameters.
        DeflateClientCase(response: "permessage-deflate; foo"),
        DeflateClientCase(response: "permessage-deflate; server_no_context_takeover; x-extra=1"),
        DeflateClientCase(response: "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=10; server_max_window_bits=9"),
        // Wrong extension.
        DeflateClientCase(response: "x-webkit-deflate-frame"),
        DeflateClientCase(response: "PerMessage-Deflate"),
        // Bad values.
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits"),  // value required in a response
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits"),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=7"),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=16"),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=08"),
        DeflateClientCase(response: "permessage-deflate; server_max_window_bits=+9"),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=9.0"),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=abc"),
        DeflateClientCase(response: "permessage-deflate; client_max_window_bits=\"16\""),
        DeflateClientCase(response: "permessage-deflate; server_no_context_takeover=true"),
        DeflateClientCase(response: "permessage-deflate; client_no_context_takeover=\"1\""),
    ]

    @Test(arguments: acceptedResponses + rejectedResponses)
    func clientChecksResponse(_ c: DeflateClientCase) throws {
        let parsed = try #require(ExtensionOffer.parseList(c.response))
        let response = try #require(parsed.count == 1 ? parsed[0] : nil)
        if let agreed = c.agreed {
            #expect(try PerMessageDeflate.accept(response: response, offer: c.offer) == agreed)
        } else {
            let error = #expect(throws: DeflateNegotiationError.self) {
                try PerMessageDeflate.accept(response: response, offer: c.offer)
            }
            #expect(error?.closeCode == .mandatoryExtension)
            #expect(error?.closeCode.rawValue == 1010)
        }
    }

    @Test func errorDescribesReasonAndCode() {
        let error = DeflateNegotiationError(reason: "unknown parameter foo")
        #expect(error.description.contains("unknown parameter foo"))
        #expect(error.description.contains("1010"))
        #expect(error.closeCode.isValidOnWire)
    }

    // MARK: Round trip

    static let clientOffers: [DeflateClientOffer] = {
        var offers: [DeflateClientOffer] = []
        let clientBits: [DeflateClientOffer.ClientWindowBits] = [
            .notOffered, .offeredWithoutValue, .value(8), .value(11), .value(15),
        ]
        for serverNCT in [false, true] {
            for clientNCT in [false, true] {
                for serverBits in [nil, 8, 9, 12, 15] {
                    for bits in clientBits {
                        offers.append(
                            DeflateClientOffer(
                                serverNoContextTakeover: serverNCT, clientNoContextTakeover: clientNCT,
                                serverMaxWindowBits: serverBits, clientMaxWindowBits: bits))
                    }
                }
            }
        }
        return offers
    }()

    static let policies: [DeflateServerPolicy] = [
        DeflateServerPolicy(),
        DeflateServerPolicy(serverMaxWindowBits: 10),
        DeflateServerPolicy(serverMaxWindowBits: 8),
        DeflateServerPolicy(clientMaxWindowBits: 12),
        DeflateServerPolicy(clientMaxWindowBits: 9),
        DeflateServerPolicy(clientMaxWindowBits: 15),
        DeflateServerPolicy(serverNoContextTakeover: true),
        DeflateServerPolicy(clientNoContextTakeover: true),
        DeflateServerPolicy(
            serverMaxWindowBits: 11, clientMaxWindowBits: 10, serverNoContextTakeover: true, clientNoContextTakeover: true),
    ]

    @Test(arguments: policies)
    func serverAnswerIsAcceptedAndBothSidesAgree(_ policy: DeflateServerPolicy) throws {
        #expect(Self.clientOffers.count == 100)
        for offer in Self.clientOffers {
            // Through header text on both legs, as on the wire.
            let offerHeader = ExtensionOffer.format([ExtensionOffer(name: "x-other"), offer.extensionOffer])
            let offers = try #require(ExtensionOffer.parseList(offerHeader))
            let server = try #require(
                PerMessageDeflate.negotiate(offers: offers, policy: policy), "server declined \(offerHeader)")
            let responseHeader = ExtensionOffer.format([server.responseExtension])
            let response = try #require(ExtensionOffer.parseList(responseHeader)?.first)
            let client: DeflateParameters
            do {
                client = try PerMessageDeflate.accept(response: response, offer: offer)
            } catch {
                Issue.record("client rejected \(responseHeader) for \(offerHeader): \(error)")
                continue
            }
            #expect(client == server, "\(offerHeader) → \(responseHeader)")

            // The agreement honours every limit of the offer and the policy.
            #expect(server.serverNoContextTakeover == (offer.serverNoContextTakeover || policy.serverNoContextTakeover))
            #expect(server.clientNoContextTakeover == (offer.clientNoContextTakeover || policy.clientNoContextTakeover))
            #expect(server.serverMaxWindowBits <= min(offer.serverMaxWindowBits ?? 15, policy.serverMaxWindowBits))
            #expect((8...15).contains(server.serverMaxWindowBits) && (8...15).contains(server.clientMaxWindowBits))
            switch offer.clientMaxWindowBits {
            case .notOffered:
                #expect(server.clientMaxWindowBits == 15)
                #expect(!response.parameters.contains { $0.name == "client_max_window_bits" })
            case .offeredWithoutValue:
                #expect(server.clientMaxWindowBits == (policy.clientMaxWindowBits ?? 15))
            case .value(let v):
                #expect(server.clientMaxWindowBits == min(v, policy.clientMaxWindowBits ?? v))
            }
        }
    }

    @Test func disabledPolicyDeclinesEveryOffer() {
        let offers = Self.clientOffers.map(\.extensionOffer)
        #expect(PerMessageDeflate.negotiate(offers: offers, policy: .init(enabled: false)) == nil)
        #expect(PerMessageDeflate.negotiate(offers: offers, policy: .init()) != nil)
    }
}

@Suite struct DeflateNegotiationResponseTests {
    @Test func askedServerWindowOf15IsEchoed() throws {
        let offers = try #require(ExtensionOffer.parseList("permessage-deflate; server_max_window_bits=15; client_max_window_bits"))
        let (params, response) = try #require(PerMessageDeflate.negotiateResponse(offers: offers, policy: DeflateServerPolicy()))
        #expect(ExtensionOffer.format([response]) == "permessage-deflate; server_max_window_bits=15")
        #expect(params == DeflateParameters())
        // A client that asked for it accepts the echo.
        let offer = DeflateClientOffer(serverMaxWindowBits: 15)
        #expect(try PerMessageDeflate.accept(response: response, offer: offer) == params)
    }

    @Test func responseMatchesResponseExtensionOtherwise() throws {
        for header in ["permessage-deflate", "permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=10"] {
            let offers = try #require(ExtensionOffer.parseList(header))
            let (params, response) = try #require(PerMessageDeflate.negotiateResponse(offers: offers, policy: DeflateServerPolicy()))
            #expect(response == params.responseExtension, "\(header)")
        }
    }
}
