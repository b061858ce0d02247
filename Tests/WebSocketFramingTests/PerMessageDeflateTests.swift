import CWebSocket
import Testing
@testable import WebSocketFraming

@Suite struct PerMessageDeflateTests {
    static let hello = Array("Hello".utf8)
    static let helloDeflated: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]

    /// A server writer with compression on for every size.
    func serverWriter(_ p: DeflateParameters = .init()) -> MessageWriter {
        MessageWriter(role: .server, deflate: p, settings: DeflateSettings(threshold: 0))
    }

    func clientReader(_ p: DeflateParameters = .init(), maxMessageSize: Int = 16 << 20, pool: DeflateCodecPool? = nil) -> MessageReader {
        MessageReader(role: .client, maxMessageSize: maxMessageSize, deflate: p, pool: pool)
    }

    // MARK: RFC 7692 §7.2.3

    @Test func rfcHelloCompressedAndShared() throws {
        let w = serverWriter()
        var out: [UInt8] = []
        try w.write(.text("Hello"), into: &out)
        #expect(out == [0xc1, 0x07] + Self.helloDeflated)
        // With context takeover the second "Hello" refers back to the first.
        out.removeAll()
        try w.write(.text("Hello"), into: &out)
        #expect(out == [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00])
    }

    @Test func noContextTakeoverRepeatsTheFirstForm() throws {
        let w = serverWriter(DeflateParameters(serverNoContextTakeover: true))
        for _ in 0..<3 {
            var out: [UInt8] = []
            try w.write(.text("Hello"), into: &out)
            #expect(out == [0xc1, 0x07] + Self.helloDeflated)
        }
    }

    @Test func rfcDecodingExamples() throws {
        let examples: [(String, [UInt8])] = [
            ("one compressed block", [0xc1, 0x07] + Self.helloDeflated),
            ("fragmented", [0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]),
            ("block with no compression", [0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
            ("BFINAL set", [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]),
            ("two blocks", [0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]),
        ]
        for (name, bytes) in examples {
            #expect(try clientReader().read(bytes) == [.message(.text("Hello"))], "\(name)")
            // Byte by byte too.
            let r = clientReader()
            var events: [WebSocketEvent] = []
            for b in bytes { events += try r.read([b]) }
            #expect(events == [.message(.text("Hello"))], "\(name), byte by byte")
        }
        // Shared window across messages.
        let shared: [UInt8] = [0xc1, 0x07] + Self.helloDeflated + [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]
        #expect(try clientReader().read(shared) == [.message(.text("Hello")), .message(.text("Hello"))])
    }

    @Test func messageAfterBFINALKeepsTheWindow() throws {
        // After a message that ended its deflate stream, the next one may still refer
        // back to "Hello" with context takeover.
        let bytes: [UInt8] = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]
            + [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]
        #expect(try clientReader().read(bytes) == [.message(.text("Hello")), .message(.text("Hello"))])
    }

    @Test func emptyMessage() throws {
        let w = serverWriter()
        var out: [UInt8] = []
        try w.write(.binary([]), into: &out)
        try w.write(.text(""), into: &out)
        #expect(out == [0xc2, 0x01, 0x00, 0xc1, 0x01, 0x00])
        #expect(try clientReader().read(out) == [.message(.binary([])), .message(.text(""))])
        // An empty compressed payload is also accepted.
        #expect(try clientReader().read([0xc1, 0x00]) == [.message(.text(""))])
    }

    @Test func thresholdAndControlFrames() throws {
        let w = MessageWriter(role: .server, deflate: .init(), settings: DeflateSettings(threshold: 64))
        var out: [UInt8] = []
        try w.write(.text("short"), into: &out)
        #expect(out[0] == 0x81)  // below the threshold: no RSV1
        out.removeAll()
        try w.write(.text(String(repeating: "long enough to be worth compressing ", count: 4)), into: &out)
        #expect(out[0] == 0xc1)
        out.removeAll()
        try w.writeControl(.ping, payload: Array(repeating: 0x61, count: 100), into: &out)
        #expect(out[0] == 0x89)  // control frames are never compressed
    }

    // MARK: Round trips

    static func textLike(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        let words = ["the", "quick", "brown", "fox", "{\"id\":", "\"user\"", "message", "é", "世界", "🙂", "\n", "42,"]
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n { out += Array(words[Int.random(in: 0..<words.count, using: &rng)].utf8) + [0x20] }
        return Array(out.prefix(n))
    }

    @Test(arguments: [false, true])
    func roundTripsAcrossSettings(noContextTakeover: Bool) throws {
        var rng = SeededRandom(seed: noContextTakeover ? 21 : 12)
        for bits in 9...15 {
            let p = DeflateParameters(
                serverNoContextTakeover: noContextTakeover, clientNoContextTakeover: noContextTakeover,
                serverMaxWindowBits: bits, clientMaxWindowBits: bits)
            for role in [Role.server, .client] {
                let w = MessageWriter(role: role, deflate: p, settings: DeflateSettings(level: bits % 3 == 0 ? 1 : 6, threshold: 0))
                let r = MessageReader(role: role == .server ? .client : .server, deflate: p)
                for n in [0, 1, 100, 3000, 70_000] {
                    let payload = n % 2 == 0 ? Self.textLike(n, seed: UInt64(n + bits)) : rng.bytes(n)
                    let message: Message = n % 2 == 0 ? .text(String(decoding: payload, as: UTF8.self)) : .binary(payload)
                    var wire: [UInt8] = []
                    try w.write(message, fragmentSize: Int.random(in: 1...max(1, n / 3 + 1), using: &rng), into: &wire)
                    #expect(wire.isEmpty || wire[0] & 0x40 != 0)
                    // Feed the wire bytes in random pieces.
                    var events: [WebSocketEvent] = []
                    var i = 0
                    while i < wire.count {
                        let k = min(wire.count - i, Int.random(in: 1...4096, using: &rng))
                        events += try r.read(Array(wire[i..<i + k]))
                        i += k
                    }
                    #expect(events == [.message(message)], "bits \(bits) role \(role) n \(n)")
                }
            }
        }
    }

    @Test func largeMessagesRoundTrip() throws {
        let p = DeflateParameters()
        let w = serverWriter(p)
        let r = clientReader(p)
        var rng = SeededRandom(seed: 4)
        for payload in [Self.textLike(4 << 20, seed: 9), rng.bytes(1 << 20)] {
            var wire: [UInt8] = []
            try w.write(.binary(payload), fragmentSize: 100_000, into: &wire)
            #expect(try r.read(wire) == [.message(.binary(payload))])
        }
    }

    @Test func eightBitWindowSendsUncompressed() throws {
        // zlib cannot compress raw deflate with a 256-byte window; the writer sends
        // that direction uncompressed, which RFC 7692 allows.
        let p = DeflateParameters(serverMaxWindowBits: 8, clientMaxWindowBits: 8)
        let w = serverWriter(p)
        #expect(!w.compresses)
        var out: [UInt8] = []
        try w.write(.text(String(repeating: "abc", count: 100)), into: &out)
        #expect(out[0] == 0x81)
        #expect(try clientReader(p).read(out) == [.message(.text(String(repeating: "abc", count: 100)))])
    }

    // MARK: Hostile input

    @Test func decompressionBombStopsAtTheLimit() throws {
        // 1 GiB of zeros deflates to about 1 MB; with a 1 MiB limit the reader must stop
        // after producing at most the limit plus one byte.
        let d = try MessageDeflater(level: 1, windowBits: 15)
        let zeros = [UInt8](repeating: 0, count: 16 << 20)
        var bomb: [UInt8] = []
        for i in 0..<64 {
            try zeros.withUnsafeBytes { z in try d.compress(z, final: i == 63, into: &bomb) }
        }
        #expect(bomb.count < 8 << 20)
        let limit = 1 << 20
        let f = try MessageInflater(maxMessageSize: limit)
        var produced = 0
        let error = #expect(throws: FramingError.self) {
            try bomb.withUnsafeBytes { b in try f.inflate(b, final: true) { produced += $0.count } }
        }
        #expect(error?.closeCode == .messageTooBig)
        #expect(produced <= limit + 1)
        // Through the reader: 1009.
        let frame = try FrameWriter(role: .server).frame(opcode: .binary, rsv: 0x40, payload: bomb)
        let readError = #expect(throws: FramingError.self) { try clientReader(maxMessageSize: limit).read(frame) }
        #expect(readError?.closeCode == .messageTooBig)
    }

    @Test func corruptDataIs1007() throws {
        let cases: [[UInt8]] = [
            [0xff, 0xff, 0xff, 0xff],                   // reserved block type
            [0x00, 0x05, 0x00, 0x00, 0x00],             // stored block with a bad length check
            [0x03, 0x11],                               // distance before the start of the stream
        ]
        for payload in cases {
            let frame = try FrameWriter(role: .server).frame(opcode: .binary, rsv: 0x40, payload: payload)
            let error = #expect(throws: FramingError.self) { try clientReader().read(frame) }
            #expect(error?.closeCode == .invalidPayloadData, "\(payload)")
        }
        // Inflated text that is not UTF-8.
        let d = try MessageDeflater()
        let bad = try d.compress([0x61, 0xC0, 0x80])
        let frame = try FrameWriter(role: .server).frame(opcode: .text, rsv: 0x40, payload: bad)
        let error = #expect(throws: FramingError.self) { try clientReader().read(frame) }
        #expect(error?.closeCode == .invalidPayloadData)
    }

    @Test func randomCompressedBytesNeverCrash() {
        var rng = SeededRandom(seed: 77)
        for _ in 0..<2000 {
            let payload = rng.bytes(Int.random(in: 0...200, using: &rng))
            let frame = try! FrameWriter(role: .server).frame(opcode: .binary, rsv: 0x40, payload: payload)
            do {
                let events = try clientReader(maxMessageSize: 4096).read(frame)
                if case .message(.binary(let b)) = events.first { #expect(b.count <= 4096) }
            } catch let error as FramingError {
                #expect([1007, 1009].contains(error.closeCode.rawValue))
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func tinyOutputBuffersDrainEverything() throws {
        // The C inflater with a 1-byte output buffer: pending output comes out across calls.
        let text = Self.textLike(5000, seed: 1)
        let data = try MessageDeflater().compress(text)
        var f: OpaquePointer?
        #expect(cws_inflater_new(&f, 15, false, 1 << 20) == CWS_OK)
        defer { cws_inflater_free(f) }
        var out: [UInt8] = []
        var byte: UInt8 = 0
        var offset = 0
        var done = false
        var calls = 0
        while !done && calls < 100_000 {
            var consumed = 0, written = 0
            let st = data.withUnsafeBufferPointer { d in
                cws_inflate(f, d.baseAddress! + offset, d.count - offset, true, &byte, 1, &consumed, &written, &done)
            }
            #expect(st == CWS_OK)
            offset += consumed
            if written == 1 { out.append(byte) }
            calls += 1
        }
        #expect(done)
        #expect(out == text)
    }

    // MARK: Shared codecs

    @Test func pooledCodecsServeInterleavedConnections() throws {
        let p = DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true)
        let pool = DeflateCodecPool()
        let readers = (0..<2).map { _ in MessageReader(role: .server, deflate: p, pool: pool) }
        let writers = (0..<2).map { _ in MessageWriter(role: .client, deflate: p, settings: DeflateSettings(threshold: 0), pool: pool) }
        let texts = [Self.textLike(20_000, seed: 5), Self.textLike(30_000, seed: 6)]
        var wires: [[UInt8]] = []
        for i in 0..<2 {
            var w: [UInt8] = []
            try writers[i].write(.text(String(decoding: texts[i], as: UTF8.self)), fragmentSize: 1000, into: &w)
            wires.append(w)
        }
        #expect(pool.idleCount.deflaters == 1)  // one compressor served both writers
        // Interleave the two compressed messages piece by piece: each reader borrows its
        // own decompressor while its message is open.
        var events: [[WebSocketEvent]] = [[], []]
        var offsets = [0, 0]
        while offsets[0] < wires[0].count || offsets[1] < wires[1].count {
            for i in 0..<2 where offsets[i] < wires[i].count {
                let k = min(700, wires[i].count - offsets[i])
                events[i] += try readers[i].read(Array(wires[i][offsets[i]..<offsets[i] + k]))
                offsets[i] += k
            }
        }
        for i in 0..<2 { #expect(events[i] == [.message(.text(String(decoding: texts[i], as: UTF8.self)))]) }
        // Idle connections hold nothing: both decompressors went back to the pool.
        #expect(pool.idleCount.inflaters == 2)
    }

    // MARK: Memory

    @Test func zlibMemoryPerModeMatchesTheDocumentedFigures() throws {
        // Compressor: (1 << (windowBits + 2)) + (1 << (memLevel + 9)) plus ~6 KiB of state.
        for (bits, mem) in [(15, 8), (12, 5), (9, 1)] {
            let d = try MessageDeflater(memLevel: mem, windowBits: bits)
            _ = try d.compress(Array("warm up".utf8))
            let formula = (1 << (bits + 2)) + (1 << (mem + 9))
            #expect(d.zlibMemory >= formula && d.zlibMemory <= formula + 8 << 10, "deflate \(bits)/\(mem): \(d.zlibMemory)")
        }
        // Decompressor: the window (1 << windowBits) plus ~7 KiB, allocated at first use.
        for bits in [15, 12, 8] {
            let f = try MessageInflater(windowBits: bits)
            let idle = f.zlibMemory
            _ = try f.inflate(try MessageDeflater(windowBits: max(bits, 9)).compress(Array("warm up".utf8)))
            #expect(idle <= 8 << 10, "inflate \(bits) before use: \(idle)")
            #expect(f.zlibMemory >= 1 << bits && f.zlibMemory <= (1 << bits) + 8 << 10, "inflate \(bits): \(f.zlibMemory)")
        }
    }
}
