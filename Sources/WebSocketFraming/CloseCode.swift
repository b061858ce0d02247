import CWebSocket

/// A close status code (RFC 6455 §7.4), with the registered codes as constants.
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The numeric code.
    public var rawValue: UInt16

    /// Wraps any 16-bit code; use `isValidOnWire` to check it may be sent.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Wraps any 16-bit code.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normalClosure = CloseCode(1000)
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway = CloseCode(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = CloseCode(1002)
    /// 1003: a message type the endpoint cannot accept.
    public static let unsupportedData = CloseCode(1003)
    /// 1005: reported when a close frame had no code; never sent.
    public static let noStatusReceived = CloseCode(1005)
    /// 1006: reported when the connection dropped without a close frame; never sent.
    public static let abnormalClosure = CloseCode(1006)
    /// 1007: message data inconsistent with its type (such as invalid UTF-8 text).
    public static let invalidPayloadData = CloseCode(1007)
    /// 1008: a message violated the endpoint's policy.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a message too big to process.
    public static let messageTooBig = CloseCode(1009)
    /// 1010: the client expected an extension the server did not negotiate.
    public static let mandatoryExtension = CloseCode(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalError = CloseCode(1011)
    /// 1012: the service is restarting.
    public static let serviceRestart = CloseCode(1012)
    /// 1013: try again later (temporary overload).
    public static let tryAgainLater = CloseCode(1013)
    /// 1014: a gateway received an invalid response upstream.
    public static let badGateway = CloseCode(1014)
    /// 1015: reported when the TLS handshake failed; never sent.
    public static let tlsHandshakeFailure = CloseCode(1015)

    /// Whether this code may be sent in a close frame: 1000-1003, 1007-1014, 3000-4999.
    public var isValidOnWire: Bool { cws_close_code_valid(rawValue) }

    public var description: String { String(rawValue) }
}
