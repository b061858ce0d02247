import WebSockets

/// The error answers of an Engine.IO server, with the codes socket.io clients know.
enum EngineIOErrors: Int {
    case unknownTransport = 0
    case unknownSession = 1
    case badHandshakeMethod = 2
    case badRequest = 3
    case forbidden = 4
    case unsupportedVersion = 5

    var message: String {
        switch self {
        case .unknownTransport: return "Transport unknown"
        case .unknownSession: return "Session ID unknown"
        case .badHandshakeMethod: return "Bad handshake method"
        case .badRequest: return "Bad request"
        case .forbidden: return "Forbidden"
        case .unsupportedVersion: return "Unsupported protocol version"
        }
    }

    /// The JSON body `{"code":N,"message":"..."}` with status 400 (403 for forbidden).
    static func response(_ error: EngineIOErrors) -> HTTPResponse {
        let body: JSONValue = ["code": .number(Double(error.rawValue)), "message": .string(error.message)]
        return HTTPResponse(status: error == .forbidden ? 403 : 400,
                            headers: [("Content-Type", "application/json")], body: Array(body.description.utf8))
    }
}
