/// One Socket.IO v5 packet. Its text form is
/// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`; binary data is cut out
/// into attachments, each sent as its own binary Engine.IO message after the text, with
/// `{"_placeholder":true,"num":N}` in its place.
public struct SocketIOPacket: Sendable, Hashable {
    /// Socket.IO packet types.
    public enum Kind: UInt8, Sendable {
        case connect = 0, disconnect, event, ack, connectError, binaryEvent, binaryAck
    }

    /// The packet type (`event`/`ack` become their binary forms when encoding binary data).
    public var kind: Kind
    /// The namespace ("/" by default).
    public var namespace: String
    /// The payload: an array for events and acks, an object for connect packets.
    public var data: JSONValue?
    /// The acknowledgement id, for events asking for one and for acks.
    public var id: Int?

    /// Creates a packet.
    public init(_ kind: Kind, namespace: String = "/", data: JSONValue? = nil, id: Int? = nil) {
        self.kind = kind
        self.namespace = namespace
        self.data = data
        self.id = id
    }

    /// Why text is not a valid Socket.IO packet.
    public struct DecodeError: Error, Sendable, CustomStringConvertible {
        /// What was wrong.
        public let reason: String
        /// The reason.
        public var description: String { reason }
    }

    /// Most binary attachments one packet may announce (each is held until it arrives).
    public static let maxAttachments = 1000

    // MARK: Encoding

    /// The text part and the binary attachments, in order.
    public func encode() -> (text: String, attachments: [[UInt8]]) {
        var attachments: [[UInt8]] = []
        var json = ""
        if let data {
            JSONText.write(data, into: &json) { bytes in
                attachments.append(bytes)
                return "{\"_placeholder\":true,\"num\":\(attachments.count - 1)}"
            }
        }
        var kind = self.kind
        if !attachments.isEmpty {
            if kind == .event { kind = .binaryEvent }
            if kind == .ack { kind = .binaryAck }
        }
        var out = String(kind.rawValue)
        if kind == .binaryEvent || kind == .binaryAck { out += "\(attachments.count)-" }
        if namespace != "/" { out += namespace + "," }
        if let id { out += String(id) }
        out += json
        return (out, attachments)
    }

    /// The Engine.IO message packets carrying this packet: the text, then each
    /// attachment as a binary message.
    public func engineIOPackets() -> [EngineIOPacket] {
        let (text, attachments) = encode()
        return [EngineIOPacket(.message, .text(text))] + attachments.map { EngineIOPacket(.message, .binary($0)) }
    }

    // MARK: Decoding

    /// Decodes the text part. A binary packet comes back with its attachment count;
    /// complete it with `reconstruct(attachments:)` once they arrived.
    public static func decode(_ text: String) throws(DecodeError) -> (packet: SocketIOPacket, attachments: Int) {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first >= 0x30, let kind = Kind(rawValue: first &- 0x30) else {
            throw DecodeError(reason: "unknown packet type")
        }
        var at = 1
        var attachments = 0
        if kind == .binaryEvent || kind == .binaryAck {
            let start = at
            while at < bytes.count, isDigit(bytes[at]), at - start < 5 { at += 1 }
            guard at > start, at < bytes.count, bytes[at] == UInt8(ascii: "-"),
                  let n = Int(String(decoding: bytes[start..<at], as: UTF8.self)), n <= maxAttachments
            else { throw DecodeError(reason: "bad attachment count") }
            attachments = n
            at += 1
        }
        var namespace = "/"
        if at < bytes.count, bytes[at] == UInt8(ascii: "/") {
            let start = at
            while at < bytes.count, bytes[at] != UInt8(ascii: ",") { at += 1 }
            namespace = String(decoding: bytes[start..<at], as: UTF8.self)
            if at < bytes.count { at += 1 }
        }
        var id: Int?
        let idStart = at
        while at < bytes.count, isDigit(bytes[at]) { at += 1 }
        if at > idStart {
            guard at - idStart <= 15, let n = Int(String(decoding: bytes[idStart..<at], as: UTF8.self)) else {
                throw DecodeError(reason: "bad ack id")
            }
            id = n
        }
        var data: JSONValue?
        if at < bytes.count {
            do {
                data = try JSONText.parse(bytes[at...])
            } catch {
                throw DecodeError(reason: error.description)
            }
        }
        let packet = SocketIOPacket(kind, namespace: namespace, data: data, id: id)
        try packet.validate(attachments: attachments)
        return (packet, attachments)
    }

    /// Checks the payload shape the protocol requires for each type.
    private func validate(attachments: Int) throws(DecodeError) {
        switch kind {
        case .connect:
            guard data == nil || data?.objectValue != nil else { throw DecodeError(reason: "CONNECT payload must be an object") }
        case .connectError:
            // An object ({"message": ...}) or, from older servers, a string; a number
            // would read back as an ack id.
            guard data?.objectValue != nil || data?.stringValue != nil else {
                throw DecodeError(reason: "CONNECT_ERROR payload must be an object or a string")
            }
        case .disconnect:
            guard data == nil else { throw DecodeError(reason: "DISCONNECT carries no payload") }
        case .event, .binaryEvent:
            guard let args = data?.arrayValue, args.first?.stringValue != nil else {
                throw DecodeError(reason: "EVENT payload must be an array starting with the event name")
            }
        case .ack, .binaryAck:
            guard data?.arrayValue != nil, id != nil else { throw DecodeError(reason: "ACK needs an id and an array") }
        }
    }

    /// Puts the attachments in place of their placeholders; the packet becomes a plain
    /// event or ack with binary values inside.
    public func reconstruct(attachments: [[UInt8]]) throws(DecodeError) -> SocketIOPacket {
        var packet = self
        if let data { packet.data = try Self.fill(data, attachments) }
        if packet.kind == .binaryEvent { packet.kind = .event }
        if packet.kind == .binaryAck { packet.kind = .ack }
        return packet
    }

    static func fill(_ value: JSONValue, _ attachments: [[UInt8]]) throws(DecodeError) -> JSONValue {
        switch value {
        case .array(let a):
            var out: [JSONValue] = []
            out.reserveCapacity(a.count)
            for e in a { out.append(try fill(e, attachments)) }
            return .array(out)
        case .object(let o):
            if o["_placeholder"] == .bool(true) {
                guard let n = o["num"]?.intValue, attachments.indices.contains(n) else {
                    throw DecodeError(reason: "placeholder refers to a missing attachment")
                }
                return .binary(attachments[n])
            }
            var out: [String: JSONValue] = [:]
            for (k, v) in o { out[k] = try fill(v, attachments) }
            return .object(out)
        default:
            return value
        }
    }

    /// Replaces binary values with numbered placeholders; returns the attachments.
    static func deconstruct(_ value: JSONValue, into attachments: inout [[UInt8]]) -> JSONValue {
        switch value {
        case .binary(let bytes):
            attachments.append(bytes)
            return ["_placeholder": true, "num": .number(Double(attachments.count - 1))]
        case .array(let a):
            return .array(a.map { deconstruct($0, into: &attachments) })
        case .object(let o):
            return .object(o.mapValues { deconstruct($0, into: &attachments) })
        default:
            return value
        }
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
}
