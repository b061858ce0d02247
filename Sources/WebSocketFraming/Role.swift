import CWebSocket

/// Which end of a connection a parser or writer serves; decides the masking rules.
public enum Role: Sendable, Hashable {
    /// Receives masked frames and sends unmasked ones.
    case server
    /// Receives unmasked frames and sends masked ones.
    case client

    var cValue: cws_role { self == .server ? CWS_ROLE_SERVER : CWS_ROLE_CLIENT }
}
