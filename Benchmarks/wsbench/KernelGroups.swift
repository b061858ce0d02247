import SeededRandom
import CWebSocket
import NIOCore
import NIOWebSocket
#if canImport(Glibc)
import Glibc
#endif

/// `mask`: XOR with a key over one buffer, per size.
func maskCases() -> [Case] {
    var rng = SeededRandom(seed: 1)
    var key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
    let nioKey = WebSocketMaskingKey(key)!
    return [16, 125, 1 << 10, 16 << 10, 1 << 20, 16 << 20].map { n in
        let data = Bytes(rng.bytes(n))
        let dst = Bytes(count: n)
        var nio = ByteBuffer(bytes: rng.bytes(n))
        let keyPtr = UnsafeMutablePointer<UInt8>.allocate(capacity: 4)
        keyPtr.initialize(from: &key, count: 4)
        return Case(
            group: "mask", name: sizeName(n), bytesPerOp: n,
            impls: [
                Impl(name: "engine") {
                    cws_mask(data.bytes, n, keyPtr, 0)
                    return Int(data.bytes[n - 1])
                },
                Impl(name: "engine-scalar") {
                    cws_mask_isa(CWS_ISA_SCALAR, data.bytes, data.bytes, n, keyPtr, 0)
                    return Int(data.bytes[n - 1])
                },
                Impl(name: "nio") {
                    nio.webSocketUnmask(nioKey)
                    return Int(nio.getInteger(at: n - 1, as: UInt8.self)!)
                },
                Impl(name: "memcpy") {
                    memcpy(dst.pointer, data.pointer, n)
                    return Int(dst.bytes[n - 1])
                },
            ])
    }
}

/// Text of a given character mix, `n` bytes long (truncated at a character boundary and
/// padded with ASCII).
func textInput(_ kind: String, bytes n: Int) -> [UInt8] {
    var rng = SeededRandom(seed: 42)
    var out: [UInt8] = []
    out.reserveCapacity(n + 4)
    while out.count < n {
        let r = Int.random(in: 0..<100, using: &rng)
        let scalar: UInt32
        switch kind {
        case "ascii": scalar = UInt32.random(in: 0x20...0x7E, using: &rng)
        case "latin": scalar = r < 40 ? UInt32.random(in: 0x61...0x7A, using: &rng) : UInt32.random(in: 0xA0...0x17F, using: &rng)
        case "cjk": scalar = r < 10 ? 0x20 : UInt32.random(in: 0x4E00...0x9FFF, using: &rng)
        default: scalar = r < 10 ? 0x20 : UInt32.random(in: 0x1F300...0x1F64F, using: &rng)
        }
        let s = Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
        if out.count + s.count > n { break }
        out += s
    }
    while out.count < n { out.append(0x20) }
    return out
}

/// `utf8`: validating a whole buffer of text, per character mix and size.
func utf8Cases() -> [Case] {
    var cases: [Case] = []
    for kind in ["ascii", "latin", "cjk", "emoji"] {
        for n in [1 << 10, 64 << 10, 1 << 20] {
            let text = textInput(kind, bytes: n)
            let data = Bytes(text)
            let dst = Bytes(count: n)
            let buffer = UnsafeBufferPointer(start: data.bytes, count: n)
            func engine(_ isa: cws_isa?) -> () -> Int {
                {
                    var state = cws_utf8()
                    var bad = 0
                    let ok = isa.map { cws_utf8_feed_isa($0, &state, data.bytes, n, &bad) }
                        ?? cws_utf8_feed(&state, data.bytes, n, &bad)
                    precondition(ok && cws_utf8_finish(&state), "benchmark text must be valid")
                    return 1
                }
            }
            cases.append(Case(
                group: "utf8", name: "\(kind)-\(sizeName(n))", bytesPerOp: n,
                impls: [
                    Impl(name: "engine", run: engine(nil)),
                    Impl(name: "engine-scalar", run: engine(CWS_ISA_SCALAR)),
                    Impl(name: "stdlib") { String(validating: buffer, as: UTF8.self)!.utf8.count },
                    Impl(name: "memcpy") {
                        memcpy(dst.pointer, data.pointer, n)
                        return Int(dst.bytes[n - 1])
                    },
                ]))
        }
    }
    return cases
}

/// `handshake`: the accept key, and validating a browser's upgrade request.
func handshakeCases() -> [Case] {
    let key = Array("dGhlIHNhbXBsZSBub25jZQ==".utf8).map { CChar(bitPattern: $0) }
    let out = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CWS_ACCEPT_LENGTH))
    let headers: [(name: String, value: String)] = [
        ("Host", "example.com:8080"),
        ("Connection", "Upgrade"),
        ("Pragma", "no-cache"),
        ("Cache-Control", "no-cache"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"),
        ("Upgrade", "websocket"),
        ("Origin", "https://example.com"),
        ("Sec-WebSocket-Version", "13"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ]
    return [
        Case(group: "handshake", name: "accept", impls: [
            Impl(name: "engine") {
                precondition(cws_accept_key(key, key.count, out) == CWS_OK)
                return Int(out[0])
            },
        ]),
        Case(group: "handshake", name: "upgrade-request", impls: [
            Impl(name: "engine") {
                let r = try! Handshake.validateUpgradeRequest(method: "GET", version: (1, 1), headers: headers)
                return r.extensions.count
            },
        ]),
    ]
}

import WebSocketFraming
