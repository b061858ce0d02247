/// The transports Engine.IO offers.
public enum EngineIOTransport: String, Sendable, Hashable, CaseIterable {
    /// HTTP long-polling: GET waits for packets, POST sends them.
    case polling
    /// One WebSocket carrying one packet per message.
    case websocket
}
