import CWebSocket

/// LEGACY: the draft-76 ("hixie-76") handshake that pre-RFC browsers spoke, as in the
/// project's original design notes. Off by default everywhere; enable it only for old
/// clients. It has no masking and weak framing; prefer RFC 6455.
public enum Hixie76 {
    /// The number a `Sec-WebSocket-Key1`/`Key2` value encodes: its digits divided by
    /// its spaces. Nil when it has no spaces, no digits, overflows 32 bits, or is not
    /// an exact multiple of the spaces.
    public static func keyNumber(_ key: String) -> UInt32? {
        var key = key
        var number: UInt32 = 0
        let status = key.withUTF8 { k in
            k.withMemoryRebound(to: CChar.self) { cws_hixie76_key_number($0.baseAddress, $0.count, &number) }
        }
        return status == CWS_OK ? number : nil
    }

    /// The 16-byte body of the server's response: MD5 of both key numbers and the
    /// request's 8-byte body. Nil when a key is malformed or the body is not 8 bytes.
    public static func response(key1: String, key2: String, body: [UInt8]) -> [UInt8]? {
        guard body.count == 8 else { return nil }
        var k1 = key1, k2 = key2
        var out = [UInt8](repeating: 0, count: 16)
        let status = k1.withUTF8 { a in
            k2.withUTF8 { b in
                a.withMemoryRebound(to: CChar.self) { a in
                    b.withMemoryRebound(to: CChar.self) { b in
                        cws_hixie76_response(a.baseAddress, a.count, b.baseAddress, b.count, body, &out)
                    }
                }
            }
        }
        return status == CWS_OK ? out : nil
    }
}
