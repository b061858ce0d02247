import Testing
@testable import WebSocketFraming

@Suite struct MessageAssemblerTests {
    /// Parses `bytes` as a client and assembles the data frames.
    func messages(_ bytes: [UInt8], maxMessageSize: Int = 1 << 20, pieces: [Int] = []) throws -> [Message] {
        let parser = FrameParser(role: .client, validatesUTF8: false)
        var assembler = MessageAssembler(maxMessageSize: maxMessageSize)
        var out: [Message] = []
        var rest = bytes[...]
        var sizes = pieces
        while !rest.isEmpty {
            let n = sizes.isEmpty ? rest.count : min(sizes.removeFirst(), rest.count)
            var piece = Array(rest.prefix(n))
            rest = rest.dropFirst(n)
            try piece.withUnsafeMutableBytes { buf in
                try parser.parse(buf) { chunk in
                    guard chunk.opcode.isData else { return }
                    if let m = try assembler.append(chunk) { out.append(m) }
                }
            }
        }
        return out
    }

    @Test func joinsFragmentsWithControlFramesBetween() throws {
        let text = "Grüße, 世界 🌍"
        let u = Array(text.utf8)
        // Fragment boundaries inside multi-byte sequences.
        let bytes = rawFrame(fin: false, opcode: 1, payload: Array(u[0..<3]))
            + rawFrame(opcode: 9, payload: [1, 2])
            + rawFrame(fin: false, opcode: 0, payload: Array(u[3..<12]))
            + rawFrame(opcode: 0, payload: Array(u[12...]))
            + rawFrame(opcode: 2, payload: [0, 1, 2])
        let expected: [Message] = [.text(text), .binary([0, 1, 2])]
        #expect(try messages(bytes) == expected)
        for cut in 0...bytes.count {
            #expect(try messages(bytes, pieces: [cut]) == expected)
        }
    }

    @Test func emptyMessages() throws {
        #expect(try messages(rawFrame(opcode: 1, payload: []) + rawFrame(opcode: 2, payload: [])) == [.text(""), .binary([])])
    }

    @Test func invalidTextFailsAsItStreams() {
        let bytes = rawFrame(fin: false, opcode: 1, payload: [0x61, 0xED, 0xA0]) + rawFrame(opcode: 0, payload: [0x80])
        #expect(throws: FramingError.invalidUTF8) { try messages(bytes) }
        // Truncated at the end of the message.
        #expect(throws: FramingError.invalidUTF8) { try messages(rawFrame(opcode: 1, payload: [0xF0, 0x9F, 0x8C])) }
    }

    @Test func messageSizeLimit() throws {
        let bytes = rawFrame(fin: false, opcode: 2, payload: Array(repeating: 0, count: 600))
            + rawFrame(opcode: 0, payload: Array(repeating: 0, count: 600))
        #expect(throws: FramingError.messageTooBig) { try messages(bytes, maxMessageSize: 1000) }
        #expect(try messages(bytes, maxMessageSize: 1200).count == 1)
    }

    @Test func rawAppendForInflatedBytes() throws {
        var a = MessageAssembler()
        let part1: [UInt8] = Array("héllo ".utf8), part2: [UInt8] = Array("wörld".utf8)
        #expect(try part1.withUnsafeBytes { try a.append($0, messageOpcode: .text, isMessageStart: true, isMessageEnd: false) } == nil)
        #expect(!a.isIdle)
        let m = try part2.withUnsafeBytes { try a.append($0, messageOpcode: .text, isMessageStart: false, isMessageEnd: true) }
        #expect(m == .text("héllo wörld"))
        #expect(a.isIdle)
    }
}
