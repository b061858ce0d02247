// Replays every committed input of the Socket.IO fuzz targets (seeds and the crashes
// fuzzing found) through the checks the fuzzer makes; the targets' code is in
// Fuzz/SocketIO, seen here through the Fuzz symlink. Run the fuzzer with scripts/fuzz.
import Testing

/// The Socket.IO fuzz targets, by their name in Fuzz/targets.
enum SocketIOFuzzTarget: String, CaseIterable, Sendable {
    case engineio_packet, socketio_packet

    func run(_ bytes: [UInt8]) throws {
        switch self {
        case .engineio_packet: try EngineIOPacketFuzz.run(bytes)
        case .socketio_packet: try SocketIOPacketFuzz.run(bytes)
        }
    }
}

@Test("Committed Socket.IO fuzz inputs pass the fuzz checks", arguments: SocketIOFuzzTarget.allCases)
func socketIOFuzzReplay(_ target: SocketIOFuzzTarget) {
    let result = fuzzReplay(target.rawValue, target.run)
    #expect(result.hasSeeds, "no seeds in Fuzz/corpus/\(target.rawValue)")
    for failure in result.failures { Issue.record(Comment(rawValue: failure)) }
}
