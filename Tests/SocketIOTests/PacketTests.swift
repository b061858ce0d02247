import Testing
@testable import SocketIO

@Suite struct JSONTextTests {
    @Test func roundTripsValues() throws {
        let values: [JSONValue] = [
            nil, true, false, 0, -1, 1.5, 1e300, "", "a\"b\\c\n\u{1}é😀",
            [1, "x", [nil]], ["k": ["n": 2], "e": [:], "a": []],
        ]
        for v in values {
            #expect(try JSONText.parse(v.description) == v)
        }
    }

    @Test func parsesEscapesAndSurrogatePairs() throws {
        #expect(try JSONText.parse(#""\u00e9\ud83d\ude00\/\b\f\t""#) == .string("é😀/\u{8}\u{c}\t"))
        #expect(try JSONText.parse(" [ 1 , 2 ] ") == [1, 2])
        #expect(JSONValue.number(3).description == "3")
        #expect(JSONValue.number(-0.25).description == "-0.25")
    }

    @Test func rejectsMalformedText() {
        let bad = ["", "[", "[1,]", "{\"a\"1}", "01", "1.", "-", "tru", "\"\\ud800\"", "\"\\udc00x\"",
                   "\"a", "[1] x", "{'a':1}", "\"\u{1}\"", "nul", "1e", "NaN", "1e999", "\"\\x\""]
        for text in bad {
            #expect(throws: JSONText.ParseError.self, "\(text)") { try JSONText.parse(text) }
        }
        #expect(throws: JSONText.ParseError.self) { try JSONText.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func limitsNesting() throws {
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        _ = try JSONText.parse(ok)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONText.ParseError.self) { try JSONText.parse(deep) }
    }
}

@Suite struct EngineIOPacketTests {
    @Test func decodesWebSocketTextPackets() throws {
        #expect(try EngineIOPacket.decode(text: "4hello") == EngineIOPacket(.message, .text("hello")))
        #expect(try EngineIOPacket.decode(text: "2probe") == EngineIOPacket(.ping, .text("probe")))
        #expect(try EngineIOPacket.decode(text: "6") == EngineIOPacket(.noop))
        for bad in ["", "7", "x", "/"] {
            #expect(throws: EngineIOPacket.DecodeError.self) { try EngineIOPacket.decode(text: bad) }
        }
        #expect(EngineIOPacket(.pong, .text("probe")).webSocketText == "3probe")
    }

    @Test func encodesAndDecodesPollingPayloads() throws {
        // The protocol document's example: "hello", binary 1 2 3 4, and the separator.
        let packets = [EngineIOPacket(.message, .text("hello")), EngineIOPacket(.message, .binary([1, 2, 3, 4]))]
        let body = EngineIOPacket.encodePayload(packets)
        #expect(body == "4hello\u{1E}bAQIDBA==")
        #expect(try EngineIOPacket.decodePayload(body) == packets)
        #expect(throws: EngineIOPacket.DecodeError.self) { try EngineIOPacket.decodePayload("b!!") }
        #expect(throws: EngineIOPacket.DecodeError.self) { try EngineIOPacket.decodePayload("") }
        #expect(throws: EngineIOPacket.DecodeError.self) { try EngineIOPacket.decodePayload("4a\u{1E}\u{1E}4b") }
    }

    @Test func base64MatchesRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64.decode("Zg=a") == nil)
        #expect(Base64.decode("Z") == nil)
    }
}

@Suite struct SocketIOPacketTests {
    // Examples from the Socket.IO v5 protocol document.
    @Test func encodesProtocolExamples() {
        #expect(SocketIOPacket(.connect).encode().text == "0")
        #expect(SocketIOPacket(.connect, namespace: "/admin", data: ["sid": "oSO0OpakMV_3jnilAAAA"]).encode().text
            == #"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#)
        #expect(SocketIOPacket(.disconnect, namespace: "/admin").encode().text == "1/admin,")
        #expect(SocketIOPacket(.event, data: ["foo"]).encode().text == #"2["foo"]"#)
        #expect(SocketIOPacket(.event, namespace: "/admin", data: ["bar"], id: 12).encode().text == #"2/admin,12["bar"]"#)
        #expect(SocketIOPacket(.ack, namespace: "/admin", data: ["bar"], id: 13).encode().text == #"3/admin,13["bar"]"#)
        let binary = SocketIOPacket(.event, data: ["baz", .binary([1, 2, 3])]).encode()
        #expect(binary.text == #"51-["baz",{"_placeholder":true,"num":0}]"#)
        #expect(binary.attachments == [[1, 2, 3]])
        let ack = SocketIOPacket(.ack, namespace: "/admin", data: [.binary([3, 2, 1])], id: 15).encode()
        #expect(ack.text == #"61-/admin,15[{"_placeholder":true,"num":0}]"#)
    }

    @Test func decodesAndReconstructsBinary() throws {
        let (packet, count) = try SocketIOPacket.decode(#"52-/chat,7["up",{"_placeholder":true,"num":1},{"a":[{"_placeholder":true,"num":0}]}]"#)
        #expect(count == 2)
        #expect(packet.kind == .binaryEvent && packet.namespace == "/chat" && packet.id == 7)
        let full = try packet.reconstruct(attachments: [[9], [8, 7]])
        #expect(full.kind == .event)
        #expect(full.data == ["up", .binary([8, 7]), ["a": [.binary([9])]]])
        #expect(throws: SocketIOPacket.DecodeError.self) { try packet.reconstruct(attachments: [[9]]) }
    }

    @Test func decodesPlainPackets() throws {
        let (connect, _) = try SocketIOPacket.decode(#"0/admin,{"token":"123"}"#)
        #expect(connect == SocketIOPacket(.connect, namespace: "/admin", data: ["token": "123"]))
        let (event, _) = try SocketIOPacket.decode(#"212["m",1]"#)
        #expect(event == SocketIOPacket(.event, data: ["m", 1], id: 12))
        let (disconnect, _) = try SocketIOPacket.decode("1/x,")
        #expect(disconnect == SocketIOPacket(.disconnect, namespace: "/x"))
    }

    @Test func rejectsMalformedPackets() {
        let bad = ["", "9", "2", "2{}", "2[1]", "2[]", "3[1]", "0[1]", "1[1]", "5-[\"a\"]", "5x-[\"a\"]",
                   "51[\"a\"]", "2[\"a\"", "59999-[\"a\"]", "2/a,1234567890123456[\"a\"]", "4"]
        for text in bad {
            #expect(throws: SocketIOPacket.DecodeError.self, "\(text)") { try SocketIOPacket.decode(text) }
        }
    }
}
