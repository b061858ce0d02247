import Testing

@testable import WebSocketFraming

// LEGACY draft-76 ("hixie-76") handshake arithmetic. Whitespace in the keys is
// significant: spaces are counted, so every double space below is deliberate, and the
// tests check the space counts of the literals before using them.

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private func spaces(_ s: String) -> Int { s.utf8.filter { $0 == 0x20 }.count }

@Suite struct Hixie76Tests {
    // draft-hixie-thewebsocketprotocol-76, section 1.3.
    static let draftKey1 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8"
    static let draftKey2 = "1_ tx7X d  <  nw  334J702) 7]o}` 0"
    static let draftBody = "Tm[K T2u"
    static let draftResponse = "fQJ,fN/4F4!~K~MH"

    // The project's original design notes, double spaces restored.
    static let notesKey1 = "4 @1  46546xW%0l 1 5"
    static let notesKey2 = "12998 5 Y3 1  .P00"
    static let notesBody = "^n:ds[4U"
    static let notesResponse = "8jKS'y:G*Co,Wxa-"

    // The notes as printed, double spaces collapsed to single ones.
    static let printedKey1 = "4 @1 46546xW%0l 1 5"
    static let printedKey2 = "12998 5 Y3 1 .P00"

    @Test func literalsHaveTheIntendedSpaces() {
        #expect(spaces(Self.draftKey1) == 12)
        #expect(spaces(Self.draftKey2) == 10)
        #expect(spaces(Self.notesKey1) == 5)
        #expect(spaces(Self.notesKey2) == 5)
        #expect(spaces(Self.printedKey1) == 4)
        #expect(spaces(Self.printedKey2) == 4)
        #expect(Self.draftBody.utf8.count == 8 && Self.notesBody.utf8.count == 8)
    }

    // MARK: Key numbers, worked by hand (digits in order, divided by the spaces)

    @Test func draftKeyNumbers() {
        // Key1 digits 1 8 6 8 5 4 5 1 8 8 -> 1868545188; 12 spaces -> 155712099.
        #expect(Hixie76.keyNumber(Self.draftKey1) == 155_712_099)
        #expect(155_712_099 * 12 == 1_868_545_188)
        // Key2 digits 1 7 3 3 4 7 0 2 7 0 -> 1733470270; 10 spaces -> 173347027.
        #expect(Hixie76.keyNumber(Self.draftKey2) == 173_347_027)
    }

    @Test func designNotesKeyNumbers() {
        // Key1 digits 4 1 4 6 5 4 6 0 1 5 -> 4146546015; 5 spaces -> 829309203.
        #expect(Hixie76.keyNumber(Self.notesKey1) == 829_309_203)
        #expect(829_309_203 * 5 == 4_146_546_015)
        // Key2 digits 1 2 9 9 8 5 3 1 0 0 -> 1299853100; 5 spaces -> 259970620.
        #expect(Hixie76.keyNumber(Self.notesKey2) == 259_970_620)
    }

    // MARK: Responses

