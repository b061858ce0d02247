import SeededRandom
import CWebSocket
import NIOCore
import NIOEmbedded
import NIOWebSocket
import WebSocketFraming
#if canImport(Glibc)
import Glibc
#endif

/// Masked client frames back to back: at least 256 KiB and 16 frames.
func clientFrames(payload: [UInt8], opcode: Opcode) -> (bytes: [UInt8], count: Int) {
    let writer = FrameWriter(role: .client)
    let count = max(16, (256 << 10) / (payload.count + 14))
    var out: [UInt8] = []
    out.reserveCapacity(count * (payload.count + 14))
    for _ in 0..<count { try! writer.write(opcode: opcode, payload: payload, into: &out) }
    return (out, count)
}

/// `parse`: a buffer of many masked client frames, parsed and unmasked (and UTF-8
/// checked for text) by a server; times are per frame.
func parseCases() -> [Case] {
    var rng = SeededRandom(seed: 7)
    var specs: [(name: String, payload: [UInt8], opcode: Opcode)] = [16, 125, 1 << 10, 64 << 10].map {
        (sizeName($0), rng.bytes($0), .binary)
    }
    specs.append(("text-1KiB", textInput("latin", bytes: 1 << 10), .text))
    return specs.map { spec in
        let (frames, count) = clientFrames(payload: spec.payload, opcode: spec.opcode)
        let pristine = Bytes(frames)
        let work = Bytes(count: frames.count)
        let parser = FrameParser(role: .server, maxFrameSize: 1 << 20, maxMessageSize: 1 << 20)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        var nioInput = ByteBuffer()
        let isText = spec.opcode == .text
        return Case(
            group: "parse", name: spec.name, bytesPerOp: spec.payload.count * count, unitsPerOp: count,
            impls: [
                Impl(name: "engine", prepare: { memcpy(work.pointer, pristine.pointer, frames.count) }) {
                    var total = 0
                    try! parser.parse(work.buffer) { chunk in total &+= chunk.payload.count }
                    precondition(total == spec.payload.count * count)
                    return total
                },
                Impl(name: "nio", prepare: { nioInput = ByteBuffer(bytes: frames) }) {
                    try! channel.writeInbound(nioInput)
                    var total = 0
                    while let frame = try! channel.readInbound(as: WebSocketFrame.self) {
                        let data = frame.unmaskedData
                        if isText {
                            total &+= data.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self)!.utf8.count }
                        } else {
                            total &+= data.readableBytes
                        }
                    }
                    precondition(total == spec.payload.count * count)
                    return total
                },
            ])
    }
}

/// `write`: one frame per operation, unmasked server frames and masked client frames.
func writeCases() -> [Case] {
    var rng = SeededRandom(seed: 9)
    var cases: [Case] = []
    for masked in [false, true] {
        for n in [16, 125, 1 << 10, 64 << 10] {
            let payload = Bytes(rng.bytes(n))
            let out = Bytes(count: n + 14)
            let writer = FrameWriter(role: masked ? .client : .server)
            let nioPayload = ByteBuffer(bytes: UnsafeRawBufferPointer(payload.buffer))
            let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
            cases.append(Case(
                group: "write", name: (masked ? "masked-" : "") + sizeName(n), bytesPerOp: n,
                impls: [
                    Impl(name: "engine") {
                        try! writer.write(opcode: .binary, payload: UnsafeRawBufferPointer(payload.buffer), into: out.buffer)
                    },
                    Impl(name: "nio") {
                        let frame = WebSocketFrame(
                            fin: true, opcode: .binary, maskKey: masked ? .random() : nil, data: nioPayload)
                        try! channel.writeOutbound(frame)
                        var total = 0
                        while let b = try! channel.readOutbound(as: ByteBuffer.self) { total &+= b.readableBytes }
                        return total
                    },
                ]))
        }
    }
    return cases
}
