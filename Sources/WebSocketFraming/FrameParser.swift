import CWebSocket

/// Incremental frame parser over the C engine: feed it bytes as they arrive and get
/// frame chunks back. Validates every RFC 6455 rule as soon as the deciding bytes
/// arrive and unmasks payloads in place. Not thread-safe: one parser per connection.
///
/// Memory: the engine state (about 200 bytes) plus a 64-event array; payloads are
/// never buffered, except control frames split across reads (at most 125 bytes).
public final class FrameParser {
    private let state: UnsafeMutablePointer<cws_parser>
    private let events: UnsafeMutablePointer<cws_event>
    private static let eventCapacity = 64

    /// Creates a parser.
    /// - Parameters:
    ///   - role: `.server` expects masked frames, `.client` unmasked ones.
    ///   - maxFrameSize: larger frames fail with 1009 before their payload is read
    ///     (default 16 MiB).
    ///   - maxMessageSize: larger messages (sum of fragments, on the wire) fail with
    ///     1009 (default 16 MiB).
    ///   - allowedReservedBits: RSV bits an extension negotiated (`0x40` for
    ///     permessage-deflate); others fail with 1002.
    ///   - validatesUTF8: validate uncompressed text messages as they arrive (1007).
    public init(
        role: Role, maxFrameSize: Int = 16 << 20, maxMessageSize: Int = 16 << 20,
        allowedReservedBits: UInt8 = 0, validatesUTF8: Bool = true
    ) {
        state = .allocate(capacity: 1)
        cws_parser_init(state, role.cValue)
        state.pointee.max_frame_size = UInt64(max(0, maxFrameSize))
        state.pointee.max_message_size = UInt64(max(0, maxMessageSize))
        state.pointee.allowed_rsv = allowedReservedBits & 0x70
        state.pointee.validate_utf8 = validatesUTF8 ? 1 : 0
        events = .allocate(capacity: Self.eventCapacity)
    }

    deinit {
        state.deallocate()
        events.deallocate()
    }

    /// RSV bits an extension claimed; may change after the handshake negotiated one.
    public var allowedReservedBits: UInt8 {
        get { state.pointee.allowed_rsv }
        set { state.pointee.allowed_rsv = newValue & 0x70 }
    }

    /// Whether the parser sits between messages.
    public var isIdle: Bool { cws_parser_idle(state) }

    /// Parses all of `bytes`, unmasking payloads in place, and calls `body` for every
    /// chunk in order. Throws the first protocol violation as a `FramingError` (after
    /// delivering the chunks before it; the parser then stays failed), or rethrows what
    /// `body` throws.
    public func parse(
        _ bytes: UnsafeMutableRawBufferPointer, _ body: (FrameChunk) throws -> Void
    ) throws {
        var offset = 0
        let total = bytes.count
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        repeat {
            var consumed = 0
            var count = 0
            let status = cws_parse(
                state, base.map { $0 + offset }, total - offset, &consumed, events,
                Self.eventCapacity, &count)
            offset += consumed
            for i in 0..<count {
                try body(FrameChunk(events[i]))
            }
            try check(status)
            if consumed == 0 && count == 0 { break }
        } while offset < total
    }
}

extension FrameChunk {
    init(_ e: cws_event) {
        let flags = Int(e.flags)
        self.init(
            opcode: Opcode(rawValue: e.opcode) ?? .binary,
            messageOpcode: Opcode(rawValue: e.message_opcode) ?? .binary,
            fin: flags & CWS_EVENT_FIN != 0,
            rsv: e.rsv,
            isFrameStart: flags & CWS_EVENT_START != 0,
            isFrameEnd: flags & CWS_EVENT_END != 0,
            frameLength: e.frame_length,
            payload: UnsafeRawBufferPointer(start: e.data, count: e.length))
    }
}
