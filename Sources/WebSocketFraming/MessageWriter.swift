import CWebSocket

/// How this end compresses what it sends (the window comes from negotiation).
///
/// Measured here with context takeover (chat JSON): level 1 compresses 125-byte
/// messages in 1.9 us to 23% and 1 KiB ones in 8 us to 18%; level 6 takes 3.3 us and
/// 23 us for 18% and 14%. Level 1 is the default because latency matters more than the
/// last bytes. Every message costs zlib about 1 us however short (the sync flush), so
/// below 64 bytes, where it saves under ~40 bytes, messages go out uncompressed.
public struct DeflateSettings: Hashable, Sendable {
    /// zlib level 0-9: 1 is fastest, 9 smallest.
    public var level: Int
    /// zlib memLevel 1-9: memory for the match finder (`1 << (memLevel + 9)` bytes).
    public var memLevel: Int
    /// Messages shorter than this are sent uncompressed: deflate's fixed cost outweighs
    /// the bytes saved on tiny payloads.
    public var threshold: Int

    /// Creates settings.
    public init(level: Int = 1, memLevel: Int = 8, threshold: Int = 64) {
        self.level = level
        self.memLevel = memLevel
        self.threshold = threshold
    }
}

/// Turns messages into frames: compression (permessage-deflate, above a size
/// threshold), masking for clients, fragmentation. Not thread-safe: one writer per
/// connection.
public final class MessageWriter {
    private let frames: FrameWriter
    private let settings: DeflateSettings
    private let deflateWindowBits: Int?
    private let deflateNoContextTakeover: Bool
    private let pool: DeflateCodecPool?
    private var ownDeflater: MessageDeflater?

    /// Creates a writer.
    /// - Parameters:
    ///   - role: clients mask their frames.
    ///   - deflate: the agreed permessage-deflate parameters, or nil. When our side's
    ///     window is 8 bits, which zlib cannot produce, messages go out uncompressed
    ///     (RFC 7692 lets any message be sent uncompressed).
    ///   - settings: level, memLevel and threshold of our compressor.
    ///   - pool: shares compressors between connections of a thread when we reset per
    ///     message (no context takeover); without it the writer owns one.
    public init(role: Role, deflate: DeflateParameters? = nil, settings: DeflateSettings = .init(), pool: DeflateCodecPool? = nil) {
        frames = FrameWriter(role: role)
        self.settings = settings
        let weAreServer = role == .server
        let bits = deflate.map { weAreServer ? $0.serverMaxWindowBits : $0.clientMaxWindowBits }
        deflateWindowBits = bits.flatMap { $0 >= 9 ? $0 : nil }
        deflateNoContextTakeover = deflate.map { weAreServer ? $0.serverNoContextTakeover : $0.clientNoContextTakeover } ?? false
        self.pool = deflateNoContextTakeover ? pool : nil
    }

    /// Whether messages at or above the threshold are compressed.
    public var compresses: Bool { deflateWindowBits != nil }

    /// Appends the frames of a message to `output`: one frame, or fragments of at most
    /// `fragmentSize` payload bytes each.
    public func write(_ message: Message, fragmentSize: Int = .max, into output: inout some FrameSink) throws(FramingError) {
        switch message {
        case .text(var s):
            var failure: FramingError?
            s.withUTF8 { u in
                do throws(FramingError) {
                    try write(opcode: .text, payload: UnsafeRawBufferPointer(u), fragmentSize: fragmentSize, into: &output)
                } catch { failure = error }
            }
            if let failure { throw failure }
        case .binary(let b):
            var failure: FramingError?
            b.withUnsafeBytes { p in
                do throws(FramingError) { try write(opcode: .binary, payload: p, fragmentSize: fragmentSize, into: &output) }
                catch { failure = error }
            }
            if let failure { throw failure }
        }
    }

    /// Appends the frames of a text or binary message with the given payload.
    public func write(opcode: Opcode, payload: UnsafeRawBufferPointer, fragmentSize: Int = .max, into output: inout some FrameSink) throws(FramingError) {
        precondition(opcode == .text || opcode == .binary, "messages are text or binary")
        precondition(fragmentSize > 0, "fragments need at least one byte")
        guard let bits = deflateWindowBits, payload.count >= settings.threshold else {
            return try fragments(opcode: opcode, rsv: 0, payload: payload, fragmentSize: fragmentSize, into: &output)
        }
        let deflater = try borrowDeflater(bits)
        defer { giveBack(deflater) }
        do {
            try deflater.compress(payload) { compressed in
                try fragments(opcode: opcode, rsv: 0x40, payload: compressed, fragmentSize: fragmentSize, into: &output)
            }
        } catch let error as FramingError {
            throw error
        } catch {
            preconditionFailure("only framing errors are thrown here: \(error)")
        }
    }

    /// Appends a ping, pong or close frame (payload at most 125 bytes; never compressed).
    public func writeControl(_ opcode: Opcode, payload: some Collection<UInt8> = [], into output: inout some FrameSink) throws(FramingError) {
        precondition(opcode.isControl, "control opcodes only")
        try frames.write(opcode: opcode, payload: payload, into: &output)
    }

    /// Appends a close frame with a code and reason.
    public func writeClose(code: CloseCode, reason: String = "", into output: inout some FrameSink) throws(FramingError) {
        try frames.write(opcode: .close, payload: ClosePayload.encode(code: code, reason: reason), into: &output)
    }

    private func fragments(opcode: Opcode, rsv: UInt8, payload: UnsafeRawBufferPointer, fragmentSize: Int, into output: inout some FrameSink) throws(FramingError) {
        var offset = 0
        repeat {
            let n = min(fragmentSize, payload.count - offset)
            let last = offset + n == payload.count
            let piece = UnsafeRawBufferPointer(rebasing: payload[offset..<offset + n])
            try frames.write(
                opcode: offset == 0 ? opcode : .continuation, fin: last, rsv: offset == 0 ? rsv : 0,
                payload: piece, into: &output)
            offset += n
        } while offset < payload.count
    }

    private func borrowDeflater(_ bits: Int) throws(FramingError) -> MessageDeflater {
        if let pool { return try pool.borrowDeflater(level: settings.level, memLevel: settings.memLevel, windowBits: bits) }
        if let ownDeflater { return ownDeflater }
        let d = try MessageDeflater(
            level: settings.level, memLevel: settings.memLevel, windowBits: bits, noContextTakeover: deflateNoContextTakeover)
        ownDeflater = d
        return d
    }

    private func giveBack(_ d: MessageDeflater) {
        if let pool { pool.recycle(d) }
    }
}
