/// One Engine.IO v4 packet: a type and a text or binary payload. Over WebSocket each
/// message is one packet (binary messages are `message` packets); over HTTP
/// long-polling packets are joined with the record separator 0x1E and binary payloads
/// travel as `b` + base64.
public struct EngineIOPacket: Sendable, Hashable {
    /// Engine.IO packet types (the first character of a text packet).
    public enum Kind: UInt8, Sendable {
        case open = 0, close, ping, pong, message, upgrade, noop
    }

    /// A text or binary payload.
    public enum Payload: Sendable, Hashable {
        case text(String)
        case binary([UInt8])
    }

    /// The packet type.
    public var kind: Kind
    /// The payload (empty text for most control packets).
    public var payload: Payload

    /// Creates a packet.
    public init(_ kind: Kind, _ payload: Payload = .text("")) {
        self.kind = kind
        self.payload = payload
    }

    /// Why bytes are not an Engine.IO packet.
    public struct DecodeError: Error, Sendable, CustomStringConvertible {
        /// What was wrong.
        public let reason: String
        /// The reason.
        public var description: String { reason }
    }

    // MARK: WebSocket transport

    /// The text of a WebSocket message carrying this packet (binary payloads go as a
    /// binary message with `webSocketBinary` instead).
    public var webSocketText: String? {
        guard case .text(let s) = payload else { return nil }
        return String(kind.rawValue) + s
    }

    /// Decodes a WebSocket text message.
    public static func decode(text: String) throws(DecodeError) -> EngineIOPacket {
        guard let first = text.utf8.first, first >= 0x30, let kind = Kind(rawValue: first &- 0x30) else {
            throw DecodeError(reason: "unknown packet type")
        }
        // Drop the type byte, not the first Character: "4" followed by a combining mark
        // is one Character, and the mark belongs to the data.
        return EngineIOPacket(kind, .text(String(Substring(text.utf8.dropFirst()))))
    }

    /// A WebSocket binary message is a message packet with binary data.
    public static func decode(binary: [UInt8]) -> EngineIOPacket {
        EngineIOPacket(.message, .binary(binary))
    }

    // MARK: Long-polling transport

    /// The record separator between packets of one polling payload.
    static let separator: Character = "\u{1E}"

    /// Encodes packets as one polling body.
    public static func encodePayload(_ packets: [EngineIOPacket]) -> String {
        var out = ""
        for (i, p) in packets.enumerated() {
            if i > 0 { out.append(separator) }
            switch p.payload {
            case .text(let s): out += String(p.kind.rawValue) + s
            case .binary(let b): out += "b" + Base64.encode(b)
            }
        }
        return out
    }

    /// Decodes a polling body into its packets.
    public static func decodePayload(_ body: String) throws(DecodeError) -> [EngineIOPacket] {
        guard !body.isEmpty else { throw DecodeError(reason: "empty payload") }
        var packets: [EngineIOPacket] = []
        for part in body.split(separator: separator, omittingEmptySubsequences: false) {
            if part.utf8.first == UInt8(ascii: "b") {
                guard let bytes = Base64.decode(Substring(part.utf8.dropFirst())) else { throw DecodeError(reason: "bad base64 in binary packet") }
                packets.append(EngineIOPacket(.message, .binary(bytes)))
            } else {
                packets.append(try decode(text: String(part)))
            }
        }
        return packets
    }
}

/// Standard base64 (RFC 4648 §4) with padding, as Engine.IO's polling transport uses.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded or unpadded base64; nil on any other character.
    static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count / 4 * 3)
        var acc: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "=") { padding += 1; continue }
            guard padding == 0 else { return nil }
            let v = reverse[Int(c)]
            guard v != 0xFF else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        guard padding <= 2, bits < 6 else { return nil }
        return out
    }
}
