/// Turns the Engine.IO messages of one connection back into Socket.IO packets: a text
/// message is a packet, unless it announces binary attachments, which are then the next
/// binary messages. Used by both the client and the server.
public struct SocketIOPacketReader: Sendable {
    private var partial: SocketIOPacket?
    private var expected = 0
    private var attachments: [[UInt8]] = []
    private var attachmentBytes = 0
    /// Most bytes of attachments held for one packet.
    public let maxAttachmentBytes: Int

    /// Creates a reader holding at most `maxAttachmentBytes` of attachments per packet.
    public init(maxAttachmentBytes: Int = 100 << 20) {
        self.maxAttachmentBytes = maxAttachmentBytes
    }

    /// Feeds one Engine.IO message payload; returns a packet once it is complete.
    public mutating func receive(_ payload: EngineIOPacket.Payload) throws(SocketIOPacket.DecodeError) -> SocketIOPacket? {
        switch payload {
        case .text(let text):
            guard partial == nil else { throw SocketIOPacket.DecodeError(reason: "text packet while waiting for attachments") }
            let (packet, count) = try SocketIOPacket.decode(text)
            if count == 0 { return try packet.kind == .binaryEvent || packet.kind == .binaryAck ? packet.reconstruct(attachments: []) : packet }
            partial = packet
            expected = count
            return nil
        case .binary(let bytes):
            guard let packet = partial else { throw SocketIOPacket.DecodeError(reason: "unexpected binary message") }
            attachmentBytes += bytes.count
            guard attachmentBytes <= maxAttachmentBytes else {
                throw SocketIOPacket.DecodeError(reason: "attachments exceed \(maxAttachmentBytes) bytes")
            }
            attachments.append(bytes)
            guard attachments.count == expected else { return nil }
            defer { partial = nil; attachments = []; attachmentBytes = 0; expected = 0 }
            return try packet.reconstruct(attachments: attachments)
        }
    }
}
