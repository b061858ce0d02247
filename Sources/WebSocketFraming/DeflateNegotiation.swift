// permessage-deflate negotiation (RFC 7692 §5-§7.1): the server's choice among the
// client's offers and the client's check of the server's answer. Pure values: the
// compression itself lives in the C engine, and nothing here touches zlib or I/O.

/// The agreed permessage-deflate parameters of one connection (RFC 7692 §7.1).
///
/// Window sizes are base-2 logarithms in 8...15 (256 bytes to 32 KiB). The agreement
/// may set a window of 8 bits: zlib cannot produce raw deflate with a 256-byte window,
/// so an endpoint that must compress with 8 bits sends those messages uncompressed
/// (RSV1 clear), which RFC 7692 §6 permits per message. The negotiation still accepts
/// 8 so that peers which can use it are not refused.
public struct DeflateParameters: Hashable, Sendable {
    /// The server resets its compressor after every message, so the client may reset its
    /// decompressor too (§7.1.1.1).
    public var serverNoContextTakeover: Bool
    /// The client resets its compressor after every message, so the server may reset its
    /// decompressor too (§7.1.1.2).
    public var clientNoContextTakeover: Bool
    /// The largest LZ77 window the server compresses with, 8...15 (§7.1.2.1).
    public var serverMaxWindowBits: Int
    /// The largest LZ77 window the client compresses with, 8...15 (§7.1.2.2).
    public var clientMaxWindowBits: Int

    /// Creates parameters; the defaults are those of a bare `permessage-deflate`.
    public init(
        serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int = 15
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// The response extension a server writes for these parameters (only non-default
    /// parameters appear, e.g. `permessage-deflate; server_no_context_takeover; client_max_window_bits=12`).
    ///
    /// A window of 15 is left out: an absent window parameter means 15 to the client
    /// (§7.1.2), so writing it would only add bytes. For the client's window this is also
    /// what keeps the server from sending `client_max_window_bits` to a client that did
    /// not offer it, which §7.1.2.2 forbids (negotiation leaves that window at 15).
    public var responseExtension: ExtensionOffer {
        var parameters: [ExtensionOffer.Parameter] = []
        if serverNoContextTakeover { parameters.append(.init(name: PerMessageDeflate.serverNoContextTakeover)) }
        if clientNoContextTakeover { parameters.append(.init(name: PerMessageDeflate.clientNoContextTakeover)) }
        if serverMaxWindowBits < 15 {
            parameters.append(.init(name: PerMessageDeflate.serverMaxWindowBits, value: String(serverMaxWindowBits)))
        }
        if clientMaxWindowBits < 15 {
            parameters.append(.init(name: PerMessageDeflate.clientMaxWindowBits, value: String(clientMaxWindowBits)))
        }
        return ExtensionOffer(name: PerMessageDeflate.name, parameters: parameters)
    }
}

/// What a server accepts and asks for.
///
/// Window values outside 8...15 are clamped into that range when negotiating, so a
/// policy can never produce a response the client must reject.
public struct DeflateServerPolicy: Hashable, Sendable {
    /// Whether the server accepts permessage-deflate at all.
    public var enabled: Bool = true
    /// Upper bound for the server's own (compression) window; the server uses min(this, client's server_max_window_bits).
    public var serverMaxWindowBits: Int = 15
    /// Window the server asks the client to use, when the client offered client_max_window_bits (with or without value); nil = don't ask (leave it at the client's value or 15).
    public var clientMaxWindowBits: Int? = nil
    /// Always answer server_no_context_takeover (the server then resets its compressor per message; memory-light mode).
    public var serverNoContextTakeover: Bool = false
    /// Always answer client_no_context_takeover (the client then resets per message, so the server's inflater can be shared).
    public var clientNoContextTakeover: Bool = false

