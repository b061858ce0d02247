// Fuzz target socketio_packet: Socket.IO v5 packets (with binary attachments) and the
// JSON inside them, as our server and client read them from a peer.
//
// Input: [attachment count 0-3] then, for each attachment, [length] and its bytes, then
// the packet text.
//
// Checks: nothing crashes, nesting is bounded; a decoded packet re-encodes to text and
// attachments that decode to the same packet; JSON that parses prints back to JSON that
// parses to the same value.
@testable import SocketIO

enum SocketIOPacketFuzz {
    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let count = input.int(in: 0...3)
        var attachments: [[UInt8]] = []
        for _ in 0..<count { attachments.append(input.take(Int(input.byte()))) }
        let text = String(decoding: input.rest(), as: UTF8.self)

        if let json = try? JSONText.parse(text) {
            try fuzzRequire((try? JSONText.parse(json.description)) == json, "JSON round trip of \(text)")
        }

        var reader = SocketIOPacketReader(maxAttachmentBytes: 1 << 16)
        var packet: SocketIOPacket?
        do {
            packet = try reader.receive(.text(text))
            for a in attachments where packet == nil { packet = try reader.receive(.binary(a)) }
        } catch {
            return  // rejected: fine, as long as nothing crashed
        }
        guard let packet else { return }
        // Binary packets come back as plain events/acks with binary values inside.
        try fuzzRequire(packet.kind != .binaryEvent && packet.kind != .binaryAck, "binary kind left after reconstruction")
        let (wire, parts) = packet.encode()
        var again = SocketIOPacketReader()
        var decoded = try? again.receive(.text(wire))
        for p in parts where decoded == nil { decoded = try? again.receive(.binary(p)) }
        try fuzzRequire(decoded == packet, "packet round trip: \(packet) -> \(wire) -> \(String(describing: decoded))")
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, SocketIOPacketFuzz.run)
}
#endif
