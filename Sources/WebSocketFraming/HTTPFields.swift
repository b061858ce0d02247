/// Small helpers for the HTTP/1.1 field syntax the handshake needs (RFC 9110 §5.6).
enum HTTPFields {
    /// Whether `c` is a `tchar`.
    @inline(__always)
    static func isTokenChar(_ c: UInt8) -> Bool { tokenTable[Int(c)] }

    /// `tchar` membership by byte: letters, digits and ``!#$%&'*+-.^_`|~``.
    private static let tokenTable: [Bool] = (0..<256).map { c in
        switch c {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        default: "!#$%&'*+-.^_`|~".utf8.contains(UInt8(c))
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
    static func listElements(_ value: Substring) -> [Substring] {
        value.split(separator: ",", omittingEmptySubsequences: false).map(trim).filter { !$0.isEmpty }
    }

    /// ASCII case-insensitive equality.
    static func equalsIgnoringCase(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        equalsIgnoringCase(a.utf8, Array(b.utf8))
    }

    /// ASCII case-insensitive equality of UTF-8 bytes with lowercase-or-not `b`.
    static func equalsIgnoringCase(_ a: some Collection<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        for c in a {
            if lower(c) != lower(b[i]) { return false }
            i += 1
        }
        return true
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
