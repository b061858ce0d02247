/// Reconnection delays: exponential backoff with jitter, computed as socket.io-client
/// does. The n-th delay (n from 0) is `min * 2^n`, moved up or down by a random part of
/// up to `jitter` of itself, then capped at `max`.
struct Backoff: Sendable {
    /// The first delay, in milliseconds.
    var minMilliseconds: Double
    /// The largest delay, in milliseconds.
    var maxMilliseconds: Double
    /// The jitter fraction (0...1).
    var jitter: Double
    /// Failed attempts so far (the exponent of the next delay).
    private(set) var attempts = 0

    init(minMilliseconds: Double, maxMilliseconds: Double, jitter: Double) {
        self.minMilliseconds = max(0, minMilliseconds)
        self.maxMilliseconds = max(self.minMilliseconds, maxMilliseconds)
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The next delay in milliseconds; counts an attempt. `random` is in [0, 1): one
    /// draw decides both the size of the deviation and (by its first decimal digit's
    /// parity) its direction.
    mutating func nextDelay(random: Double = Double.random(in: 0..<1)) -> Int {
        // The exponent is capped: past 2^31 the cap at `max` decides anyway.
        var ms = minMilliseconds * Double(1 << min(attempts, 31))
        attempts += 1
        if jitter > 0 {
            let deviation = (random * jitter * ms).rounded(.down)
            ms = Int((random * 10).rounded(.down)) & 1 == 0 ? ms - deviation : ms + deviation
        }
        return Int(min(ms, maxMilliseconds))
    }

    /// Starts over after a successful connection (or giving up).
    mutating func reset() { attempts = 0 }
}
