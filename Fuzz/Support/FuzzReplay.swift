// The replay half of the fuzz targets, for the test targets only: the committed seeds
// (Fuzz/corpus/<target>/) and the inputs fuzzing found (Tests/FuzzRegressions/<target>/)
// go through the same `run` the fuzzer calls.
#if !FUZZ_ENTRY
import Foundation

/// One committed input of a fuzz target.
struct FuzzReplayInput: CustomStringConvertible {
    /// Where it lives, relative to the package root.
    let path: String
    let bytes: [UInt8]
    /// Whether it came from Tests/FuzzRegressions (else it is a seed).
    let isRegression: Bool
    var description: String { path }
}

/// Every seed and regression input of `target`, sorted by path. `testFile` must be a
/// file two folders below the package root (a test file; the default takes the caller's).
func fuzzReplayInputs(_ target: String, testFile: String = #filePath) -> [FuzzReplayInput] {
    let root = URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    var inputs: [FuzzReplayInput] = []
    for (folder, isRegression) in [("Fuzz/corpus/\(target)", false), ("Tests/FuzzRegressions/\(target)", true)] {
        let dir = root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for name in names.sorted() where !name.hasPrefix(".") && !name.hasSuffix(".md") {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
            inputs.append(FuzzReplayInput(path: "\(folder)/\(name)", bytes: Array(data), isRegression: isRegression))
        }
    }
    return inputs
}

/// Runs every committed input of `target` through `run` (the fuzzer's checks): whether
/// the target has seeds, and one line per input that failed.
func fuzzReplay(_ target: String, testFile: String = #filePath, _ run: ([UInt8]) throws -> Void) -> (hasSeeds: Bool, failures: [String]) {
    let inputs = fuzzReplayInputs(target, testFile: testFile)
    var failures: [String] = []
    for input in inputs {
        do { try run(input.bytes) } catch { failures.append("\(input): \(error)") }
    }
    return (inputs.contains { !$0.isRegression }, failures)
}
#endif
