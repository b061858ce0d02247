import SeededRandom
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic time in nanoseconds.
@inline(__always)
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Results are folded into this so the optimiser cannot drop the work that made them.
nonisolated(unsafe) var sink = 0

@inline(never)
func consume(_ x: Int) { sink &+= x }

/// One implementation of a case.
struct Impl {
    /// Row name: engine, engine-scalar, nio, memcpy, zlib, stdlib.
    var name: String
    /// Untimed work before each operation (restoring an input the operation changes).
    /// When set, every sample is a single operation.
    var prepare: (() -> Void)?
    /// One operation; returns something derived from its output.
    var run: () -> Int
}

/// A case: several implementations doing the same work on the same input.
struct Case {
    var group: String
    var name: String
    /// Payload bytes one operation processes (for GB/s), or nil.
    var bytesPerOp: Int?
    /// Units (frames, messages) one operation processes: times are reported per unit.
    var unitsPerOp: Int = 1
    var impls: [Impl]
    /// Extra fields for every row of this case, keyed by impl.
    var extra: [String: [String: Double]] = [:]
}

/// One line of the report.
struct Row {
    var group: String
    var caseName: String
    var impl: String
    var medianNs: Double
    var minNs: Double
    var maxNs: Double
    var gbps: Double?
    var opsPerS: Double
    var extra: [String: Double]
}

/// Timing settings.
struct Budget {
    /// Target total sampling time per implementation, in seconds.
    var seconds: Double
    /// Target length of one sample in nanoseconds (batched operations).
    var sampleNs: Double
    var minSamples: Int
    var maxSamples: Int

    static let full = Budget(seconds: 0.2, sampleNs: 200_000, minSamples: 5, maxSamples: 2000)
    static let quick = Budget(seconds: 0.02, sampleNs: 100_000, minSamples: 3, maxSamples: 200)
}

/// Measures every implementation of a case, interleaved round by round so they see the
/// same machine conditions, and returns one row per implementation.
func measure(_ c: Case, budget: Budget) -> [Row] {
    // Warm up each implementation and find how many operations fill one sample.
    var batch = [Int](repeating: 1, count: c.impls.count)
    for (i, impl) in c.impls.enumerated() {
        impl.prepare?()
        let t0 = now()
        consume(impl.run())
        let one = Double(max(now() - t0, 1))
        if impl.prepare == nil {
            var n = max(1, Int(budget.sampleNs / one))
            // A second, batched estimate (the first call may have been cold).
            let t1 = now()
            for _ in 0..<n { consume(impl.run()) }
            let per = Double(max(now() - t1, 1)) / Double(n)
            n = max(1, Int(budget.sampleNs / per))
            batch[i] = n
        }
    }
    var samples = [[Double]](repeating: [], count: c.impls.count)
    var spent = [Double](repeating: 0, count: c.impls.count)
    let goal = budget.seconds * 1e9
    while true {
        var active = false
        for (i, impl) in c.impls.enumerated() {
            let enough = samples[i].count >= budget.minSamples && spent[i] >= goal
            if enough || samples[i].count >= budget.maxSamples { continue }
            active = true
            impl.prepare?()
            let n = batch[i]
            let t0 = now()
            for _ in 0..<n { consume(impl.run()) }
            let dt = Double(now() - t0)
            spent[i] += dt
            samples[i].append(dt / Double(n) / Double(c.unitsPerOp))
        }
        if !active { break }
    }
    return c.impls.enumerated().map { i, impl in
        let s = samples[i].sorted()
        let median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        let bytesPerUnit = c.bytesPerOp.map { Double($0) / Double(c.unitsPerOp) }
        return Row(
            group: c.group, caseName: c.name, impl: impl.name, medianNs: median, minNs: s.first!,
            maxNs: s.last!, gbps: bytesPerUnit.map { $0 / median }, opsPerS: 1e9 / median,
            extra: c.extra[impl.name] ?? [:])
    }
}

/// An aligned, manually managed byte buffer (benchmarks keep inputs for the whole run).
final class Bytes {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(count: Int, alignment: Int = 64) {
        self.count = count
        pointer = .allocate(byteCount: max(count, 1), alignment: alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
    }
    convenience init(_ bytes: [UInt8]) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { pointer.copyMemory(from: b, byteCount: bytes.count) } }
    }
    var bytes: UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }
    var buffer: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: count) }
    deinit { pointer.deallocate() }
}

/// Human-readable size names used in case names.
func sizeName(_ n: Int) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20)MiB" }
    if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10)KiB" }
    return "\(n)B"
}

