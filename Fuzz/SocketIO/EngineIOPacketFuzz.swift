// Fuzz target engineio_packet: Engine.IO v4 packet decoding, as a server or client sees
// polling bodies and WebSocket text messages from a peer.
//
// Input: [mode] then the text (bytes, decoded as UTF-8 with replacement, as a received
// body is after validation).
//
// Checks: nothing crashes; what decodes encodes back to text that decodes to the same
// packets (polling bodies and WebSocket messages); base64 decoding agrees with encoding.
@testable import SocketIO

enum EngineIOPacketFuzz {
    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let mode = input.byte() % 3
        let bytes = input.rest()
        let text = String(decoding: bytes, as: UTF8.self)
        switch mode {
        case 0:
            guard let packets = try? EngineIOPacket.decodePayload(text) else { return }
            try fuzzRequire(!packets.isEmpty, "a payload decoded to no packets")
            let again = try? EngineIOPacket.decodePayload(EngineIOPacket.encodePayload(packets))
            try fuzzRequire(again == packets, "payload round trip: \(packets) -> \(String(describing: again))")
        case 1:
            guard let packet = try? EngineIOPacket.decode(text: text) else { return }
            guard let wire = packet.webSocketText else { throw FuzzFailure(message: "a text packet has no text form") }
            try fuzzRequire(wire == text, "WebSocket text round trip: \(text) -> \(wire)")
        default:
            if let decoded = Base64.decode(text) {
                let encoded = Base64.encode(decoded)
                try fuzzRequire(Base64.decode(encoded) == decoded, "base64 round trip")
            }
            try fuzzRequire(Base64.decode(Base64.encode(bytes)) == bytes, "base64 of arbitrary bytes")
        }
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, EngineIOPacketFuzz.run)
}
#endif
