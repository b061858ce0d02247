/// A whole WebSocket frame, with its payload unmasked.
public struct Frame: Hashable, Sendable {
    /// Whether this is the last frame of its message.
    public var fin: Bool
    /// The RSV1-3 bits as they sit in the first header byte (`0x40`, `0x20`, `0x10`).
    public var rsv: UInt8
    /// The frame's opcode.
    public var opcode: Opcode
    /// The payload, unmasked.
    public var payload: [UInt8]

    /// Creates a frame.
    public init(fin: Bool = true, rsv: UInt8 = 0, opcode: Opcode, payload: [UInt8] = []) {
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload
    }

    /// Whether RSV1 is set (permessage-deflate's "compressed" bit).
    public var rsv1: Bool { rsv & 0x40 != 0 }
}

/// A piece of a frame as the parser delivers it: data frames in chunks as bytes arrive,
/// control frames whole. The payload is valid only inside the parser's callback.
public struct FrameChunk {
    /// The frame's opcode.
    public let opcode: Opcode
    /// Text or binary for data frames (continuations included); the opcode for control frames.
    public let messageOpcode: Opcode
    /// The frame's FIN bit.
    public let fin: Bool
    /// The frame's RSV bits (first byte & 0x70).
    public let rsv: UInt8
    /// This is the frame's first chunk.
    public let isFrameStart: Bool
    /// This is the frame's last chunk.
    public let isFrameEnd: Bool
    /// The whole payload length of the frame.
    public let frameLength: UInt64
    /// This chunk's payload bytes, unmasked. Valid only during the callback.
    public let payload: UnsafeRawBufferPointer

    /// The last chunk of the last frame of a message (or of a control frame).
    public var isMessageEnd: Bool { isFrameEnd && fin }
}
