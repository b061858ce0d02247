import CWebSocket

/// Compresses messages for permessage-deflate (RFC 7692) over the engine's zlib
/// compressor. Not thread-safe: one user at a time.
///
/// zlib memory, measured: about `(1 << (windowBits + 2)) + (1 << (memLevel + 9))` bytes
/// plus 6 KiB; 262 KiB at the zlib defaults (15, 8), 34 KiB at (12, 5).
public final class MessageDeflater {
    private let state: OpaquePointer
    private var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// Output space kept between messages; a larger one is freed after use.
    private static let keptScratch = 256 << 10
    /// The settings this compressor was made with.
    public let level: Int, memLevel: Int, windowBits: Int, noContextTakeover: Bool

    /// Creates a compressor. `windowBits` 9...15 (zlib cannot write raw deflate with an
    /// 8-bit window); throws `FramingError.invalidArgument` for settings out of range.
    public init(level: Int = 1, memLevel: Int = 8, windowBits: Int = 15, noContextTakeover: Bool = false) throws(FramingError) {
        var d: OpaquePointer?
        try check(cws_deflater_new(&d, Int32(clamping: level), Int32(clamping: memLevel), Int32(clamping: windowBits), noContextTakeover))
        state = d!
        self.level = level
        self.memLevel = memLevel
        self.windowBits = windowBits
        self.noContextTakeover = noContextTakeover
    }

    deinit {
        cws_deflater_free(state)
        scratch.deallocate()
    }

    /// Starts a new deflate stream, forgetting the window (both ends must agree: only
    /// for a connection's start or tests).
    public func reset() throws(FramingError) { try check(cws_deflater_reset(state)) }

    /// Bytes held by zlib for this compressor, measured through its allocator (the
    /// output buffer, kept up to 256 KiB between messages, comes on top).
    public var zlibMemory: Int { cws_deflater_memory(state) }

    /// Compresses the next part of a message (a whole message is one part with
    /// `final: true`) and calls `body` with the compressed bytes, which are valid only
    /// during the call.
    public func compress<R>(_ part: UnsafeRawBufferPointer, final: Bool = true, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let bound = cws_deflate_bound(state, part.count)
        if scratch.count < bound {
            scratch.deallocate()
            scratch = .allocate(byteCount: max(bound, 4096), alignment: 16)
        }
        defer {
            if scratch.count > Self.keptScratch {
                scratch.deallocate()
                scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            }
        }
        var written = 0
        try check(
            cws_deflate(
                state, part.baseAddress?.assumingMemoryBound(to: UInt8.self), part.count, final,
                scratch.baseAddress!.assumingMemoryBound(to: UInt8.self), scratch.count, &written))
        return try body(UnsafeRawBufferPointer(rebasing: scratch[..<written]))
    }

    /// Appends the compressed form of the next part of a message to `output`.
    public func compress(_ part: UnsafeRawBufferPointer, final: Bool = true, into output: inout [UInt8]) throws {
        try compress(part, final: final) { output.append(contentsOf: $0) }
    }

    /// The compressed form of a whole message.
    public func compress(_ message: some Collection<UInt8>) throws -> [UInt8] {
        try Array(message).withUnsafeBytes { p in try compress(p) { Array($0) } }
    }
}

/// Decompresses permessage-deflate messages as their frames arrive, with a hard limit
/// on each message's inflated size. Not thread-safe: one user at a time.
///
/// Memory: zlib's window (`1 << windowBits` bytes plus about 7 KiB) and a 64 KiB output
/// buffer allocated at the first message; compressed input is never buffered.
public final class MessageInflater {
    private let state: OpaquePointer
    private var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// The peer's compression window this decompressor accepts.
    public let windowBits: Int
    /// Whether the window is reset after every message.
    public let noContextTakeover: Bool
    /// Output chunk size handed to the callback. zlib copies every call's output into
    /// its window, so chunks as large as the window keep that copy off the hot path
    /// (16 KiB chunks cost 15% at 64 KiB messages). Allocated at the first message.
    public static let chunkSize = 64 << 10

    /// Creates a decompressor for a peer compressing with `windowBits` (8...15).
    public init(windowBits: Int = 15, noContextTakeover: Bool = false, maxMessageSize: Int = 16 << 20) throws(FramingError) {
        var f: OpaquePointer?
        try check(cws_inflater_new(&f, Int32(clamping: windowBits), noContextTakeover, UInt64(max(0, maxMessageSize))))
        state = f!
        self.windowBits = windowBits
        self.noContextTakeover = noContextTakeover
    }

    deinit {
        cws_inflater_free(state)
        scratch.deallocate()
    }

    /// Starts a new deflate stream, forgetting the window, any message in progress and
    /// a previous error.
    public func reset() throws(FramingError) { try check(cws_inflater_reset(state)) }

    /// Bytes held by zlib for this decompressor, measured through its allocator (the
    /// window is allocated at the first message; the 64 KiB output buffer comes on top).
    public var zlibMemory: Int { cws_inflater_memory(state) }

    /// The per-message limit on inflated bytes (takes effect from the next message).
    public func setMaxMessageSize(_ size: Int) { cws_inflater_set_max_message_size(state, UInt64(max(0, size))) }

    /// Inflates the next part of a compressed message (one frame's payload, or a piece
    /// of it) and calls `body` with each chunk of output. `final` marks the message's
    /// last part. Throws `FramingError` with 1007 for corrupt data and 1009 past the
    /// size limit (after at most the limit plus one byte of output), or what `body` throws.
    public func inflate(_ part: UnsafeRawBufferPointer, final: Bool, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        let base = part.baseAddress?.assumingMemoryBound(to: UInt8.self)
        if scratch.baseAddress == nil { scratch = .allocate(byteCount: Self.chunkSize, alignment: 16) }
        let out = scratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
        while true {
            var consumed = 0, written = 0
            var done = false
            let status = cws_inflate(
                state, base.map { $0 + offset }, part.count - offset, final, out, scratch.count,
                &consumed, &written, &done)
            offset += consumed
            if written > 0 { try body(UnsafeRawBufferPointer(start: out, count: written)) }
            try check(status)
            if final ? done : (offset == part.count && written < scratch.count) { return }
            // Every call either uses input or produces output until the part is through.
            if consumed == 0 && written == 0 { throw FramingError(CWS_ERR_ZLIB) }
        }
    }

    /// Inflates a whole message at once (convenience for tests and small payloads).
    public func inflate(_ message: some Collection<UInt8>) throws -> [UInt8] {
        var out: [UInt8] = []
        let bytes = Array(message)
        try bytes.withUnsafeBytes { p in try inflate(p, final: true) { out.append(contentsOf: $0) } }
        return out
    }
}
