import Testing
@testable import WebSocketFraming

@Suite struct FrameWriterTests {
    @Test func rfcExamplesFromAServer() throws {
        let w = FrameWriter(role: .server)
        #expect(try w.frame(opcode: .text, payload: Array("Hello".utf8)) == FrameParserTests.helloUnmasked)
        #expect(try w.frame(opcode: .text, fin: false, payload: Array("Hel".utf8))
            + w.frame(opcode: .continuation, payload: Array("lo".utf8)) == FrameParserTests.fragmented)
        #expect(try w.frame(opcode: .ping, payload: Array("Hello".utf8)) == FrameParserTests.ping)
        var rng = SeededRandom(seed: 5)
        let p256 = rng.bytes(256)
        #expect(try w.frame(opcode: .binary, payload: p256) == [0x82, 0x7E, 0x01, 0x00] + p256)
        let p64k = rng.bytes(65536)
        #expect(try w.frame(opcode: .binary, payload: p64k) == [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + p64k)
    }

    @Test func clientFramesAreMaskedWithFreshKeys() throws {
        let w = FrameWriter(role: .client)
        let hello = Array("Hello".utf8)
        var keys = Set<[UInt8]>()
        for _ in 0..<200 {
            let f = try w.frame(opcode: .text, payload: hello)
            #expect(f.count == 11)
            #expect(Array(f[0...1]) == [0x81, 0x85])
            let key = Array(f[2..<6])
            keys.insert(key)
            #expect(f[6...].enumerated().map { $0.element ^ key[$0.offset & 3] } == hello)
        }
        // 200 keys from a CSPRNG: a repeat would be a broken generator (odds ~ 5e-6).
        #expect(keys.count == 200)
    }

    @Test func everyLengthFormRoundTrips() throws {
        var rng = SeededRandom(seed: 8)
        for role in [Role.server, .client] {
            let w = FrameWriter(role: role)
            for n in [0, 1, 125, 126, 127, 65535, 65536, 100_000] {
                let payload = rng.bytes(n)
                let f = try w.frame(opcode: .binary, payload: payload)
                #expect(f.count == w.frameSize(payloadLength: n))
                let peer: Role = role == .server ? .client : .server
                #expect(parseAll(f, role: peer).frames == [Frame(opcode: .binary, payload: payload)], "\(role) \(n)")
            }
        }
    }

    @Test func flagsAndRSV() throws {
        let w = FrameWriter(role: .server)
        #expect(try w.frame(opcode: .text, fin: false, rsv: 0x40, payload: [0x61])[0] == 0x41)
        #expect(try w.frame(opcode: .binary, rsv: 0x70, payload: [])[0] == 0xF2)
    }

    @Test func invalidControlFramesAreRefused() {
        let w = FrameWriter(role: .server)
        #expect(throws: FramingError.invalidArgument) { try w.frame(opcode: .ping, payload: [UInt8](repeating: 0, count: 126)) }
        #expect(throws: FramingError.invalidArgument) { try w.frame(opcode: .close, fin: false, payload: []) }
        var buf = [UInt8](repeating: 0, count: 4)
        #expect(throws: FramingError.self) {
            try buf.withUnsafeMutableBytes { out in
                try [UInt8](repeating: 1, count: 10).withUnsafeBytes { p in
                    _ = try w.write(opcode: .binary, payload: p, into: out)
                }
            }
        }
    }

    @Test func headerAloneMatchesWholeFrame() throws {
        let w = FrameWriter(role: .client)
        var header = [UInt8](repeating: 0, count: FrameWriter.maxHeaderSize)
        var payload = Array(0..<70000).map { UInt8($0 & 0xFF) }
        let original = payload
        let (n, key) = try header.withUnsafeMutableBytes { try w.writeHeader(opcode: .binary, payloadLength: payload.count, into: $0) }
        #expect(n == 14)
        let k = try #require(key)
        // Mask in two pieces, carrying the key offset.
        let mid = 12345
        let off = payload.withUnsafeMutableBytes { k.mask(UnsafeMutableRawBufferPointer(rebasing: $0[..<mid])) }
        payload.withUnsafeMutableBytes { _ = k.mask(UnsafeMutableRawBufferPointer(rebasing: $0[mid...]), offset: off) }
        #expect(parseAll(Array(header[..<n]) + payload, role: .server).frames == [Frame(opcode: .binary, payload: original)])
    }

    @Test func closePayloads() throws {
        #expect(try ClosePayload.encode(code: .normalClosure, reason: "bye") == [0x03, 0xE8, 0x62, 0x79, 0x65])
        #expect(try ClosePayload.encode(code: CloseCode(4000)) == [0x0F, 0xA0])
        #expect(throws: FramingError.invalidArgument) { try ClosePayload.encode(code: .abnormalClosure) }
        #expect(throws: FramingError.invalidArgument) { try ClosePayload.encode(code: .noStatusReceived) }
        #expect(throws: FramingError.invalidArgument) {
            try ClosePayload.encode(code: .normalClosure, reason: String(repeating: "x", count: 124))
        }
        #expect(try ClosePayload.encode(code: .normalClosure, reason: String(repeating: "x", count: 123)).count == 125)
        let decoded = ClosePayload.decode([0x03, 0xE9] + Array("gone ✓".utf8))
        #expect(decoded.code == .goingAway)
        #expect(decoded.reason == "gone ✓")
        #expect(ClosePayload.decode([]).code == .noStatusReceived)
    }

    @Test func closeCodeValidity() {
        #expect(CloseCode.normalClosure.isValidOnWire)
        #expect(CloseCode(3000).isValidOnWire && CloseCode(4999).isValidOnWire)
        #expect(!CloseCode(1004).isValidOnWire && !CloseCode(1005).isValidOnWire && !CloseCode(1006).isValidOnWire)
        #expect(!CloseCode(1015).isValidOnWire && !CloseCode(2000).isValidOnWire && !CloseCode(5000).isValidOnWire)
        #expect(!CloseCode(0).isValidOnWire && !CloseCode(999).isValidOnWire)
    }
}
