import Foundation
import NIOConcurrencyHelpers

/// Scenario results: printed as they come and summed up at the end; any failed check
/// makes the run exit non-zero.
final class LoadReport: @unchecked Sendable {
    private let lock = NIOLock()
    private var lines: [String] = []
    private var failures: [String] = []

    /// A measurement or an observation.
    func note(_ line: String) {
        FileHandle.standardOutput.write(Data(("  " + line + "\n").utf8))
        lock.withLock { lines.append(line) }
    }

    /// A check: recorded as PASS or FAIL.
    func check(_ ok: Bool, _ what: String) {
        note((ok ? "PASS " : "FAIL ") + what)
        if !ok { lock.withLock { failures.append(what) } }
    }

    func heading(_ title: String) {
        FileHandle.standardOutput.write(Data(("\n== \(title)\n").utf8))
        lock.withLock { lines.append("== \(title)") }
    }

    var failed: [String] { lock.withLock { failures } }
    var all: [String] { lock.withLock { lines } }
}

/// Seconds since `start`, for timing scenarios.
func seconds(since start: Date) -> Double { Date().timeIntervalSince(start) }

/// A number with `digits` decimals.
func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }
