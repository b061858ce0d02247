import SeededRandom
import CZlib
import WebSocketFraming

/// The compression settings both impls use (the library's defaults).
let benchSettings = DeflateSettings()

/// A stream of `count` distinct messages of `size` bytes: chat-like JSON or binary-ish
/// records (structured numbers with noise), generated deterministically.
func messageStream(_ kind: String, size: Int, count: Int) -> [[UInt8]] {
    var rng = SeededRandom(seed: kind == "chat" ? 11 : 12)
    let users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    let words = ["hello", "the", "deploy", "is", "green", "on", "staging", "lunch", "?", "ok", "thanks", "🚀", "ship", "it"]
    return (0..<count).map { i in
        var out: [UInt8] = []
        out.reserveCapacity(size + 64)
        if kind == "chat" {
            while out.count < size {
                let n = Int.random(in: 3...12, using: &rng)
                let text = (0..<n).map { _ in words[Int.random(in: 0..<words.count, using: &rng)] }.joined(separator: " ")
                let user = users[Int.random(in: 0..<users.count, using: &rng)]
                out += Array("{\"type\":\"message\",\"id\":\(i * 1000 + out.count),\"user\":\"\(user)\",\"room\":\"general\",\"text\":\"\(text)\",\"ts\":\(1_700_000_000 + i)}".utf8)
            }
        } else {
            var value = UInt32(i)
            while out.count < size {
                value = value &+ UInt32.random(in: 0...1000, using: &rng)
                let noise = rng.bytes(4)
                withUnsafeBytes(of: value.littleEndian) { out += $0 }
                out += [UInt8(i & 0xFF), 0, 0, 1] + noise
            }
        }
        return Array(out.prefix(size))
    }
}

/// zlib driven directly the same way (raw deflate, sync flush per message, tail
/// stripped/appended): the reference for our overhead.
final class ZlibPair {
    var d = z_stream()
    var f = z_stream()
    init(windowBits: Int32) {
        precondition(deflateInit2_(&d, Int32(benchSettings.level), Z_DEFLATED, -windowBits, Int32(benchSettings.memLevel),
                                   Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        precondition(inflateInit2_(&f, -windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    }
    deinit {
        deflateEnd(&d)
        inflateEnd(&f)
    }

    /// Compresses one message into out; returns its length without the sync tail.
    func compress(_ m: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        d.next_in = UnsafeMutablePointer(mutating: m.baseAddress!.assumingMemoryBound(to: UInt8.self))
        d.avail_in = UInt32(m.count)
        d.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        d.avail_out = UInt32(out.count)
        precondition(deflate(&d, Z_SYNC_FLUSH) == Z_OK)
        let n = out.count - Int(d.avail_out)
        return n >= 4 && out[n - 1] == 0xFF && out[n - 2] == 0xFF ? n - 4 : n
    }

    /// Inflates one message (appending the tail); returns the output length.
    func inflateMessage(_ m: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        var tail: [UInt8] = [0, 0, 0xFF, 0xFF]
        f.next_out = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        f.avail_out = UInt32(out.count)
        f.next_in = UnsafeMutablePointer(mutating: m.baseAddress!.assumingMemoryBound(to: UInt8.self))
        f.avail_in = UInt32(m.count)
        precondition(inflate(&f, Z_SYNC_FLUSH) == Z_OK)
        tail.withUnsafeMutableBufferPointer { t in
            f.next_in = t.baseAddress
            f.avail_in = 4
            let rc = inflate(&f, Z_SYNC_FLUSH)
            precondition(rc == Z_OK || rc == Z_BUF_ERROR)
        }
        return out.count - Int(f.avail_out)
    }
}

/// `deflate` and `inflate`: a stream of messages with context takeover; times are per
/// message, and `ratio` is compressed bytes over original bytes.
func deflateCases() -> [Case] {
    var cases: [Case] = []
    for kind in ["chat", "binary"] {
        for size in [125, 1 << 10, 64 << 10] {
            let count = max(4, min(256, (1 << 20) / size))
            let messages = messageStream(kind, size: size, count: count).map { Bytes($0) }
            let total = size * count
            let engine = try! MessageDeflater(level: benchSettings.level, memLevel: benchSettings.memLevel, windowBits: 15)
            let zlib = ZlibPair(windowBits: 15)
            let out = Bytes(count: size * 2 + 1024)
            // The compressed stream, for the ratio and as the inflate input.
            var compressed: [[UInt8]] = []
            for m in messages { compressed.append(try! engine.compress(UnsafeRawBufferPointer(m.buffer))) }
            let ratio = Double(compressed.reduce(0) { $0 + $1.count }) / Double(total)
            let extra = ["ratio": ratio]
            cases.append(Case(
                group: "deflate", name: "\(kind)-\(sizeName(size))", bytesPerOp: total, unitsPerOp: count,
                impls: [
                    Impl(name: "engine", prepare: { try! engine.reset() }) {
                        var n = 0
                        for m in messages { n &+= try! engine.compress(UnsafeRawBufferPointer(m.buffer)) { $0.count } }
                        return n
                    },
                    Impl(name: "zlib", prepare: { deflateReset(&zlib.d) }) {
                        var n = 0
                        for m in messages { n &+= zlib.compress(UnsafeRawBufferPointer(m.buffer), into: out.buffer) }
                        return n
                    },
                ],
                extra: ["engine": extra, "zlib": extra]))
            let inflater = try! MessageInflater(windowBits: 15)
            let inputs = compressed.map { Bytes($0) }
            cases.append(Case(
                group: "inflate", name: "\(kind)-\(sizeName(size))", bytesPerOp: total, unitsPerOp: count,
                impls: [
                    Impl(name: "engine", prepare: { try! inflater.reset() }) {
                        var n = 0
                        for c in inputs { try! inflater.inflate(UnsafeRawBufferPointer(c.buffer), final: true) { n &+= $0.count } }
                        precondition(n == total)
                        return n
                    },
                    Impl(name: "zlib", prepare: { inflateReset(&zlib.f) }) {
                        var n = 0
                        for c in inputs { n &+= zlib.inflateMessage(UnsafeRawBufferPointer(c.buffer), into: out.buffer) }
                        precondition(n == total)
                        return n
                    },
                ],
                extra: ["engine": extra, "zlib": extra]))
        }
    }
    return cases
}