    /// Creates a policy; the defaults accept every valid offer with full windows.
    public init(
        enabled: Bool = true, serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int? = nil,
        serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false
    ) {
        self.enabled = enabled
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
    }
}

/// What a client offers.
public struct DeflateClientOffer: Hashable, Sendable {
    /// Ask the server to reset its compressor per message (§7.1.1.1); the server must
    /// then answer `server_no_context_takeover`.
    public var serverNoContextTakeover: Bool = false
    /// Announce that the client resets its compressor per message (§7.1.1.2); this holds
    /// whether or not the server echoes it.
    public var clientNoContextTakeover: Bool = false
    /// Limit the server's window to this many bits, 8...15 (§7.1.2.1); nil: not sent.
    public var serverMaxWindowBits: Int? = nil
    /// How the client announces its own window (§7.1.2.2).
    public var clientMaxWindowBits: ClientWindowBits = .offeredWithoutValue

    /// The `client_max_window_bits` parameter of an offer.
    public enum ClientWindowBits: Hashable, Sendable {
        /// Not sent: the server may not limit the client's window, which stays at 15.
        case notOffered
        /// Sent without a value: the client can use any window the server asks for.
        case offeredWithoutValue
        /// Sent with a value 8...15: the client will not use a larger window, and the
        /// server may ask for a smaller one.
        case value(Int)
    }

    /// Creates an offer; the default is what browsers send,
    /// `permessage-deflate; client_max_window_bits`.
    public init(
        serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int? = nil, clientMaxWindowBits: ClientWindowBits = .offeredWithoutValue
    ) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// The offer as an extension for Sec-WebSocket-Extensions.
    public var extensionOffer: ExtensionOffer {
        var parameters: [ExtensionOffer.Parameter] = []
        if serverNoContextTakeover { parameters.append(.init(name: PerMessageDeflate.serverNoContextTakeover)) }
        if clientNoContextTakeover { parameters.append(.init(name: PerMessageDeflate.clientNoContextTakeover)) }
        if let bits = serverMaxWindowBits {
            parameters.append(.init(name: PerMessageDeflate.serverMaxWindowBits, value: String(bits)))
        }
        switch clientMaxWindowBits {
        case .notOffered: break
        case .offeredWithoutValue: parameters.append(.init(name: PerMessageDeflate.clientMaxWindowBits))
        case .value(let bits):
            parameters.append(.init(name: PerMessageDeflate.clientMaxWindowBits, value: String(bits)))
        }
        return ExtensionOffer(name: PerMessageDeflate.name, parameters: parameters)
    }
}

/// permessage-deflate negotiation for both ends of the handshake.
public enum PerMessageDeflate {
    /// The extension token.
    public static let name = "permessage-deflate"

    // Parameter names. Compared exactly, like the extension token: RFC 7692 defines
    // them in lower case and the handshake matches extension names exactly too.
    static let serverNoContextTakeover = "server_no_context_takeover"
    static let clientNoContextTakeover = "client_no_context_takeover"
    static let serverMaxWindowBits = "server_max_window_bits"
    static let clientMaxWindowBits = "client_max_window_bits"

    /// Server side: picks the first acceptable permessage-deflate offer among `offers`
    /// (the client's Sec-WebSocket-Extensions, in order; other extensions are skipped),
    /// under `policy`. Returns the agreed parameters (whose `responseExtension` the
    /// server sends), or nil to go without compression.
    public static func negotiate(offers: [ExtensionOffer], policy: DeflateServerPolicy) -> DeflateParameters? {
        choose(offers: offers, policy: policy)?.agreed
    }

    /// Server side: `negotiate` plus the exact response extension to send. It differs
    /// from `responseExtension` in one case: a client that asked for
    /// `server_max_window_bits=15` must see it accepted in the response (§7.1.2.1: the
    /// server accepts that parameter by including it), or it fails the connection.
    public static func negotiateResponse(offers: [ExtensionOffer], policy: DeflateServerPolicy)
        -> (parameters: DeflateParameters, response: ExtensionOffer)?
    {
        guard let (agreed, askedServerBits) = choose(offers: offers, policy: policy) else { return nil }
        var response = agreed.responseExtension
        if askedServerBits && agreed.serverMaxWindowBits == 15 {
            let at = response.parameters.firstIndex { $0.name == PerMessageDeflate.clientMaxWindowBits } ?? response.parameters.endIndex
            response.parameters.insert(.init(name: PerMessageDeflate.serverMaxWindowBits, value: "15"), at: at)
        }
        return (agreed, response)
    }

