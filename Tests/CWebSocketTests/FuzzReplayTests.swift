// Replays every committed input of the engine's fuzz targets (seeds and the crashes
// fuzzing found) through the checks the fuzzer makes; the targets' code is in
// Fuzz/CWebSocket, seen here through the Fuzz symlink. Run the fuzzer itself with
// scripts/fuzz.
import Testing

/// The engine's fuzz targets, by their name in Fuzz/targets.
enum EngineFuzzTarget: String, CaseIterable, Sendable {
    case frame_parser, utf8, inflate, hixie76_key

    func run(_ bytes: [UInt8]) throws {
        switch self {
        case .frame_parser: try FrameParserFuzz.run(bytes)
        case .utf8: try UTF8Fuzz.run(bytes)
        case .inflate: try InflateFuzz.run(bytes)
        case .hixie76_key: try Hixie76KeyFuzz.run(bytes)
        }
    }
}

@Test("Committed fuzz inputs pass the fuzz checks", arguments: EngineFuzzTarget.allCases)
func engineFuzzReplay(_ target: EngineFuzzTarget) {
    let result = fuzzReplay(target.rawValue, target.run)
    #expect(result.hasSeeds, "no seeds in Fuzz/corpus/\(target.rawValue)")
    for failure in result.failures { Issue.record(Comment(rawValue: failure)) }
}
