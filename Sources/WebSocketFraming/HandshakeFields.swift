/// The header fields the handshake looks at, gathered from a header list in one pass
/// (names compared without case, values trimmed, several lines kept in order).
struct HandshakeFields {
    /// A field the handshake reads.
    enum Name: Int, CaseIterable {
        case host, upgrade, connection, contentLength, transferEncoding, origin
        case version, key, accept, protocols, extensions

        /// The lowercase field name.
        var text: String {
            switch self {
            case .host: "host"
            case .upgrade: "upgrade"
            case .connection: "connection"
            case .contentLength: "content-length"
            case .transferEncoding: "transfer-encoding"
            case .origin: "origin"
            case .version: "sec-websocket-version"
            case .key: "sec-websocket-key"
            case .accept: "sec-websocket-accept"
            case .protocols: "sec-websocket-protocol"
            case .extensions: "sec-websocket-extensions"
            }
        }

        /// The names as bytes, looked up by length first: most request headers
        /// (User-Agent, Accept-Language...) are rejected on their length alone.
        static let byLength: [Int: [(Name, [UInt8])]] = Dictionary(
            grouping: allCases.map { ($0, Array($0.text.utf8)) }, by: { $0.1.count })

        init?(_ name: String) {
            guard let candidates = Self.byLength[name.utf8.count] else { return nil }
            for (field, bytes) in candidates where HTTPFields.equalsIgnoringCase(name.utf8, bytes) {
                self = field
                return
            }
            return nil
        }
    }

    private var values = [[Substring]](repeating: [], count: Name.allCases.count)

    init(_ headers: [(name: String, value: String)]) {
        for h in headers {
            if let name = Name(h.name) { values[name.rawValue].append(HTTPFields.trim(Substring(h.value))) }
        }
    }

    /// Every value of `name`, trimmed, in order.
    subscript(_ name: Name) -> [Substring] { values[name.rawValue] }
}