    @Test func draftExample() {
        #expect(
            Hixie76.response(key1: Self.draftKey1, key2: Self.draftKey2, body: bytes(Self.draftBody))
                == bytes(Self.draftResponse))
    }

    @Test func designNotesExampleWithDoubleSpaces() {
        #expect(
            Hixie76.response(key1: Self.notesKey1, key2: Self.notesKey2, body: bytes(Self.notesBody))
                == bytes(Self.notesResponse))
    }

    @Test func designNotesExampleAsPrintedWithSingleSpaces() {
        // Key1 as printed: 4146546015 over 4 spaces leaves 3, so it is rejected, and a
        // response that needs it is nil.
        #expect(4_146_546_015 % 4 == 3)
        #expect(Hixie76.keyNumber(Self.printedKey1) == nil)
        #expect(Hixie76.response(key1: Self.printedKey1, key2: Self.notesKey2, body: bytes(Self.notesBody)) == nil)
        #expect(Hixie76.response(key1: Self.printedKey1, key2: Self.printedKey2, body: bytes(Self.notesBody)) == nil)

        // Key2 as printed: its digits are 1299853100 (not 12998510), which 4 spaces
        // divide evenly, so it parses, to a different number than with 5 spaces.
        #expect(1_299_853_100 % 4 == 0)
        #expect(Hixie76.keyNumber(Self.printedKey2) == 324_963_275)
        // The response then exists but is not the example's answer. Expected bytes:
        // MD5(be32(829309203) be32(324963275) "^n:ds[4U"), computed with Python's hashlib.
        let response = Hixie76.response(key1: Self.notesKey1, key2: Self.printedKey2, body: bytes(Self.notesBody))
        #expect(response != bytes(Self.notesResponse))
        #expect(
            response == [
                0x07, 0x1B, 0xFE, 0x13, 0xB3, 0x4E, 0x5E, 0xBC, 0x99, 0x29, 0x59, 0x76, 0x9D, 0xFF, 0x74, 0xD8,
            ])
    }

    @Test func responseDependsOnEveryInput() {
        let base = Hixie76.response(key1: Self.draftKey1, key2: Self.draftKey2, body: bytes(Self.draftBody))
        #expect(base != nil)
        // Swapped keys.
        #expect(Hixie76.response(key1: Self.draftKey2, key2: Self.draftKey1, body: bytes(Self.draftBody)) != base)
        // One body byte changed.
        #expect(Hixie76.response(key1: Self.draftKey1, key2: Self.draftKey2, body: bytes("Tm[K T2v")) != base)
        // Same numbers from differently written keys give the same response.
        #expect(
            Hixie76.response(key1: "155712099 ", key2: " 173347027", body: bytes(Self.draftBody))
                == bytes(Self.draftResponse))
    }

    // MARK: Rejections

    @Test(arguments: ["1234567", "12x34", "4294967295", "1\t2", "1\u{A0}2"])
    func keyWithoutSpacesIsRejected(key: String) {
        // Only U+0020 counts as a space: tab and no-break space do not.
        #expect(Hixie76.keyNumber(key) == nil)
    }

    @Test(arguments: ["a b c", " ", "   ", "x y", "٣ ٤"])
    func keyWithoutDigitsIsRejected(key: String) {
        // Only ASCII digits count (the Arabic-Indic ones do not).
        #expect(Hixie76.keyNumber(key) == nil)
    }

    @Test func emptyKeyIsRejected() {
        #expect(Hixie76.keyNumber("") == nil)
    }

    @Test(arguments: ["4294967296 ", "4294967296  ", "42949672950 ", "99999999999999999999 ", "1 8446744073709551616 0"])
    func numberAbove32BitsIsRejected(key: String) {
        #expect(Hixie76.keyNumber(key) == nil)
    }

    @Test func notAMultipleOfTheSpacesIsRejected() {
        #expect(Hixie76.keyNumber("7 x x") == nil)  // 7 / 2
        #expect(Hixie76.keyNumber("1 0 0 ") == nil)  // 100 / 3
    }

    @Test func boundaryNumbersAreAccepted() {
        #expect(Hixie76.keyNumber("4294967295 ") == 4_294_967_295)
        #expect(Hixie76.keyNumber("42 94 96 72 95 ") == 858_993_459)  // 4294967295 / 5 spaces
        #expect(Hixie76.keyNumber("0 ") == 0)
        #expect(Hixie76.keyNumber("0      ") == 0)
        #expect(Hixie76.keyNumber("00000000000000000000042 x ") == 21)
        #expect(Hixie76.keyNumber("٣ 4") == 4)  // non-ASCII digits ignored
    }

    @Test(arguments: [0, 1, 7, 9, 16])
    func bodyThatIsNot8BytesIsRejected(count: Int) {
        let body = Array(bytes(Self.draftBody + "12345678").prefix(count))
        #expect(body.count == count)
        #expect(Hixie76.response(key1: Self.draftKey1, key2: Self.draftKey2, body: body) == nil)
    }

    @Test func badKeyFailsTheResponse() {
        let body = bytes(Self.draftBody)
        #expect(Hixie76.response(key1: "1234", key2: Self.draftKey2, body: body) == nil)
        #expect(Hixie76.response(key1: Self.draftKey1, key2: "a b", body: body) == nil)
        #expect(Hixie76.response(key1: "4294967296 ", key2: Self.draftKey2, body: body) == nil)
        #expect(Hixie76.response(key1: Self.draftKey1, key2: "", body: body) == nil)
    }
}
