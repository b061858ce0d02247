// Fuzz target inflate: permessage-deflate's decompressor (cws_inflater) on two kinds of
// input, picked by the first byte's low bit.
//
// Garbage (even): [window bits] [flags] [limit u16] [capacity u16] [split seed], then
// messages (see `messages`), inflated in random pieces with a
// random output capacity. Checks: no call writes past its capacity or more than one
// byte past the message limit in all; every call makes progress; a message's last
// part, all taken with room to spare, completes it; errors are the peer's (1007, 1009)
// and sticky; reset recovers.
//
// Round trip (odd): [level] [mem level] [window bits] [flags] [capacity u16] [split
// seed], then messages as above, each compressed in parts by cws_deflate and inflated
// in other pieces with the limit set to the longest message. Checks: the messages come
// back byte for byte, and one byte under the limit fails with 1009.
import CWebSocket

enum InflateFuzz {
    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        if input.byte() & 1 == 0 { try garbage(&input) } else { try roundTrip(&input) }
    }

    /// Messages from the rest of the input, each a length byte (below 0x80: that many
    /// bytes; else 16 times its low 7 bits plus one) and its bytes; at most 64.
    static func messages(_ input: inout FuzzInput) -> [[UInt8]] {
        var rest = input.rest()[...]
        var out: [[UInt8]] = []
        while let n = rest.first, out.count < 64 {
            rest = rest.dropFirst()
            let length = n < 0x80 ? Int(n) : (Int(n & 0x7F) + 1) * 16
            out.append(Array(rest.prefix(length)))
            rest = rest.dropFirst(length)
        }
        return out
    }

    /// Outcome of inflating one message.
    struct Inflated {
        var output: [UInt8] = []
        var status = CWS_OK
    }

    /// Inflates one message given as parts, checking every call.
    static func inflate(_ f: OpaquePointer, parts: [[UInt8]], capacity: Int, limit: UInt64) throws -> Inflated {
        var result = Inflated()
        var out = [UInt8](repeating: 0, count: capacity)
        var produced: UInt64 = 0
        for (index, part) in parts.enumerated() {
            let final = index == parts.count - 1
            var offset = 0
            var calls = 0
            while true {
                calls += 1
                // Each call takes input or gives output; a message of n bytes cannot need
                // more than n + limit + a few calls.
                try fuzzRequire(calls <= part.count + Int(min(limit, 1 << 20)) + 8, "inflate does not progress")
                var consumed = 0, written = 0
                var done = false
                let status = part.withUnsafeBufferPointer { inp in
                    out.withUnsafeMutableBufferPointer { o in
                        cws_inflate(f, inp.baseAddress.map { $0 + offset }, part.count - offset, final,
                                    o.baseAddress, capacity, &consumed, &written, &done)
                    }
                }
                try fuzzRequire(consumed <= part.count - offset && written <= capacity, "consumed or written too much")
                produced += UInt64(written)
                try fuzzRequire(produced <= limit + 1, "inflated \(produced) bytes past the limit \(limit)")
                result.output += out.prefix(written)
                offset += consumed
                if status != CWS_OK {
                    try fuzzRequire(status == CWS_ERR_COMPRESSED_DATA || status == CWS_ERR_MESSAGE_TOO_BIG,
                                    "unexpected inflate status \(status)")
                    try fuzzRequire(status != CWS_ERR_MESSAGE_TOO_BIG || produced == limit + 1,
                                    "1009 at \(produced) bytes, limit \(limit)")
                    var c = 0, w = 0, d = false
                    let again = cws_inflate(f, [0], 1, true, &out, capacity, &c, &w, &d)
                    try fuzzRequire(again == status && c == 0 && w == 0 && !d, "inflate error not sticky")
                    result.status = status
                    return result
                }
                if done {
                    try fuzzRequire(final && offset == part.count, "done before the last part was taken")
                    return result
                }
                if offset == part.count && written < capacity {
                    // All input in with room to spare: a last part must have finished.
                    try fuzzRequire(!final, "last part taken with room left but the message is not done")
                    break
                }
                try fuzzRequire(consumed > 0 || written > 0, "inflate call made no progress")
            }
        }
        return result
    }

    /// Splits `bytes` into pieces from a seed (at least one piece, maybe empty).
    static func split(_ bytes: [UInt8], seed: UInt8) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var at = 0
        for size in fuzzPieces(count: bytes.count, seed: seed) {
            parts.append(Array(bytes[at..<at + size]))
            at += size
        }
        return parts.isEmpty ? [[]] : parts
    }

    static func garbage(_ input: inout FuzzInput) throws {
        let windowBits = input.int(in: 8...15)
        let flags = input.byte()
        let limit = UInt64(input.uint16())
        let capacity = Int(input.uint16() % 4096) + 1
        let seed = input.byte()
        var f: OpaquePointer?
        try fuzzRequire(cws_inflater_new(&f, Int32(windowBits), flags & 1 == 1, limit) == CWS_OK, "inflater_new failed")
        defer { cws_inflater_free(f) }
        for message in messages(&input) {
            let result = try inflate(f!, parts: split(message, seed: seed &+ UInt8(truncatingIfNeeded: message.count)),
                                     capacity: capacity, limit: limit)
            if result.status != CWS_OK {
                try fuzzRequire(cws_inflater_reset(f) == CWS_OK, "reset failed")
            }
            try fuzzRequire(cws_inflater_memory(f) < 200_000, "inflater holds \(cws_inflater_memory(f)) bytes")
        }
    }

    static func roundTrip(_ input: inout FuzzInput) throws {
        let level = input.int(in: 0...9)
        let memLevel = input.int(in: 1...9)
        let windowBits = input.int(in: 9...15)
        let flags = input.byte()
        let capacity = Int(input.uint16() % 4096) + 1
        let seed = input.byte()
        let senderResets = flags & 1 == 1
        // The receiver's window may be larger than the sender's; it may reset only when
        // the sender does.
        let receiverBits = min(15, windowBits + Int(flags >> 1 & 7))
        let receiverResets = senderResets && flags & 0x10 != 0
        let all = messages(&input)
        let limit = UInt64(all.map(\.count).max() ?? 0)

        var d: OpaquePointer?, f: OpaquePointer?
        try fuzzRequire(cws_deflater_new(&d, Int32(level), Int32(memLevel), Int32(windowBits), senderResets) == CWS_OK,
                        "deflater_new failed")
        defer { cws_deflater_free(d) }
        try fuzzRequire(cws_inflater_new(&f, Int32(receiverBits), receiverResets, limit) == CWS_OK, "inflater_new failed")
        defer { cws_inflater_free(f) }

        for (n, message) in all.enumerated() {
            // Compress in parts (as a sender streaming a message would), inflate in others.
            var compressed: [UInt8] = []
            let parts = split(message, seed: seed &+ UInt8(truncatingIfNeeded: n))
            for (i, part) in parts.enumerated() {
                var out = [UInt8](repeating: 0, count: cws_deflate_bound(d, part.count))
                var written = 0
                let status = part.withUnsafeBufferPointer { p in
                    cws_deflate(d, p.baseAddress, p.count, i == parts.count - 1, &out, out.count, &written)
                }
                try fuzzRequire(status == CWS_OK, "deflate failed: \(status)")
                compressed += out.prefix(written)
            }
            let result = try inflate(f!, parts: split(compressed, seed: seed ^ 0x5A), capacity: capacity, limit: limit)
            try fuzzRequire(result.status == CWS_OK, "inflating our own deflate failed: \(result.status)")
            try fuzzRequire(result.output == message, "round trip changed message \(n)")

            // The same message against a fresh inflater one byte short of it must fail
            // with 1009 (only checkable without shared context: a fresh inflater knows
            // no earlier window).
            if senderResets && !message.isEmpty {
                var g: OpaquePointer?
                try fuzzRequire(cws_inflater_new(&g, Int32(receiverBits), true, UInt64(message.count - 1)) == CWS_OK,
                                "inflater_new failed")
                defer { cws_inflater_free(g) }
                let short = try inflate(g!, parts: [compressed], capacity: capacity, limit: UInt64(message.count - 1))
                try fuzzRequire(short.status == CWS_ERR_MESSAGE_TOO_BIG, "one byte over the limit gave \(short.status)")
            }
        }
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, InflateFuzz.run)
}
#endif