    /// The first acceptable offer's agreement, and whether that offer limited the
    /// server's window.
    private static func choose(offers: [ExtensionOffer], policy: DeflateServerPolicy) -> (agreed: DeflateParameters, askedServerBits: Bool)? {
        guard policy.enabled else { return nil }
        // A bad offer is declined, not fatal (§7.1): the client may have listed a
        // fallback after it, and without any the connection just goes uncompressed.
        for offer in offers where offer.name == name {
            guard let p = try? Parsed(offer.parameters, isResponse: false) else { continue }
            var agreed = DeflateParameters()
            agreed.serverNoContextTakeover = p.serverNoContextTakeover || policy.serverNoContextTakeover
            agreed.clientNoContextTakeover = p.clientNoContextTakeover || policy.clientNoContextTakeover
            agreed.serverMaxWindowBits = min(clampWindow(policy.serverMaxWindowBits), p.serverMaxWindowBits ?? 15)
            let asked = policy.clientMaxWindowBits.map(clampWindow)
            switch p.clientMaxWindowBits {
            case .notOffered:
                // The client may not support a smaller window: §7.1.2.2 forbids asking.
                agreed.clientMaxWindowBits = 15
            case .offeredWithoutValue:
                agreed.clientMaxWindowBits = asked ?? 15
            case .value(let v):
                // The client promised not to exceed v even if we stay silent, so the
                // effective window is v unless we ask for less.
                agreed.clientMaxWindowBits = min(v, asked ?? v)
            }
            return (agreed, p.serverMaxWindowBits != nil)
        }
        return nil
    }

    /// Client side: checks the server's response extension against what we offered
    /// and returns the agreed parameters, or throws `DeflateNegotiationError` (the
    /// client must then fail the connection with close code 1010).
    public static func accept(
        response: ExtensionOffer, offer: DeflateClientOffer
    ) throws(DeflateNegotiationError) -> DeflateParameters {
        guard response.name == name else {
            throw DeflateNegotiationError(reason: "response extension is \(response.name), not \(name)")
        }
        let p = try Parsed(response.parameters, isResponse: true)
        var agreed = DeflateParameters()

        // The server accepts our request for no context takeover only by echoing it
        // (§7.1.1.1); it may also declare it unasked, which costs us nothing.
        if offer.serverNoContextTakeover && !p.serverNoContextTakeover {
            throw DeflateNegotiationError(reason: "response lacks the server_no_context_takeover we required")
        }
        agreed.serverNoContextTakeover = p.serverNoContextTakeover
        // Our own promise holds whether or not the server echoes it (§7.1.1.2).
        agreed.clientNoContextTakeover = p.clientNoContextTakeover || offer.clientNoContextTakeover

        // The server accepts our limit by answering the same or a smaller value; no
        // answer means 15, which breaks a limit below 15.
        let serverBits = p.serverMaxWindowBits ?? 15
        if let limit = offer.serverMaxWindowBits, serverBits > limit {
            throw DeflateNegotiationError(
                reason: "server window of \(serverBits) bits exceeds the \(limit) we offered")
        }
        agreed.serverMaxWindowBits = serverBits

        switch (offer.clientMaxWindowBits, p.clientMaxWindowBits) {
        case (.notOffered, .notOffered):
            agreed.clientMaxWindowBits = 15
        case (.notOffered, _):
            throw DeflateNegotiationError(reason: "response has client_max_window_bits, which we did not offer")
        case (.offeredWithoutValue, .value(let bits)):
            agreed.clientMaxWindowBits = bits
        case (.offeredWithoutValue, _):
            agreed.clientMaxWindowBits = 15
        case (.value(let limit), .value(let bits)):
            guard bits <= limit else {
                throw DeflateNegotiationError(
                    reason: "client_max_window_bits=\(bits) exceeds the \(limit) we offered")
            }
            agreed.clientMaxWindowBits = bits
        case (.value(let limit), _):
            // Silence leaves us at what we offered: we promised not to exceed it.
            agreed.clientMaxWindowBits = limit
        }
        return agreed
    }

