// Replays every committed input of the framing layer's fuzz targets (seeds and the
// crashes fuzzing found) through the checks the fuzzer makes; the targets' code is in
// Fuzz/WebSocketFraming, seen here through the Fuzz symlink. Run the fuzzer itself with
// scripts/fuzz.
import Testing

/// The framing layer's fuzz targets, by their name in Fuzz/targets.
enum FramingFuzzTarget: String, CaseIterable, Sendable {
    case extension_header, upgrade_request

    func run(_ bytes: [UInt8]) throws {
        switch self {
        case .extension_header: try ExtensionHeaderFuzz.run(bytes)
        case .upgrade_request: try UpgradeRequestFuzz.run(bytes)
        }
    }
}

@Test("Committed fuzz inputs pass the fuzz checks", arguments: FramingFuzzTarget.allCases)
func framingFuzzReplay(_ target: FramingFuzzTarget) {
    let result = fuzzReplay(target.rawValue, target.run)
    #expect(result.hasSeeds, "no seeds in Fuzz/corpus/\(target.rawValue)")
    for failure in result.failures { Issue.record(Comment(rawValue: failure)) }
}
