import CWebSocket

/// A WebSocket frame opcode (RFC 6455 §5.2).
public enum Opcode: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// Continues a fragmented message.
    case continuation = 0x0
    /// First frame of a text message.
    case text = 0x1
    /// First frame of a binary message.
    case binary = 0x2
    /// Close frame.
    case close = 0x8
    /// Ping frame.
    case ping = 0x9
    /// Pong frame.
    case pong = 0xA

    /// Whether this is a control opcode (close, ping, pong).
    public var isControl: Bool { rawValue & 0x08 != 0 }

    /// Whether this opcode carries message data (continuation, text, binary).
    public var isData: Bool { !isControl }

    public var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        }
    }
}
