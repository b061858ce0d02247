// Fuzz target hixie76_key: LEGACY draft-76 key parsing (cws_hixie76_key_number) against
// a model written here, and cws_hixie76_response on two keys cut from the input.
//
// Input: [cut byte], then key bytes (any bytes: headers arrive as raw octets). The
// first key is the bytes before the cut (cut % (count + 1)), the second the rest.
import CWebSocket

enum Hixie76KeyFuzz {
    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let cut = input.byte()
        let keys = input.rest()
        let at = Int(cut) % (keys.count + 1)
        let key1 = Array(keys[..<at]), key2 = Array(keys[at...])
        for key in [key1, key2, keys] {
            let got = number(key)
            let want = model(key)
            try fuzzRequire(got == want, "key \(key): engine \(String(describing: got)), model \(String(describing: want))")
        }
        var out = [UInt8](repeating: 0, count: 16)
        let body: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        // Arrays, not buffer pointers: an empty array still passes a valid pointer.
        let c1 = key1.map { CChar(bitPattern: $0) }, c2 = key2.map { CChar(bitPattern: $0) }
        let status = cws_hixie76_response(c1, c1.count, c2, c2.count, body, &out)
        let bothValid = model(key1) != nil && model(key2) != nil
        // MD5 may be missing (a FIPS-only libcrypto): then only CWS_ERR_CRYPTO is fine.
        try fuzzRequire(bothValid ? status == CWS_OK || status == CWS_ERR_CRYPTO : status == CWS_ERR_HANDSHAKE,
                        "response status \(status) for keys valid: \(bothValid)")
    }

    static func number(_ key: [UInt8]) -> UInt32? {
        var n: UInt32 = 0
        let chars = key.map { CChar(bitPattern: $0) }
        let status = cws_hixie76_key_number(chars, chars.count, &n)
        return status == CWS_OK ? n : nil
    }

    /// The draft's rule, section 5.2: the decimal digits (others ignored) make a number,
    /// which must fit 32 bits; divide by the count of spaces (at least one), which must
    /// divide it exactly.
    static func model(_ key: [UInt8]) -> UInt32? {
        let digits = key.filter { $0 >= 0x30 && $0 <= 0x39 }.drop { $0 == 0x30 }
        let spaces = key.filter { $0 == 0x20 }.count
        let hadDigits = key.contains { $0 >= 0x30 && $0 <= 0x39 }
        guard hadDigits, spaces > 0, digits.count <= 10 else { return nil }
        let value = digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }
        guard value <= UInt64(UInt32.max), value % UInt64(spaces) == 0 else { return nil }
        return UInt32(value / UInt64(spaces))
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, Hixie76KeyFuzz.run)
}
#endif