    /// Clamps a configured window into the range RFC 7692 allows on the wire.
    static func clampWindow(_ bits: Int) -> Int { min(max(bits, 8), 15) }

    /// A window value: a decimal integer 8...15 without leading zeros (§7.1.2.1). Checked
    /// by hand because `Int("+9")` succeeds, and "+9", "08" or "9.0" are invalid.
    static func windowBits(_ value: String) -> Int? {
        let digits = Array(value.utf8)
        guard !digits.isEmpty, digits.count <= 2, digits[0] != UInt8(ascii: "0"),
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let bits = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        return (8...15).contains(bits) ? bits : nil
    }

    /// The parameters of one offer or response, checked for syntax but not yet against
    /// a policy or an offer.
    struct Parsed {
        var serverNoContextTakeover = false
        var clientNoContextTakeover = false
        var serverMaxWindowBits: Int?
        var clientMaxWindowBits: DeflateClientOffer.ClientWindowBits = .notOffered

        /// Checks parameter by parameter. Offers and responses differ in one point: an
        /// offer may carry `client_max_window_bits` without a value, a response may not
        /// (§7.1.2.2).
        init(_ parameters: [ExtensionOffer.Parameter], isResponse: Bool) throws(DeflateNegotiationError) {
            var seen: Set<String> = []
            for parameter in parameters {
                let pname = parameter.name
                guard seen.insert(pname).inserted else {
                    throw DeflateNegotiationError(reason: "parameter \(pname) appears twice")
                }
                switch pname {
                case PerMessageDeflate.serverNoContextTakeover, PerMessageDeflate.clientNoContextTakeover:
                    guard parameter.value == nil else {
                        throw DeflateNegotiationError(reason: "\(pname) must not have a value")
                    }
                    if pname == PerMessageDeflate.serverNoContextTakeover {
                        serverNoContextTakeover = true
                    } else {
                        clientNoContextTakeover = true
                    }
                case PerMessageDeflate.serverMaxWindowBits:
                    guard let value = parameter.value, let bits = PerMessageDeflate.windowBits(value) else {
                        throw DeflateNegotiationError(reason: "\(pname) needs a value from 8 to 15")
                    }
                    serverMaxWindowBits = bits
                case PerMessageDeflate.clientMaxWindowBits:
                    if let value = parameter.value {
                        guard let bits = PerMessageDeflate.windowBits(value) else {
                            throw DeflateNegotiationError(reason: "\(pname)=\(value) is not a value from 8 to 15")
                        }
                        clientMaxWindowBits = .value(bits)
                    } else if isResponse {
                        throw DeflateNegotiationError(reason: "\(pname) in a response needs a value")
                    } else {
                        clientMaxWindowBits = .offeredWithoutValue
                    }
                default:
                    throw DeflateNegotiationError(reason: "unknown parameter \(pname)")
                }
            }
        }
    }
}

/// Why a server's permessage-deflate response is unacceptable.
public struct DeflateNegotiationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong with the response.
    public var reason: String

    /// Creates an error with a reason.
    public init(reason: String) { self.reason = reason }

    /// Always 1010 (mandatory extension / unacceptable response).
    public var closeCode: CloseCode { .mandatoryExtension }

    /// The reason and the close code, for logs.
    public var description: String {
        "unacceptable permessage-deflate response: \(reason) (close code \(closeCode.rawValue))"
    }
}
