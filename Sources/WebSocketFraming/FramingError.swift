import CWebSocket

/// A protocol violation (or a caller error) found by the engine, with the close code
/// the endpoint should send.
public struct FramingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The engine's status code.
    public let status: UInt32

    /// The close code to send to the peer: 1002, 1007 or 1009 for peer errors.
    public var closeCode: CloseCode { CloseCode(cws_status_close_code(cws_status(status))) }

    /// A short human-readable reason.
    public var message: String { String(cString: cws_status_message(cws_status(status))) }

    init(_ status: cws_status) { self.status = status.rawValue }

    public var description: String { "\(message) (close code \(closeCode.rawValue))" }

    /// A text message or close reason was not valid UTF-8 (1007).
    public static let invalidUTF8 = FramingError(CWS_ERR_INVALID_UTF8)
    /// A message exceeded the maximum message size (1009).
    public static let messageTooBig = FramingError(CWS_ERR_MESSAGE_TOO_BIG)
    /// A message came in more frames than the reader allows (1009).
    public static let tooManyFragments = FramingError(CWS_ERR_TOO_MANY_FRAGMENTS)
    /// An argument was invalid (bad opcode, oversized control payload, invalid close code).
    public static let invalidArgument = FramingError(CWS_ERR_INVALID_ARGUMENT)
}

@inline(__always)
func check(_ status: cws_status) throws(FramingError) {
    if status != CWS_OK { throw FramingError(status) }
}
