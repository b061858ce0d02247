import NIOConcurrencyHelpers
import NIOCore
import WebSocketFraming

/// The frames of one published message, built once for all subscribers. Server frames
/// are not masked, so the same bytes are valid on every connection; NIO buffers are
/// copy-on-write, so handing one to many channels shares its memory.
struct PublishedFrames: @unchecked Sendable {
    /// The message, for subscribers that build their own frames.
    let message: Message
    /// Payload bytes (what `bufferedAmount` counts).
    let size: Int
    /// Whether the message is compressed where the connection compresses (asked for and
    /// at or above the deflate threshold).
    let compressible: Bool
    /// The uncompressed frames.
    var plain: ByteBuffer?
    /// Compressed frames (no context takeover) by window bits.
    var compressed: [Int: ByteBuffer] = [:]

    /// The shared frames for a connection with this encoding, or nil when the connection
    /// must build its own (context takeover, draft-76).
    func frames(for encoding: FanoutEncoding) -> ByteBuffer? {
        switch encoding {
        case .plain: plain
        case .sharedDeflate(let bits): compressible ? compressed[bits] : plain
        case .ownDeflate: compressible ? nil : plain
        case .legacy: nil
        }
    }
}

/// Builds published frames: one uncompressed set and one compressed set per window
/// size in use, with the server's deflate settings and fragment size. Thread-safe:
/// publishers on different threads take turns (a compressor is not shareable mid-message).
final class FanoutEncoder: @unchecked Sendable {
    private let lock = NIOLock()
    private let configuration: ConnectionConfiguration
    private let plainWriter = MessageWriter(role: .server)
    /// One writer per window, resetting after every message (no context takeover).
    private var deflateWriters: [Int: MessageWriter] = [:]
    private let allocator = ByteBufferAllocator()
    private var built = 0

    /// Frame sets built so far (one per message and encoding): what shows the
    /// encode-once property in tests.
    var framesBuilt: Int { lock.withLock { built } }

    init(configuration: ConnectionConfiguration) { self.configuration = configuration }

    /// The frames `plan`'s subscribers need for `message`.
    func encode(_ message: Message, compress: Bool, for plan: FanoutPlan) throws -> PublishedFrames {
        let size: Int
        switch message {
        case .text(let s): size = s.utf8.count
        case .binary(let b): size = b.count
        }
        let compressible = compress && size >= configuration.deflateSettings.threshold
        var out = PublishedFrames(message: message, size: size, compressible: compressible)
        try lock.withLock {
            if plan.needsPlain || !compressible {
                out.plain = try build(message, with: plainWriter, size: size)
            }
            guard compressible else { return }
            for bits in plan.windows {
                out.compressed[bits] = try build(message, with: deflateWriter(bits), size: size)
            }
        }
        return out
    }

    private func build(_ message: Message, with writer: MessageWriter, size: Int) throws -> ByteBuffer {
        built += 1
        var buffer = allocator.buffer(capacity: size + 14)
        try writer.write(message, fragmentSize: configuration.fragmentSize, into: &buffer)
        return buffer
    }

    private func deflateWriter(_ bits: Int) -> MessageWriter {
        if let w = deflateWriters[bits] { return w }
        let w = MessageWriter(
            role: .server, deflate: DeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: bits),
            settings: configuration.deflateSettings)
        deflateWriters[bits] = w
        return w
    }
}
