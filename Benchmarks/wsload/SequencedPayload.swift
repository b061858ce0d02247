import SeededRandom
import WebSockets

/// The messages of the ordering scenario: message `seq` of connection `connection` is a
/// pure function of the two, so the receiver rebuilds what it expects instead of keeping
/// copies. Even numbers are text (with multi-byte UTF-8), odd ones binary; most are small,
/// some span several fragments of `fragmentSize`.
enum SequencedPayload {
    /// UTF-8 pieces text messages are made of (1 to 4 bytes each).
    private static let pieces: [[UInt8]] = ["a", "b", "c", "d", "e", "f", " ", "é", "€", "😀", "{\"k\":1}"].map { Array($0.utf8) }

    static func message(connection: Int, seq: Int, fragmentSize: Int) -> Message {
        var rng = SeededRandom(seed: UInt64(connection) << 32 | UInt64(seq))
        let roll = rng.next() % 100
        let size: Int
        if roll < 80 {
            size = Int(rng.next() % 1024)
        } else if roll < 95 {
            size = 1024 + Int(rng.next() % UInt64(fragmentSize))
        } else {
            size = fragmentSize + Int(rng.next() % UInt64(4 * fragmentSize))  // several fragments
        }
        // The header makes a wrong message name its sequence number in the report.
        let header = Array("c\(connection) s\(seq) ".utf8)
        if seq % 2 == 0 {
            var bytes = header
            bytes.reserveCapacity(header.count + size + 8)
            while bytes.count < header.count + size { bytes += pieces[Int(rng.next() % UInt64(pieces.count))] }
            return .text(String(decoding: bytes, as: UTF8.self))
        }
        // Binary: random bytes in runs, so deflate has something to find.
        var bytes = header
        bytes.reserveCapacity(header.count + size)
        while bytes.count < header.count + size {
            let run = 1 + Int(rng.next() % 16)
            let byte = UInt8(truncatingIfNeeded: rng.next())
            bytes += repeatElement(byte, count: min(run, header.count + size - bytes.count))
        }
        return .binary(bytes)
    }

    /// The sequence number a received message claims (from its header), or nil.
    static func claimedSeq(_ message: Message) -> Int? {
        let prefix: [UInt8]
        switch message {
        case .text(let s): prefix = Array(s.utf8.prefix(32))
        case .binary(let b): prefix = Array(b.prefix(32))
        }
        let words = String(decoding: prefix, as: UTF8.self).split(separator: " ")
        guard words.count > 1, words[1].hasPrefix("s") else { return nil }
        return Int(words[1].dropFirst())
    }
}
