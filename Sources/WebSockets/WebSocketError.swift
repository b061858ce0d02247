import WebSocketFraming

/// Why a WebSocket operation or connection failed.
public enum WebSocketError: Error, Sendable, CustomStringConvertible {
    /// The operation is not allowed in the current state (the browser's InvalidStateError).
    case invalidState(String)
    /// An invalid close code (the browser's InvalidAccessError).
    case invalidAccess(String)
    /// An invalid argument such as a too-long close reason (the browser's SyntaxError).
    case syntax(String)
    /// The URL cannot be used (scheme, host, port).
    case invalidURL(String)
    /// Connecting failed (DNS, TCP, TLS, timeout).
    case connectFailed(String)
    /// The server refused or botched the opening handshake.
    case handshakeFailed(HandshakeError)
    /// The server's permessage-deflate answer was unacceptable (we close with 1010).
    case extensionNegotiationFailed(String)
    /// The peer broke the protocol; we closed with the error's close code.
    case protocolViolation(FramingError)
    /// A timer ran out (ping, close handshake, idle).
    case timeout(String)
    /// The outbound queue passed `maxBufferedBytes`.
    case bufferOverflow(Int)
    /// The connection was closed (by either side) before the operation completed.
    case closed(code: UInt16, reason: String)
    /// The connection was aborted (closed while connecting, TCP reset).
    case aborted(String)

    public var description: String {
        switch self {
        case .invalidState(let s): "invalid state: \(s)"
        case .invalidAccess(let s): "invalid access: \(s)"
        case .syntax(let s): "syntax error: \(s)"
        case .invalidURL(let s): "invalid URL: \(s)"
        case .connectFailed(let s): "connect failed: \(s)"
        case .handshakeFailed(let e): "\(e)"
        case .extensionNegotiationFailed(let s): "extension negotiation failed: \(s)"
        case .protocolViolation(let e): "protocol violation: \(e)"
        case .timeout(let s): "timeout: \(s)"
        case .bufferOverflow(let n): "outbound buffer overflow (\(n) bytes queued)"
        case .closed(let code, let reason): "closed (\(code)\(reason.isEmpty ? "" : " \(reason)"))"
        case .aborted(let s): "aborted: \(s)"
        }
    }
}
