/// Compressors and decompressors shared by the connections of one thread (or event
/// loop), for directions without context takeover: a connection borrows one for a
/// message and gives it back, so idle connections hold no zlib state (uWebSockets calls
/// this a shared compressor). Not thread-safe: one pool per thread.
public final class DeflateCodecPool {
    private var deflaters: [MessageDeflater] = []
    private var inflaters: [MessageInflater] = []
    /// Idle codecs kept for reuse beyond this many are freed.
    public let maxIdle: Int

    /// Creates an empty pool.
    public init(maxIdle: Int = 4) { self.maxIdle = maxIdle }

    /// Idle compressors and decompressors held now.
    public var idleCount: (deflaters: Int, inflaters: Int) { (deflaters.count, inflaters.count) }

    /// A compressor with these settings that resets after every message.
    public func borrowDeflater(level: Int, memLevel: Int, windowBits: Int) throws(FramingError) -> MessageDeflater {
        if let i = deflaters.lastIndex(where: { $0.level == level && $0.memLevel == memLevel && $0.windowBits == windowBits }) {
            return deflaters.remove(at: i)
        }
        return try MessageDeflater(level: level, memLevel: memLevel, windowBits: windowBits, noContextTakeover: true)
    }

    /// Returns a compressor after a whole message (it has reset itself).
    public func recycle(_ d: MessageDeflater) {
        precondition(d.noContextTakeover, "only compressors without context takeover can be shared")
        if deflaters.count < maxIdle { deflaters.append(d) }
    }

    /// A decompressor for this window that resets after every message.
    public func borrowInflater(windowBits: Int, maxMessageSize: Int) throws(FramingError) -> MessageInflater {
        if let i = inflaters.lastIndex(where: { $0.windowBits == windowBits }) {
            let f = inflaters.remove(at: i)
            f.setMaxMessageSize(maxMessageSize)
            return f
        }
        return try MessageInflater(windowBits: windowBits, noContextTakeover: true, maxMessageSize: maxMessageSize)
    }

    /// Returns a decompressor after a whole message (or drops it after an error, when
    /// its state is unknown).
    public func recycle(_ f: MessageInflater, clean: Bool = true) {
        precondition(f.noContextTakeover, "only decompressors without context takeover can be shared")
        if clean && inflaters.count < maxIdle { inflaters.append(f) }
    }
}
