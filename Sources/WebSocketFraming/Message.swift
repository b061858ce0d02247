/// A whole WebSocket data message.
public enum Message: Hashable, Sendable {
    /// A text message (valid UTF-8).
    case text(String)
    /// A binary message.
    case binary([UInt8])

    /// The opcode of the message's first frame.
    public var opcode: Opcode {
        switch self {
        case .text: .text
        case .binary: .binary
        }
    }
}
