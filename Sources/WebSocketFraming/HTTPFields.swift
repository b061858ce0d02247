/// Small helpers for the HTTP/1.1 field syntax the handshake needs (RFC 9110 §5.6).
enum HTTPFields {
    /// Whether `c` is a `tchar`.
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    /// Whether `s` is a non-empty token.
    static func isToken(_ s: Substring.UTF8View) -> Bool {
        !s.isEmpty && s.allSatisfy(isTokenChar)
    }

    /// Whether `c` is optional whitespace (space or tab).
    static func isOWS(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }

    /// `s` without leading and trailing optional whitespace.
    static func trim(_ s: Substring) -> Substring {
        let u = s.utf8
        guard let first = u.firstIndex(where: { !isOWS($0) }) else { return s[s.endIndex...] }
        let last = u.lastIndex(where: { !isOWS($0) })!
        return Substring(u[first...last])
    }

    /// The elements of a comma-separated list (`#element`), trimmed, empty ones dropped.
    static func listElements(_ value: String) -> [Substring] {
        value.split(separator: ",", omittingEmptySubsequences: false).map(trim).filter { !$0.isEmpty }
    }

    /// ASCII case-insensitive equality.
    static func equalsIgnoringCase(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { lower($0) == lower($1) }
    }

    static func lower(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
    }

    /// Whether a field value holds only visible characters, spaces and tabs (no CR, LF
    /// or NUL that could smuggle a second header).
    static func isSafeValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
