import CWebSocket

/// Writes frames over the C engine. A client writer masks every frame with a fresh
/// key from OpenSSL's random generator, in the same pass that copies the payload.
/// Not thread-safe: one writer per connection.
public final class FrameWriter {
    private let state: UnsafeMutablePointer<cws_writer>

    /// The role this writer serves.
    public let role: Role

    /// Creates a writer for `role`.
    public init(role: Role) {
        self.role = role
        state = .allocate(capacity: 1)
        cws_writer_init(state, role.cValue)
    }

    deinit { state.deallocate() }

    /// The largest header: 2 bytes, an 8-byte length and a 4-byte key.
    public static let maxHeaderSize = Int(CWS_MAX_HEADER_SIZE)

    /// Bytes on the wire for a frame with a payload of `payloadLength` in this role.
    public func frameSize(payloadLength: Int) -> Int {
        cws_header_size(UInt64(payloadLength), role == .client) + payloadLength
    }

    /// Writes one frame (header and payload, masked for clients) into `output`, which
    /// must hold `frameSize(payloadLength:)` bytes. Returns the bytes written.
    /// Throws `FramingError.invalidArgument` for a fragmented or over-long control frame.
    public func write(
        opcode: Opcode, fin: Bool = true, rsv: UInt8 = 0, payload: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws(FramingError) -> Int {
        var written = 0
        let flags = (fin ? UInt8(CWS_FIN) : 0) | (rsv & 0x70)
        try check(
            cws_write_frame(
                state, output.baseAddress?.assumingMemoryBound(to: UInt8.self), output.count,
                opcode.rawValue, flags, payload.baseAddress?.assumingMemoryBound(to: UInt8.self),
                payload.count, &written))
        return written
    }

    /// Appends one frame to `sink` (a byte array, a NIO buffer).
    public func write(
        opcode: Opcode, fin: Bool = true, rsv: UInt8 = 0, payload: UnsafeRawBufferPointer,
        into sink: inout some FrameSink
    ) throws(FramingError) {
        try sink.appendFrame(capacity: frameSize(payloadLength: payload.count)) { (out) throws(FramingError) in
            try self.write(opcode: opcode, fin: fin, rsv: rsv, payload: payload, into: out)
        }
    }

    /// Appends one frame to `sink`, with the payload from any byte collection.
    public func write(
        opcode: Opcode, fin: Bool = true, rsv: UInt8 = 0, payload: some Collection<UInt8>,
        into sink: inout some FrameSink
    ) throws(FramingError) {
        if let r = payload.withContiguousStorageIfAvailable({ p -> FramingError? in
            do throws(FramingError) {
                try write(opcode: opcode, fin: fin, rsv: rsv, payload: UnsafeRawBufferPointer(p), into: &sink)
                return nil
            } catch { return error }
        }) {
            if let r { throw r }
            return
        }
        try write(opcode: opcode, fin: fin, rsv: rsv, payload: Array(payload), into: &sink)
    }

    /// Returns one frame as bytes.
    public func frame(
        opcode: Opcode, fin: Bool = true, rsv: UInt8 = 0, payload: some Collection<UInt8>
    ) throws(FramingError) -> [UInt8] {
        var out: [UInt8] = []
        try write(opcode: opcode, fin: fin, rsv: rsv, payload: payload, into: &out)
        return out
    }

    /// Writes a header alone into `output` (at least `maxHeaderSize` bytes), for callers
    /// that send the payload from its own buffer. Returns the header length and, for a
    /// client, the key the payload must be masked with (see `Masking`).
    public func writeHeader(
        opcode: Opcode, fin: Bool = true, rsv: UInt8 = 0, payloadLength: Int,
        into output: UnsafeMutableRawBufferPointer
    ) throws(FramingError) -> (length: Int, maskKey: MaskKey?) {
        precondition(output.count >= Self.maxHeaderSize, "header buffer too small")
        var key: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        let flags = (fin ? UInt8(CWS_FIN) : 0) | (rsv & 0x70)
        let n = withUnsafeMutableBytes(of: &key) { k in
            cws_write_header(
                state, output.baseAddress!.assumingMemoryBound(to: UInt8.self), opcode.rawValue,
                flags, UInt64(payloadLength), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        if n == 0 { throw .invalidArgument }
        return (n, role == .client ? MaskKey(key.0, key.1, key.2, key.3) : nil)
    }
}

/// Builds close-frame payloads.
public enum ClosePayload {
    /// The payload of a close frame: the 2-byte code, then the UTF-8 reason (at most
    /// 123 bytes). Throws `FramingError.invalidArgument` for a code not allowed on the
    /// wire or a reason that is too long.
    public static func encode(code: CloseCode, reason: String = "") throws(FramingError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(CWS_MAX_CONTROL_PAYLOAD))
        var written = 0
        let utf8 = Array(reason.utf8)
        let status = out.withUnsafeMutableBufferPointer { o in
            utf8.withUnsafeBufferPointer { r in
                cws_write_close_payload(o.baseAddress, code.rawValue, r.baseAddress, r.count, &written)
            }
        }
        try check(status)
        out.removeLast(out.count - written)
        return out
    }

    /// Splits a received close payload (already validated by the parser) into its code
    /// and reason. An empty payload gives 1005 (no status received) and no reason.
    public static func decode(_ payload: some Collection<UInt8>) -> (code: CloseCode, reason: String) {
        let bytes = Array(payload)
        guard bytes.count >= 2 else { return (.noStatusReceived, "") }
        let code = CloseCode(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
        return (code, String(decoding: bytes[2...], as: UTF8.self))
    }
}
