import CWebSocket

/// Joins data frames (or their chunks) into whole messages, validating text as UTF-8
/// while it streams in and enforcing a maximum message size. Control frames are not its
/// business: hand it data chunks only.
///
/// Memory: the message being assembled, at most `maxMessageSize` bytes.
public struct MessageAssembler: Sendable {
    /// Messages larger than this fail with 1009 as soon as the limit is passed.
    public let maxMessageSize: Int
    /// Whether text is validated here (turn off when the parser already validated it).
    public let validatesUTF8: Bool

    private var opcode: Opcode?
    private var buffer: [UInt8] = []
    private var utf8 = cws_utf8()

    /// Creates an assembler.
    public init(maxMessageSize: Int = 16 << 20, validatesUTF8: Bool = true) {
        self.maxMessageSize = maxMessageSize
        self.validatesUTF8 = validatesUTF8
    }

    /// Whether no message is in progress.
    public var isIdle: Bool { opcode == nil }

    /// Adds a data chunk from `FrameParser`; returns the message it completes, if any.
    public mutating func append(_ chunk: FrameChunk) throws(FramingError) -> Message? {
        precondition(chunk.opcode.isData, "MessageAssembler takes data frames only")
        let starts = chunk.isFrameStart && chunk.opcode != .continuation
        return try append(
            chunk.payload, messageOpcode: chunk.messageOpcode, isMessageStart: starts,
            isMessageEnd: chunk.isMessageEnd)
    }

    /// Adds message bytes (for example inflated ones); returns the message they
    /// complete, if any. `validatesUTF8` overrides the assembler's setting for this
    /// message (for readers that validate some messages earlier and others here).
    public mutating func append(
        _ bytes: UnsafeRawBufferPointer, messageOpcode: Opcode, isMessageStart: Bool,
        isMessageEnd: Bool, validatesUTF8: Bool? = nil
    ) throws(FramingError) -> Message? {
        let validates = validatesUTF8 ?? self.validatesUTF8
        if isMessageStart {
            opcode = messageOpcode
            buffer.removeAll(keepingCapacity: true)
            cws_utf8_init(&utf8)
        }
        guard let opcode else { throw FramingError(CWS_ERR_UNEXPECTED_CONTINUATION) }
        if bytes.count > maxMessageSize - buffer.count { throw .messageTooBig }
        if opcode == .text && validates && bytes.count > 0 {
            let ok = cws_utf8_feed(&utf8, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count, nil)
            if !ok { throw .invalidUTF8 }
        }
        buffer.append(contentsOf: bytes)
        guard isMessageEnd else { return nil }
        self.opcode = nil
        // Hand the bytes over instead of copying them; the next message starts afresh.
        let bytes = buffer
        buffer = []
        if opcode == .text {
            if validates && !cws_utf8_finish(&utf8) { throw .invalidUTF8 }
            return .text(String(decoding: bytes, as: UTF8.self))
        }
        return .binary(bytes)
    }
}
