import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Memory and descriptor readings of a process, from /proc (Linux).
enum ProcessStats {
    /// Resident set size in KiB (VmRSS of /proc/PID/status), or nil if unreadable.
    static func rssKiB(pid: Int32 = getpid()) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    /// Open file descriptors (entries of /proc/PID/fd), or nil if unreadable.
    static func fdCount(pid: Int32 = getpid()) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) afterwards.
    @discardableResult
    static func raiseFileLimit() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return (Int(clamping: limit.rlim_cur), Int(clamping: limit.rlim_max))
    }
}
