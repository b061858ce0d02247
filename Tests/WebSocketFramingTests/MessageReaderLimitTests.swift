import Testing
@testable import WebSocketFraming

/// `MessageReader`'s frame count per message: empty and tiny continuation frames never
/// reach `maxMessageSize`, so the count is what bounds them.
@Suite struct MessageReaderLimitTests {
    /// A text message "a" + `continuations` frames (empty unless `byte` is given), FIN on the last.
    private func fragmented(continuations: Int, byte: UInt8? = nil) -> [UInt8] {
        var out = rawFrame(fin: false, opcode: 0x1, payload: [0x61])
        for i in 0..<continuations {
            out += rawFrame(fin: i == continuations - 1, opcode: 0x0, payload: byte.map { [$0] } ?? [])
        }
        return out
    }

    @Test func messageOfExactlyMaxFragmentsIsDelivered() throws {
        let reader = MessageReader(role: .client, maxFragments: 100)
        #expect(try reader.read(fragmented(continuations: 99, byte: 0x62)) == [.message(.text("a" + String(repeating: "b", count: 99)))])
        // The count starts again with the next message.
        #expect(try reader.read(fragmented(continuations: 99)) == [.message(.text("a"))])
    }

    @Test(arguments: [UInt8?.none, 0x62])
    func oneFrameMoreFailsWith1009(byte: UInt8?) throws {
        let reader = MessageReader(role: .client, maxFragments: 100)
        #expect(throws: FramingError.tooManyFragments) { try reader.read(fragmented(continuations: 100, byte: byte)) }
        #expect(FramingError.tooManyFragments.closeCode == .messageTooBig)
    }

    @Test func controlFramesBetweenFragmentsDoNotCount() throws {
        let reader = MessageReader(role: .client, maxFragments: 3)
        var bytes = rawFrame(fin: false, opcode: 0x2, payload: [1])
        for _ in 0..<10 { bytes += rawFrame(opcode: 0x9, payload: []) }
        bytes += rawFrame(fin: false, opcode: 0x0, payload: [2]) + rawFrame(opcode: 0x0, payload: [3])
        let events = try reader.read(bytes)
        #expect(events.count == 11)
        #expect(events.last == .message(.binary([1, 2, 3])))
    }

    /// A flood far past the limit stops at the limit: the reader does not walk the rest.
    @Test func emptyContinuationFloodStopsAtTheDefaultLimit() throws {
        let reader = MessageReader(role: .client)
        var delivered = 0
        var bytes = fragmented(continuations: (1 << 16) + 10)
        #expect(throws: FramingError.tooManyFragments) {
            try bytes.withUnsafeMutableBytes { try reader.read($0) { _ in delivered += 1 } }
        }
        #expect(delivered == 0)
    }
}
