import CWebSocket

/// A 4-byte masking key (RFC 6455 §5.3).
public struct MaskKey: Hashable, Sendable {
    /// The key bytes in wire order.
    public var bytes: (UInt8, UInt8, UInt8, UInt8)

    /// Creates a key from its four bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) { bytes = (b0, b1, b2, b3) }

    public static func == (a: MaskKey, b: MaskKey) -> Bool {
        a.bytes.0 == b.bytes.0 && a.bytes.1 == b.bytes.1 && a.bytes.2 == b.bytes.2
            && a.bytes.3 == b.bytes.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.0); hasher.combine(bytes.1); hasher.combine(bytes.2); hasher.combine(bytes.3)
    }

    /// XORs `buffer` in place with this key, starting at key byte `offset`; returns the
    /// offset for the byte after the buffer, so payloads can be masked in pieces. Runs
    /// the engine's SIMD kernel for this CPU.
    @discardableResult
    public func mask(_ buffer: UnsafeMutableRawBufferPointer, offset: Int = 0) -> Int {
        guard let base = buffer.baseAddress else { return offset & 3 }
        var key = bytes
        return withUnsafeBytes(of: &key) { k in
            cws_mask(
                base.assumingMemoryBound(to: UInt8.self), buffer.count,
                k.baseAddress!.assumingMemoryBound(to: UInt8.self), offset)
        }
    }

    /// Masks an array in place.
    @discardableResult
    public func mask(_ bytes: inout [UInt8], offset: Int = 0) -> Int {
        bytes.withUnsafeMutableBytes { mask($0, offset: offset) }
    }
}
