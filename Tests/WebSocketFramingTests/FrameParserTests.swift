import Testing
@testable import WebSocketFraming

@Suite struct FrameParserTests {
    // RFC 6455 §5.7 examples.
    static let hello = Array("Hello".utf8)
    static let helloUnmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    static let helloMasked: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    static let fragmented: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    static let ping: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    static let maskedPong: [UInt8] = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]

    @Test func rfcExampleUnmaskedText() {
        let out = parseAll(Self.helloUnmasked, role: .client)
        #expect(out.error == nil)
        #expect(out.frames == [Frame(opcode: .text, payload: Self.hello)])
    }

    @Test func rfcExampleMaskedText() {
        let out = parseAll(Self.helloMasked, role: .server)
        #expect(out.frames == [Frame(opcode: .text, payload: Self.hello)])
    }

    @Test func rfcExampleFragmentedText() {
        let out = parseAll(Self.fragmented, role: .client)
        #expect(out.frames == [
            Frame(fin: false, opcode: .text, payload: Array("Hel".utf8)),
            Frame(opcode: .continuation, payload: Array("lo".utf8)),
        ])
    }

    @Test func rfcExamplePingAndMaskedPong() {
        #expect(parseAll(Self.ping, role: .client).frames == [Frame(opcode: .ping, payload: Self.hello)])
        #expect(parseAll(Self.maskedPong, role: .server).frames == [Frame(opcode: .pong, payload: Self.hello)])
    }

    @Test func rfcExampleLengthForms() {
        var rng = SeededRandom(seed: 1)
        let p256 = rng.bytes(256)
        let bytes256: [UInt8] = [0x82, 0x7E, 0x01, 0x00] + p256
        #expect(parseAll(bytes256, role: .client).frames == [Frame(opcode: .binary, payload: p256)])
        let p64k = rng.bytes(65536)
        let bytes64k: [UInt8] = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00] + p64k
        #expect(parseAll(bytes64k, role: .client).frames == [Frame(opcode: .binary, payload: p64k)])
    }

    /// A deterministic stream of frames: fragmented messages with control frames in
    /// between, every length form, empty frames.
    static func sampleStream(seed: UInt64, masked: Bool) -> (bytes: [UInt8], frames: [Frame]) {
        var rng = SeededRandom(seed: seed)
        var bytes: [UInt8] = []
        var frames: [Frame] = []
        func add(_ f: Frame) {
            let mask: [UInt8]? = masked ? rng.bytes(4) : nil
            bytes += rawFrame(fin: f.fin, opcode: f.opcode.rawValue, payload: f.payload, mask: mask)
            frames.append(f)
        }
        let sizes = [0, 1, 3, 125, 126, 127, 1000, 65535, 65536, 70000]
        for (i, size) in sizes.enumerated() {
            let fragments = 1 + i % 3
            for k in 0..<fragments {
                let opcode: Opcode = k == 0 ? (i % 2 == 0 ? .binary : .text) : .continuation
                let payload = opcode == .text || (k > 0 && i % 2 == 1)
                    ? Array(String(repeating: "é", count: size / 2).utf8) : rng.bytes(size)
                add(Frame(fin: k == fragments - 1, opcode: opcode, payload: payload))
                if k == 0 && fragments > 1 { add(Frame(opcode: .ping, payload: rng.bytes(i * 12))) }
            }
            add(Frame(opcode: .pong, payload: rng.bytes(125)))
        }
        add(Frame(opcode: .close, payload: [0x03, 0xE8] + Array("bye".utf8)))
        return (bytes, frames)
    }

    @Test(arguments: [Role.server, Role.client])
    func sameFramesWhateverTheSplit(role: Role) {
        let (bytes, frames) = Self.sampleStream(seed: 7, masked: role == .server)
        let whole = parseAll(bytes, role: role)
        #expect(whole.error == nil)
        #expect(whole.frames == frames)
        // Byte by byte through the headers and the first frames (the slow paths), then
        // random split points through all of it.
        let prefix = 2000
        let byteByByte = parseAll(bytes, role: role, pieces: Array(repeating: 1, count: prefix))
        #expect(byteByByte == whole)
        var rng = SeededRandom(seed: 99)
        for _ in 0..<20 {
            let pieces = (0..<200).map { _ in Int.random(in: 0...3000, using: &rng) }
            #expect(parseAll(bytes, role: role, pieces: pieces) == whole)
        }
    }

    @Test func everyByteSplitOfSmallStream() {
        let bytes = Self.helloMasked + Self.maskedPong + rawFrame(opcode: 0x8, payload: [0x03, 0xE8, 0x61], mask: [1, 2, 3, 4])
        let whole = parseAll(bytes, role: .server)
        #expect(whole.frames.count == 3)
        for cut in 0...bytes.count {
            #expect(parseAll(bytes, role: .server, pieces: [cut]) == whole, "split at \(cut)")
        }
        #expect(parseAll(bytes, role: .server, pieces: Array(repeating: 1, count: bytes.count)) == whole)
    }

    @Test func manyFramesInOneBuffer() {
        // More frames than the parser's event array holds in one engine call.
        var bytes: [UInt8] = []
        for i in 0..<1000 { bytes += rawFrame(opcode: 2, payload: [UInt8(i & 0xFF)], mask: [9, 8, 7, 6]) }
        let out = parseAll(bytes, role: .server)
        #expect(out.frames.count == 1000)
        #expect(out.frames.enumerated().allSatisfy { $0.element.payload == [UInt8($0.offset & 0xFF)] })
    }

    @Test func largeFrameArrivesInChunksWithoutBuffering() throws {
        var rng = SeededRandom(seed: 3)
        let payload = rng.bytes(1 << 20)
        var bytes = rawFrame(opcode: 2, payload: payload, mask: [0xAA, 0xBB, 0xCC, 0xDD])
        let parser = FrameParser(role: .server)
        var chunks = 0
        var got: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            let n = min(4096, bytes.count - offset)
            try bytes.withUnsafeMutableBytes { all in
                try parser.parse(UnsafeMutableRawBufferPointer(rebasing: all[offset..<offset + n])) { chunk in
                    chunks += 1
                    #expect(chunk.frameLength == UInt64(payload.count))
                    #expect(chunk.isFrameStart == (got.isEmpty))
                    got += chunk.payload
                }
            }
            offset += n
        }
        #expect(got == payload)
        #expect(chunks >= (1 << 20) / 4096)
        #expect(parser.isIdle)
    }

    @Test func splitControlFrameIsDeliveredWhole() throws {
        let parser = FrameParser(role: .server)
        var frame = rawFrame(opcode: 9, payload: Array(0..<100), mask: [1, 2, 3, 4])
        var deliveries: [[UInt8]] = []
        for range in [0..<3, 3..<50, 50..<frame.count] {
            try frame.withUnsafeMutableBytes { all in
                try parser.parse(UnsafeMutableRawBufferPointer(rebasing: all[range])) { deliveries.append(Array($0.payload)) }
            }
        }
        #expect(deliveries == [Array(0..<100)])
    }

    @Test func controlFramesBetweenFragments() {
        let bytes = rawFrame(fin: false, opcode: 1, payload: Array("a".utf8))
            + rawFrame(opcode: 9, payload: [])
            + rawFrame(opcode: 0xA, payload: [1])
            + rawFrame(opcode: 0, payload: Array("b".utf8))
        let out = parseAll(bytes, role: .client)
        #expect(out.error == nil)
        #expect(out.frames.map(\.opcode) == [.text, .ping, .pong, .continuation])
    }

    // MARK: Protocol violations and their close codes

    static let violations: [(name: String, bytes: [UInt8], role: Role, allowedRSV: UInt8, code: UInt16)] = [
        ("rsv1 without extension", rawFrame(rsv: 0x40, opcode: 1, payload: []), .client, 0, 1002),
        ("rsv2", rawFrame(rsv: 0x20, opcode: 2, payload: []), .client, 0x40, 1002),
        ("rsv3", rawFrame(rsv: 0x10, opcode: 2, payload: []), .client, 0x40, 1002),
        ("opcode 3", rawFrame(opcode: 3, payload: []), .client, 0, 1002),
        ("opcode 7", rawFrame(opcode: 7, payload: []), .client, 0, 1002),
        ("opcode 0xB", rawFrame(opcode: 0xB, payload: []), .client, 0, 1002),
        ("opcode 0xF", rawFrame(opcode: 0xF, payload: []), .client, 0, 1002),
        ("fragmented ping", rawFrame(fin: false, opcode: 9, payload: []), .client, 0, 1002),
        ("ping of 126 bytes", rawFrame(opcode: 9, payload: Array(repeating: 0, count: 126)), .client, 0, 1002),
        ("leading continuation", rawFrame(opcode: 0, payload: [1]), .client, 0, 1002),
        ("text inside a fragmented message",
         rawFrame(fin: false, opcode: 1, payload: [0x61]) + rawFrame(opcode: 1, payload: [0x61]), .client, 0, 1002),
        ("unmasked frame to a server", rawFrame(opcode: 2, payload: [1]), .server, 0, 1002),
        ("masked frame to a client", rawFrame(opcode: 2, payload: [1], mask: [1, 2, 3, 4]), .client, 0, 1002),
        ("16-bit length below 126", rawFrame(opcode: 2, payload: Array(repeating: 0, count: 100), lengthForm: 2), .client, 0, 1002),
        ("64-bit length below 65536", rawFrame(opcode: 2, payload: Array(repeating: 0, count: 1000), lengthForm: 8), .client, 0, 1002),
        ("64-bit length with top bit", [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1], .client, 0, 1002),
        ("close with 1 byte", rawFrame(opcode: 8, payload: [3]), .client, 0, 1002),
        ("close code 999", rawFrame(opcode: 8, payload: [0x03, 0xE7]), .client, 0, 1002),
        ("close code 1004", rawFrame(opcode: 8, payload: [0x03, 0xEC]), .client, 0, 1002),
        ("close code 1005", rawFrame(opcode: 8, payload: [0x03, 0xED]), .client, 0, 1002),
        ("close code 1006", rawFrame(opcode: 8, payload: [0x03, 0xEE]), .client, 0, 1002),
        ("close code 1015", rawFrame(opcode: 8, payload: [0x03, 0xF7]), .client, 0, 1002),
        ("close code 2999", rawFrame(opcode: 8, payload: [0x0B, 0xB7]), .client, 0, 1002),
        ("close code 5000", rawFrame(opcode: 8, payload: [0x13, 0x88]), .client, 0, 1002),
        ("close reason not UTF-8", rawFrame(opcode: 8, payload: [0x03, 0xE8, 0xC0, 0x80]), .client, 0, 1007),
        ("text not UTF-8", rawFrame(opcode: 1, payload: [0x61, 0xFF]), .client, 0, 1007),
        ("text ends mid-sequence", rawFrame(opcode: 1, payload: [0x61, 0xE2, 0x82]), .client, 0, 1007),
        ("fragmented text ends mid-sequence",
         rawFrame(fin: false, opcode: 1, payload: [0xE2]) + rawFrame(opcode: 0, payload: [0x82]), .client, 0, 1007),
        ("empty final fragment after a partial sequence",
         rawFrame(fin: false, opcode: 1, payload: [0xF0, 0x9F]) + rawFrame(opcode: 0, payload: []), .client, 0, 1007),
        ("rsv1 on a continuation", rawFrame(fin: false, rsv: 0x40, opcode: 2, payload: [1])
            + rawFrame(rsv: 0x40, opcode: 0, payload: [1]), .client, 0x40, 1002),
        ("rsv1 on a control frame", rawFrame(rsv: 0x40, opcode: 9, payload: []), .client, 0x40, 1002),
    ]

    @Test func violationsGiveTheirCloseCodes() {
        for v in Self.violations {
            let out = parseAll(v.bytes, role: v.role, allowedReservedBits: v.allowedRSV)
            #expect(out.error?.closeCode.rawValue == v.code, "\(v.name)")
            // The same answer when the bytes trickle in one at a time.
            let slow = parseAll(v.bytes, role: v.role, pieces: Array(repeating: 1, count: v.bytes.count), allowedReservedBits: v.allowedRSV)
            #expect(slow.error == out.error, "\(v.name), byte by byte")
        }
    }

    @Test func validCloseCodesAndEdgeCases() {
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            let out = parseAll(rawFrame(opcode: 8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)] + Array("ok ✓".utf8)), role: .client)
            #expect(out.error == nil, "code \(code)")
        }
        #expect(parseAll(rawFrame(opcode: 8, payload: []), role: .client).frames == [Frame(opcode: .close)])
        // A sequence split across fragments is fine.
        let split = rawFrame(fin: false, opcode: 1, payload: [0xE2, 0x82]) + rawFrame(opcode: 0, payload: [0xAC])
        #expect(parseAll(split, role: .client).error == nil)
    }

    @Test func compressedTextIsLeftToTheExtension() {
        // RSV1 marks a compressed message: its bytes are deflate data, not UTF-8.
        let out = parseAll(rawFrame(rsv: 0x40, opcode: 1, payload: [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]), role: .client, allowedReservedBits: 0x40)
        #expect(out.error == nil)
        #expect(out.frames.first?.rsv1 == true)
    }

    @Test func invalidUTF8FailsAtTheBadChunkNotAtTheEnd() throws {
        // A 1 MiB text frame whose second byte is invalid: the error comes from the first
        // piece, before the rest of the payload arrives.
        var bytes = rawFrame(opcode: 1, payload: [0x61, 0xFF] + Array(repeating: 0x61, count: 1 << 20))
        let parser = FrameParser(role: .client)
        var delivered = 0
        let error = #expect(throws: FramingError.self) {
            try bytes.withUnsafeMutableBytes { all in
                try parser.parse(UnsafeMutableRawBufferPointer(rebasing: all[0..<100])) { delivered += $0.payload.count }
            }
        }
        #expect(error?.closeCode == .invalidPayloadData)
        #expect(delivered == 0)
    }

    @Test func limitsFailBeforeThePayload() {
        // Only the header of a 10 MB frame arrives: a 1 MB limit fails it at once.
        let header: [UInt8] = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x98, 0x96, 0x80]
        let out = parseAll(header, role: .client, maxFrameSize: 1 << 20)
        #expect(out.error?.closeCode == .messageTooBig)
        #expect(out.error == FramingError(CWS_ERR_FRAME_TOO_BIG))
        // Fragments adding up past the message limit.
        let frags = rawFrame(fin: false, opcode: 2, payload: Array(repeating: 1, count: 600))
            + rawFrame(fin: false, opcode: 0, payload: Array(repeating: 1, count: 600))
        let msg = parseAll(frags, role: .client, maxMessageSize: 1000)
        #expect(msg.error == .messageTooBig)
        #expect(msg.frames.count == 1)
        // Control frames do not count toward the message size.
        let withPing = rawFrame(fin: false, opcode: 2, payload: Array(repeating: 1, count: 900))
            + rawFrame(opcode: 9, payload: Array(repeating: 1, count: 125))
            + rawFrame(opcode: 0, payload: Array(repeating: 1, count: 100))
        #expect(parseAll(withPing, role: .client, maxMessageSize: 1000).error == nil)
    }

    @Test func errorsAreSticky() throws {
        let parser = FrameParser(role: .server)
        var bad = rawFrame(opcode: 2, payload: [1])  // unmasked, to a server
        #expect(throws: FramingError.self) { try bad.withUnsafeMutableBytes { try parser.parse($0) { _ in } } }
        var good = rawFrame(opcode: 2, payload: [1], mask: [1, 2, 3, 4])
        var calls = 0
        #expect(throws: FramingError.self) { try good.withUnsafeMutableBytes { try parser.parse($0) { _ in calls += 1 } } }
        #expect(calls == 0)
    }

    @Test func randomBytesNeverCrash() {
        // Arbitrary input must end in frames or an error, never a trap.
        var rng = SeededRandom(seed: 11)
        for i in 0..<3000 {
            let bytes = rng.bytes(Int.random(in: 0...64, using: &rng))
            let role: Role = i % 2 == 0 ? .server : .client
            let out = parseAll(bytes, role: role, pieces: [Int.random(in: 0...8, using: &rng)], maxFrameSize: 32, maxMessageSize: 48, allowedReservedBits: i % 3 == 0 ? 0x40 : 0)
            #expect(out.frames.reduce(0) { $0 + $1.payload.count } <= bytes.count)
            #expect(out.frames.allSatisfy { $0.payload.count <= ($0.opcode.isControl ? 125 : 32) })
        }
    }
}

import CWebSocket
