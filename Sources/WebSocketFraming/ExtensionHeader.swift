/// One extension in a `Sec-WebSocket-Extensions` header (RFC 6455 §9.1), such as
/// `permessage-deflate; client_max_window_bits`.
public struct ExtensionOffer: Hashable, Sendable, CustomStringConvertible {
    /// A parameter: a name and an optional value (quoted values are unquoted).
    public struct Parameter: Hashable, Sendable {
        /// The parameter name.
        public var name: String
        /// The value, or nil for a parameter given without one.
        public var value: String?

        /// Creates a parameter.
        public init(name: String, value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    /// The extension token, such as `permessage-deflate`.
    public var name: String
    /// The parameters in the order they were written (duplicates kept, so a negotiator
    /// can reject them).
    public var parameters: [Parameter]

    /// Creates an extension offer.
    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The header form, `name; p1; p2=v`.
    public var description: String {
        ([name] + parameters.map { p in p.value.map { "\(p.name)=\($0)" } ?? p.name })
            .joined(separator: "; ")
    }

    /// Parses a whole `Sec-WebSocket-Extensions` value (several header lines can be
    /// joined with commas first). Returns nil when it is malformed: a name or parameter
    /// that is not a token, a bad quoted string, a quoted value that is not a token.
    public static func parseList(_ value: String) -> [ExtensionOffer]? {
        var scanner = FieldScanner(Array(value.utf8))
        var offers: [ExtensionOffer] = []
        while true {
            scanner.skipOWS()
            if scanner.atEnd { break }
            if scanner.consume(UInt8(ascii: ",")) { continue }  // empty list elements are allowed
            guard let name = scanner.token() else { return nil }
            var offer = ExtensionOffer(name: name)
            scanner.skipOWS()
            while scanner.consume(UInt8(ascii: ";")) {
                scanner.skipOWS()
                guard let pname = scanner.token() else { return nil }
                scanner.skipOWS()
                var pvalue: String?
                if scanner.consume(UInt8(ascii: "=")) {
                    scanner.skipOWS()
                    if scanner.peek == UInt8(ascii: "\"") {
                        guard let q = scanner.quotedString(), HTTPFields.isToken(Substring(q).utf8) else {
                            return nil
                        }
                        pvalue = q
                    } else {
                        guard let t = scanner.token() else { return nil }
                        pvalue = t
                    }
                    scanner.skipOWS()
                }
                offer.parameters.append(Parameter(name: pname, value: pvalue))
            }
            offers.append(offer)
            scanner.skipOWS()
            if scanner.atEnd { break }
            guard scanner.consume(UInt8(ascii: ",")) else { return nil }
        }
        return offers
    }

    /// Formats a list of extensions for a header.
    public static func format(_ offers: [ExtensionOffer]) -> String {
        offers.map(\.description).joined(separator: ", ")
    }
}

/// A cursor over a header value's bytes.
struct FieldScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[index] }

    mutating func skipOWS() {
        while let c = peek, HTTPFields.isOWS(c) { index += 1 }
    }

    mutating func consume(_ c: UInt8) -> Bool {
        guard peek == c else { return false }
        index += 1
        return true
    }

    mutating func token() -> String? {
        let start = index
        while let c = peek, HTTPFields.isTokenChar(c) { index += 1 }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// A quoted-string with backslash escapes; nil when unterminated or holding a
    /// control character.
    mutating func quotedString() -> String? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while let c = peek {
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek, e == 0x09 || (e >= 0x20 && e != 0x7F) else { return nil }
                index += 1
                out.append(e)
            case 0x09, 0x20...0x7E, 0x80...0xFF:
                out.append(c)
            default:
                return nil
            }
        }
        return nil
    }
}
