import NIOCore

/// The server's Engine.IO open packet:
/// `0{"sid":"...","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`.
struct EngineIOHandshake: Sendable, Equatable {
    /// The session id, sent back as `sid` on every later request.
    var sid: String
    /// Transports the server lets this session upgrade to.
    var upgrades: [String]
    /// How often the server pings.
    var pingInterval: TimeAmount
    /// How long the server waits for a pong (the client allows this much extra for a ping).
    var pingTimeout: TimeAmount
    /// The largest polling payload (bytes) the server accepts.
    var maxPayload: Int

    /// Parses the JSON of an open packet; nil when a required field is missing or odd.
    init?(json: String) {
        guard let value = try? JSONText.parse(json),
              let sid = value["sid"]?.stringValue, !sid.isEmpty, sid.utf8.count <= 256,
              let interval = value["pingInterval"]?.intValue, interval > 0, interval <= 86_400_000,
              let timeout = value["pingTimeout"]?.intValue, timeout > 0, timeout <= 86_400_000
        else { return nil }
        self.sid = sid
        upgrades = value["upgrades"]?.arrayValue?.compactMap(\.stringValue) ?? []
        pingInterval = .milliseconds(Int64(interval))
        pingTimeout = .milliseconds(Int64(timeout))
        // Absent in Engine.IO v3-style servers; socket.io's default is 1 MB.
        let payload = value["maxPayload"]?.intValue ?? 1_000_000
        maxPayload = payload > 0 ? payload : 1_000_000
    }
}
