import CWebSocket

/// What a connection receives: whole data messages, and control frames.
public enum WebSocketEvent: Hashable, Sendable {
    /// A whole text or binary message.
    case message(Message)
    /// A ping (answer it with a pong carrying the same payload).
    case ping([UInt8])
    /// A pong.
    case pong([UInt8])
    /// The peer's close frame: its code (1005 when it had none) and reason.
    case close(code: CloseCode, reason: String)
}

/// Turns received bytes into events: frame parsing and unmasking, permessage-deflate
/// decompression as frames arrive, UTF-8 validation and message assembly, with every
/// limit enforced. Not thread-safe: one reader per connection.
///
/// Memory: the parser (~200 B), the message being assembled (at most
/// `maxMessageSize`), and with compression a zlib inflater (window plus 7 KiB, plus a
/// 64 KiB output buffer) that is owned, or borrowed from a pool per message when the
/// peer does not take context over.
public final class MessageReader {
    private let parser: FrameParser
    private var assembler: MessageAssembler
    private let maxMessageSize: Int
    private let inflateWindowBits: Int
    private let inflateNoContextTakeover: Bool
    private let pool: DeflateCodecPool?
    private var ownInflater: MessageInflater?
    private var borrowed: MessageInflater?
    private var compressed = false
    private var assemblerStarted = false
    private let maxFragments: Int
    /// Frames of the message in progress (its first frame included).
    private var fragments = 0

    /// Creates a reader.
    /// - Parameters:
    ///   - role: which end this is (servers receive masked frames).
    ///   - maxFrameSize: frames above it fail with 1009 before their payload.
    ///   - maxMessageSize: messages above it (on the wire, and once inflated) fail with 1009.
    ///   - maxFragments: messages of more frames than this fail with 1009. Empty and tiny
    ///     continuation frames cost the peer a few bytes each; without a count, a message
    ///     could go on forever without ever reaching `maxMessageSize`.
    ///   - deflate: the agreed permessage-deflate parameters, or nil.
    ///   - pool: shares decompressors between connections of a thread when the peer
    ///     resets its compressor per message; without it the reader owns one.
    public init(
        role: Role, maxFrameSize: Int = 16 << 20, maxMessageSize: Int = 16 << 20, maxFragments: Int = 1 << 16,
        deflate: DeflateParameters? = nil, pool: DeflateCodecPool? = nil
    ) {
        self.maxFragments = maxFragments
        parser = FrameParser(
            role: role, maxFrameSize: maxFrameSize, maxMessageSize: maxMessageSize,
            allowedReservedBits: deflate == nil ? 0 : 0x40)
        assembler = MessageAssembler(maxMessageSize: maxMessageSize, validatesUTF8: false)
        self.maxMessageSize = maxMessageSize
        // The peer compresses what we receive: its window and its takeover setting.
        let peerIsClient = role == .server
        inflateWindowBits = deflate.map { peerIsClient ? $0.clientMaxWindowBits : $0.serverMaxWindowBits } ?? 15
        inflateNoContextTakeover = deflate.map { peerIsClient ? $0.clientNoContextTakeover : $0.serverNoContextTakeover } ?? false
        self.pool = inflateNoContextTakeover ? pool : nil
    }

    deinit {
        if let borrowed { pool?.recycle(borrowed, clean: false) }
    }

    /// Whether the reader sits between messages.
    public var isIdle: Bool { parser.isIdle && assembler.isIdle }

    /// Parses `bytes` (unmasked in place) and calls `body` with every event they
    /// complete. Throws `FramingError` for protocol violations (its `closeCode` is what
    /// to send), or rethrows what `body` throws.
    public func read(_ bytes: UnsafeMutableRawBufferPointer, _ body: (WebSocketEvent) throws -> Void) throws {
        try parser.parse(bytes) { chunk in
            switch chunk.opcode {
            case .ping: try body(.ping(Array(chunk.payload)))
            case .pong: try body(.pong(Array(chunk.payload)))
            case .close:
                let (code, reason) = ClosePayload.decode(chunk.payload)
                try body(.close(code: code, reason: reason))
            default:
                if let message = try dataChunk(chunk) { try body(.message(message)) }
            }
        }
    }

    /// Convenience: reads a copy of `bytes` and returns the events.
    public func read(_ bytes: [UInt8]) throws -> [WebSocketEvent] {
        var copy = bytes
        var events: [WebSocketEvent] = []
        try copy.withUnsafeMutableBytes { try read($0) { events.append($0) } }
        return events
    }

    private func dataChunk(_ chunk: FrameChunk) throws -> Message? {
        if chunk.isFrameStart {
            if chunk.opcode != .continuation {
                compressed = chunk.rsv & 0x40 != 0
                assemblerStarted = false
                fragments = 0
            }
            fragments += 1
            if fragments > maxFragments { throw FramingError.tooManyFragments }
        }
        let end = chunk.isMessageEnd
        guard compressed else {
            // The parser validated this text already.
            defer { assemblerStarted = !end }
            return try assembler.append(
                chunk.payload, messageOpcode: chunk.messageOpcode, isMessageStart: !assemblerStarted,
                isMessageEnd: end, validatesUTF8: false)
        }
        let inflater = try currentInflater()
        var message: Message?
        do {
            try inflater.inflate(chunk.payload, final: end) { out in
                message = try assembler.append(
                    out, messageOpcode: chunk.messageOpcode, isMessageStart: !assemblerStarted,
                    isMessageEnd: false, validatesUTF8: true)
                assemblerStarted = true
            }
            if end {
                message = try assembler.append(
                    UnsafeRawBufferPointer(start: nil, count: 0), messageOpcode: chunk.messageOpcode,
                    isMessageStart: !assemblerStarted, isMessageEnd: true, validatesUTF8: true)
                assemblerStarted = false
                if let borrowed {
                    pool?.recycle(borrowed)
                    self.borrowed = nil
                }
            }
        } catch {
            if let borrowed {
                pool?.recycle(borrowed, clean: false)
                self.borrowed = nil
            }
            throw error
        }
        return message
    }

    private func currentInflater() throws(FramingError) -> MessageInflater {
        if let pool {
            if let borrowed { return borrowed }
            let f = try pool.borrowInflater(windowBits: inflateWindowBits, maxMessageSize: maxMessageSize)
            borrowed = f
            return f
        }
        if let ownInflater { return ownInflater }
        let f = try MessageInflater(
            windowBits: inflateWindowBits, noContextTakeover: inflateNoContextTakeover, maxMessageSize: maxMessageSize)
        ownInflater = f
        return f
    }
}
