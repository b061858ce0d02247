/// An event received from the other side, on the client or on the server: its name,
/// its arguments, and a way to acknowledge it when the sender asked for that.
public struct SocketIOEvent: Sendable, CustomStringConvertible {
    /// The event name.
    public let name: String
    /// The arguments after the name (binary values are `.binary`).
    public let args: [JSONValue]
    private let acknowledge: (@Sendable ([JSONValue]) -> Void)?

    /// Creates an event; `ack` answers the sender (nil when it did not ask).
    public init(name: String, args: [JSONValue], ack: (@Sendable ([JSONValue]) -> Void)? = nil) {
        self.name = name
        self.args = args
        self.acknowledge = ack
    }

    /// The first argument, or null (most events carry one value).
    public var data: JSONValue { args.first ?? .null }

    /// True when the sender waits for an acknowledgement.
    public var wantsAck: Bool { acknowledge != nil }

    /// Answers the sender's acknowledgement callback (only the first call counts; does
    /// nothing when no ack was asked for).
    public func ack(_ args: JSONValue...) { acknowledge?(args) }

    /// Answers with an argument list.
    public func ack(with args: [JSONValue]) { acknowledge?(args) }

    /// The arguments as JSON text, e.g. `["hello",1]`.
    public var description: String {
        args.count == 1 ? args[0].description : JSONValue.array(args).description
    }
}

/// Errors of the Socket.IO layer.
public enum SocketIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No acknowledgement arrived in time.
    case ackTimeout
    /// The connection closed before the acknowledgement arrived.
    case disconnected
    /// The server refused the namespace connection (middleware or unknown namespace).
    case connectError(message: String, data: JSONValue?)
    /// An event name the protocol reserves ("connect", "disconnect", ...).
    case reservedEventName(String)
    /// The peer sent something that is not Socket.IO / Engine.IO.
    case protocolError(String)
    /// The transport failed (connect refused, HTTP error, WebSocket closed).
    case transport(String)

    /// A readable description.
    public var description: String {
        switch self {
        case .ackTimeout: return "acknowledgement timed out"
        case .disconnected: return "disconnected before the acknowledgement arrived"
        case .connectError(let message, _): return "connection refused: \(message)"
        case .reservedEventName(let name): return "\"\(name)\" is a reserved event name"
        case .protocolError(let reason): return "protocol error: \(reason)"
        case .transport(let reason): return "transport error: \(reason)"
        }
    }
}

/// Names the protocol uses itself; user code may not emit them.
enum ReservedEvents {
    static let names: Set<String> = [
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    ]
}
