import SeededRandom
import CWebSocket
import Testing

// Helpers that take Swift strings byte for byte (no NUL terminators involved: every
// function under test takes an explicit length).

private func cchars(_ s: String) -> [CChar] {
    s.utf8.map { CChar(bitPattern: $0) }
}

private func string(_ chars: [CChar]) -> String {
    String(decoding: chars.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func accept(_ key: String) -> String? {
    let k = cchars(key)
    var out = [CChar](repeating: 0, count: Int(CWS_ACCEPT_LENGTH))
    guard cws_accept_key(k, k.count, &out) == CWS_OK else { return nil }
    return string(out)
}

private func keyValid(_ key: String) -> Bool {
    let k = cchars(key)
    return cws_key_valid(k, k.count)
}

private func encode(_ bytes: [UInt8]) -> String {
    var out = [CChar](repeating: 0, count: 4 * ((bytes.count + 2) / 3))
    let n = cws_base64_encode(&out, bytes, bytes.count)
    return string(Array(out[0..<n]))
}

/// Decoded bytes, or nil when cws_base64_decode reports failure.
private func decode(_ text: String, capacity: Int? = nil) -> [UInt8]? {
    let t = cchars(text)
    let cap = capacity ?? (t.count / 4 * 3)
    var out = [UInt8](repeating: 0, count: max(cap, 1))
    let n = cws_base64_decode(&out, cap, t, t.count)
    if n == -1 { return nil }  // (size_t)-1 arrives as Int -1
    return Array(out[0..<n])
}

private func keyNumber(_ key: String) -> (cws_status, UInt32) {
    let k = cchars(key)
    var n: UInt32 = 0
    let st = cws_hixie76_key_number(k, k.count, &n)
    return (st, n)
}

private func hixieResponse(_ key1: String, _ key2: String, _ body: String) -> (cws_status, String) {
    let k1 = cchars(key1), k2 = cchars(key2), b = Array(body.utf8)
    precondition(b.count == 8)
    var out = [UInt8](repeating: 0, count: 16)
    let st = cws_hixie76_response(k1, k1.count, k2, k2.count, b, &out)
    return (st, String(decoding: out, as: UTF8.self))
}


@Suite struct HandshakeTests {
    // MARK: Sec-WebSocket-Accept

    @Test func acceptKeyMatchesRFC6455Example() {
        // RFC 6455 section 1.3.
        #expect(accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func acceptKeyForOtherLengths() {
        // Expected values computed independently with `openssl sha1 -binary | base64`;
        // 64 and 65 straddle the switch from one concatenated update to two updates.
        #expect(accept("") == "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=")
        #expect(accept(String(repeating: "a", count: 64)) == "jGdebzmm20QI0DmM5dGETWg7dwQ=")
        #expect(accept(String(repeating: "b", count: 65)) == "yghS0d9S7WjQPCWVyTIDnfZzRQI=")
        #expect(accept(String(repeating: "x", count: 200)) == "2/xdrRDawKrkzT3zWJGBWn134JI=")
    }

    @Test func acceptKeyIsStableAcrossCalls() {
        // The per-thread digest context is reused; a stale state would change the result.
        for _ in 0..<100 {
            #expect(accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        }
    }

    @Test func acceptKeyRejectsNull() {
        var out = [CChar](repeating: 0, count: Int(CWS_ACCEPT_LENGTH))
        #expect(cws_accept_key(nil, 24, &out) == CWS_ERR_INVALID_ARGUMENT)
        let k = cchars("dGhlIHNhbXBsZSBub25jZQ==")
        #expect(cws_accept_key(k, k.count, nil) == CWS_ERR_INVALID_ARGUMENT)
    }

    // MARK: Sec-WebSocket-Key

    @Test func generatedKeysAreValidAndDistinct() {
        var seen = Set<String>()
        for _ in 0..<100 {
            var out = [CChar](repeating: 0, count: Int(CWS_KEY_LENGTH))
            #expect(cws_generate_key(&out) == CWS_OK)
            let key = string(out)
            #expect(key.utf8.count == 24)
            #expect(keyValid(key))
            #expect(decode(key)?.count == 16)
            seen.insert(key)
        }
        #expect(seen.count == 100)
    }

    @Test func keyValidationAcceptsValidKeys() {
        #expect(keyValid("dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(keyValid("AAAAAAAAAAAAAAAAAAAAAA=="))
        #expect(keyValid("/////////////////////w=="))
        #expect(keyValid(encode([UInt8](0..<16))))
    }

    @Test func keyValidationRejectsMalformedKeys() {
        // Wrong length.
        #expect(!keyValid(""))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQ="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQ==="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQ==AAAA"))
        // 24 chars, but 15 or 17 decoded bytes.
        #expect(!keyValid(encode([UInt8](repeating: 7, count: 15))))  // 20 chars
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQAA"))  // 18 bytes, no padding
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQA="))  // 17 bytes
        #expect(!keyValid(encode([UInt8](repeating: 7, count: 17))))  // 24 chars, 17 bytes
        // Bad alphabet (URL-safe characters, punctuation, non-ASCII).
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZ-=="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub2_jZQ=="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25j*Q=="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZé="))
        // Inner whitespace.
        #expect(!keyValid("dGhlIHNhbXBs ZSBub25jZQ="))
        #expect(!keyValid("dGhlIHNhbXBs\tZSBub25jZQ="))
        #expect(!keyValid(" dGhlIHNhbXBsZSBub25jZQ="))
        // Non-canonical last data char: unused low bits set.
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZR=="))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZf=="))
        // Missing or misplaced padding.
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQAB"))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25jZQ"))
        #expect(!keyValid("dGhlIHNhbXBsZSBub25j==ZQ"))
        #expect(!keyValid("========================"))
        #expect(!cws_key_valid(nil, 24))
    }

    // MARK: Base64

    static let rfc4648Vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test func base64EncodesRFC4648Vectors() {
        for (plain, encoded) in Self.rfc4648Vectors {
            #expect(encode(Array(plain.utf8)) == encoded)
        }
    }

    @Test func base64DecodesRFC4648Vectors() {
        for (plain, encoded) in Self.rfc4648Vectors {
            #expect(decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func base64DecodeRejectsMalformedInput() {
        let malformed = [
            "Z", "Zg", "Zg=", "Zm9vY",  // length not a multiple of 4
            "Z===", "====", "=Zg=", "Zg=a", "Zm=v",  // padding in the wrong place
            "Zg==Zm9v", "Zm8=Zm9v",  // padding before the end
            "Zh==", "Zm9=",  // non-canonical trailing bits
            "Zm9v\n", "Zm 9v", "Zm9v    ", " Zm9", // whitespace
            "Zm-v", "Zm_v", "Zm9*", "Zm9\u{0}",  // outside the alphabet
        ]
        for text in malformed {
            #expect(decode(text, capacity: 16) == nil, "\(text.debugDescription)")
        }
    }

    @Test func base64DecodeReportsTooSmallOutputWithoutWriting() {
        let text = cchars("Zm9vYmFy")  // 6 bytes
        for capacity in 0..<6 {
            var out = [UInt8](repeating: 0xAA, count: 16)
            let n = cws_base64_decode(&out, capacity, text, text.count)
            #expect(n == -1)
            #expect(out.allSatisfy { $0 == 0xAA })
        }
        var out = [UInt8](repeating: 0xAA, count: 16)
        #expect(cws_base64_decode(&out, 6, text, text.count) == 6)
        #expect(Array(out[0..<6]) == Array("foobar".utf8))
        #expect(out[6...].allSatisfy { $0 == 0xAA })
        // Padding counts: "Zg==" needs exactly one byte of room.
        let one = cchars("Zg==")
        #expect(cws_base64_decode(&out, 0, one, one.count) == -1)
        #expect(cws_base64_decode(&out, 1, one, one.count) == 1)
    }

    @Test func base64RoundTripsRandomBytes() {
        var rng = SeededRandom(seed: 0x5EED)
        for length in 0...100 {
            for _ in 0..<5 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                let text = encode(bytes)
                #expect(text.utf8.count == 4 * ((length + 2) / 3))
                #expect(decode(text, capacity: length) == bytes)
            }
        }
    }

    // MARK: LEGACY draft-76 (hixie-76)

    // The draft's own example (draft-hixie-thewebsocketprotocol-76, section 1.3).
    // Whitespace is significant: spaces are counted, so double spaces stay double.
    static let draftKey1 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8"
    static let draftKey2 = "1_ tx7X d  <  nw  334J702) 7]o}` 0"

    @Test func hixie76DraftExample() {
        #expect(keyNumber(Self.draftKey1) == (CWS_OK, 1_868_545_188 / 12))
        #expect(keyNumber(Self.draftKey2) == (CWS_OK, 1_733_470_270 / 10))
        let (st, response) = hixieResponse(Self.draftKey1, Self.draftKey2, "Tm[K T2u")
        #expect(st == CWS_OK)
        #expect(response == "fQJ,fN/4F4!~K~MH")
    }

    @Test func hixie76DesignNotesExampleWithDoubleSpaces() {
        let key1 = "4 @1  46546xW%0l 1 5"  // 4146546015 / 5 spaces
        let key2 = "12998 5 Y3 1  .P00"  // 1299853100 / 5 spaces
        #expect(keyNumber(key1) == (CWS_OK, 829_309_203))
        #expect(keyNumber(key2) == (CWS_OK, 259_970_620))
        let (st, response) = hixieResponse(key1, key2, "^n:ds[4U")
        #expect(st == CWS_OK)
        #expect(response == "8jKS'y:G*Co,Wxa-")
    }

    @Test func hixie76DesignNotesExampleAsPrintedWithSingleSpaces() {
        // Collapsing the double spaces breaks the example. Key1 becomes 4146546015 over
        // 4 spaces, not a multiple, so it is rejected.
        #expect(keyNumber("4 @1 46546xW%0l 1 5").0 == CWS_ERR_HANDSHAKE)
        // Key2 becomes 1299853100 over 4 spaces, which happens to divide evenly, so it
        // parses, but to a different number, and the response no longer matches.
        #expect(keyNumber("12998 5 Y3 1 .P00") == (CWS_OK, 324_963_275))
        let (st, response) = hixieResponse("4 @1  46546xW%0l 1 5", "12998 5 Y3 1 .P00", "^n:ds[4U")
        #expect(st == CWS_OK)
        #expect(response != "8jKS'y:G*Co,Wxa-")
    }

    @Test func hixie76RejectsBadKeys() {
        #expect(keyNumber("").0 == CWS_ERR_HANDSHAKE)
        #expect(keyNumber("1234567").0 == CWS_ERR_HANDSHAKE)  // no spaces
        #expect(keyNumber("a b c").0 == CWS_ERR_HANDSHAKE)  // no digits
        #expect(keyNumber("   ").0 == CWS_ERR_HANDSHAKE)  // no digits
        #expect(keyNumber("7 x x").0 == CWS_ERR_HANDSHAKE)  // 7 not a multiple of 2
        #expect(keyNumber("4294967296 ").0 == CWS_ERR_HANDSHAKE)  // 2^32
        #expect(keyNumber("99999999999999999999999 ").0 == CWS_ERR_HANDSHAKE)
        #expect(keyNumber("1 8446744073709551616 0").0 == CWS_ERR_HANDSHAKE)  // 2^64 * 10
        // A bad key fails the whole response.
        let (st, _) = hixieResponse("1234", Self.draftKey2, "Tm[K T2u")
        #expect(st == CWS_ERR_HANDSHAKE)
    }

    @Test func hixie76AcceptsBoundaryNumbers() {
        #expect(keyNumber("4294967295 ") == (CWS_OK, 4_294_967_295))
        #expect(keyNumber("0 ") == (CWS_OK, 0))
        #expect(keyNumber("00000000000000000000042 x ") == (CWS_OK, 21))
    }

    @Test func hixie76RejectsNull() {
        let k = cchars(Self.draftKey1)
        #expect(cws_hixie76_key_number(k, k.count, nil) == CWS_ERR_INVALID_ARGUMENT)
        var n: UInt32 = 0
        #expect(cws_hixie76_key_number(nil, 0, &n) == CWS_ERR_INVALID_ARGUMENT)
    }
}
