import Testing

@testable import WebSocketFraming

// `Sec-WebSocket-Extensions` parsing and formatting (RFC 6455 §9.1, RFC 7692 offers).

private typealias P = ExtensionOffer.Parameter

private func offer(_ name: String, _ parameters: P...) -> ExtensionOffer {
    ExtensionOffer(name: name, parameters: parameters)
}

private func p(_ name: String, _ value: String? = nil) -> P {
    P(name: name, value: value)
}

@Suite struct ExtensionHeaderTests {

    // MARK: Accepted

    @Test func rfc7692Offers() {
        let value =
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10; client_no_context_takeover"
        #expect(
            ExtensionOffer.parseList(value) == [
                offer("permessage-deflate", p("client_max_window_bits")),
                offer("permessage-deflate", p("server_max_window_bits", "10"), p("client_no_context_takeover")),
            ])
    }

    @Test func singleNameWithoutParameters() {
        #expect(ExtensionOffer.parseList("permessage-deflate") == [offer("permessage-deflate")])
        #expect(ExtensionOffer.parseList("x-webkit-deflate-frame") == [offer("x-webkit-deflate-frame")])
    }

    @Test func namesKeepTheirCase() {
        #expect(
            ExtensionOffer.parseList("PerMessage-Deflate; Client_Max_Window_Bits=A1")
                == [offer("PerMessage-Deflate", p("Client_Max_Window_Bits", "A1"))])
    }

    @Test func everyTokenCharacterIsAllowedInNamesAndValues() {
        let token = "!#$%&'*+-.^_`|~09azAZ"
        #expect(ExtensionOffer.parseList("\(token); \(token)=\(token)") == [offer(token, p(token, token))])
    }

    @Test func quotedValueIsUnquoted() {
        #expect(
            ExtensionOffer.parseList("permessage-deflate; server_max_window_bits=\"10\"")
                == [offer("permessage-deflate", p("server_max_window_bits", "10"))])
        #expect(
            ExtensionOffer.parseList("permessage-deflate; client_max_window_bits=\"15\"; server_no_context_takeover")
                == [offer("permessage-deflate", p("client_max_window_bits", "15"), p("server_no_context_takeover"))])
    }

    @Test func escapedQuotedStringIsUnescaped() {
        // "\1\0" is the quoted-pair form of 10.
        #expect(ExtensionOffer.parseList(#"x; a="\1\0""#) == [offer("x", p("a", "10"))])
        #expect(ExtensionOffer.parseList(#"x; a="a\-b""#) == [offer("x", p("a", "a-b"))])
        #expect(ExtensionOffer.parseList(##"x; a="\!\#\|""##) == [offer("x", p("a", "!#|"))])
    }

    @Test func whitespaceAndTabsAroundDelimiters() {
        let expected = [offer("permessage-deflate", p("server_max_window_bits", "10"), p("client_no_context_takeover")), offer("foo")]
        let values = [
            "permessage-deflate;server_max_window_bits=10;client_no_context_takeover,foo",
            "permessage-deflate ; server_max_window_bits = 10 ; client_no_context_takeover , foo",
            "\tpermessage-deflate\t;\tserver_max_window_bits\t=\t10\t;\tclient_no_context_takeover\t,\tfoo\t",
            "  permessage-deflate \t;  server_max_window_bits= \"10\"  ;client_no_context_takeover ,\t foo  ",
        ]
        for value in values {
            #expect(ExtensionOffer.parseList(value) == expected, "\(value)")
        }
    }

    @Test func emptyListElementsAreSkipped() {
        #expect(ExtensionOffer.parseList(", foo ,, bar") == [offer("foo"), offer("bar")])
        #expect(ExtensionOffer.parseList("foo,") == [offer("foo")])
        #expect(ExtensionOffer.parseList(",,foo;a=1,\t,") == [offer("foo", p("a", "1"))])
    }

    @Test func emptyValuesGiveEmptyLists() {
        #expect(ExtensionOffer.parseList("") == [])
        #expect(ExtensionOffer.parseList("   ") == [])
        #expect(ExtensionOffer.parseList(" , ,\t,") == [])
    }

    @Test func duplicatesAreKeptInOrder() {
        let value =
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11, permessage-deflate, foo, permessage-deflate; client_max_window_bits"
        #expect(
            ExtensionOffer.parseList(value) == [
                offer("permessage-deflate", p("server_max_window_bits", "10"), p("server_max_window_bits", "11")),
                offer("permessage-deflate"),
                offer("foo"),
                offer("permessage-deflate", p("client_max_window_bits")),
            ])
    }

    @Test func quotedCommaOrSemicolonDoesNotSplit() {
        // A quoted value holding a delimiter is not a token once unquoted: rejected
        // as a whole, not split into pieces.
        #expect(ExtensionOffer.parseList(#"x; a="1,2", y"#) == nil)
        #expect(ExtensionOffer.parseList(#"x; a="1;2""#) == nil)
    }

    // MARK: Rejected

    @Test(arguments: [
        #"permessage-deflate; server_max_window_bits="1 0""#,  // not a token after unquoting
        #"x; a="""#,  // empty quoted value
        #"x; a="1/0""#,  // '/' is not a tchar
        #"x; a="é""#,  // non-ASCII inside quotes
        #"x; a="\"1""#,  // escaped quote leaves '"' in the value
    ])
    func quotedValueThatIsNotATokenIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: [
        #"permessage-deflate; server_max_window_bits="10"#,  // unterminated
        #"x; a=""#,  // only the opening quote
        #"x; a="10\""#,  // the closing quote is escaped
        #"x; a="10\"#,  // backslash at the end
        #"x; a="10, y"#,
    ])
    func unterminatedQuoteIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: ["; x", ";", " ; x=1", "foo, ; x", "=1", "foo, =1"])
    func missingNameIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: ["foo;", "foo; ", "foo;\t", "foo; a;", "foo; ;a", "foo;, bar", "foo; a=1;"])
    func trailingOrDoubledSemicolonIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: ["foo; x=", "foo; x= ", "foo; x=;y", "foo; x=, bar", "foo; x==1", "foo; x=1=2", "foo=1"])
    func equalsWithoutValueIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: [
        "fo@o", "foo bar", "\"foo\"", "foo/1", "foo(x)", "fóo", "foo; b@r", "foo; a b", "foo; \"a\"",
        "foo; a=b@r", "foo; a=1 2", "foo; a=\"1\"b", "foo; a=é", "foo{}", "foo:bar",
    ])
    func nonTokenCharactersAreRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    @Test(arguments: [
        "foo\u{1}", "\u{0}foo", "foo\r\n", "foo\n, bar", "foo; a=\u{1}", "foo;\u{B}a", "foo\u{7F}",
        "foo; a=\"1\u{1}\"", "foo; a=\"1\u{7F}\"", "foo; a=\"1\n\"", "foo; a=\"\\\u{1}\"", "foo; a=\"\\\u{7F}\"",
    ])
    func controlCharacterIsRejected(value: String) {
        #expect(ExtensionOffer.parseList(value) == nil)
    }

    // MARK: Formatting

    @Test func descriptionIsTheHeaderForm() {
        #expect(offer("permessage-deflate").description == "permessage-deflate")
        #expect(
            offer("permessage-deflate", p("client_max_window_bits"), p("server_max_window_bits", "10")).description
                == "permessage-deflate; client_max_window_bits; server_max_window_bits=10")
        #expect("\(offer("x", p("a", "1")))" == "x; a=1")
    }

    @Test func formatJoinsWithCommas() {
        #expect(ExtensionOffer.format([]) == "")
        #expect(ExtensionOffer.format([offer("a")]) == "a")
        #expect(
            ExtensionOffer.format([offer("permessage-deflate", p("client_max_window_bits", "15")), offer("x-foo"), offer("permessage-deflate")])
                == "permessage-deflate; client_max_window_bits=15, x-foo, permessage-deflate")
    }

    @Test func formatRoundTripsThroughParseList() {
        let lists: [[ExtensionOffer]] = [
            [],
            [offer("permessage-deflate")],
            [
                offer("permessage-deflate", p("client_max_window_bits")),
                offer("permessage-deflate", p("server_max_window_bits", "10"), p("client_no_context_takeover")),
            ],
            [offer("a", p("x", "1"), p("x", "1")), offer("a"), offer("!#$%&'*+-.^_`|~", p("_", "~"))],
        ]
        for list in lists {
            #expect(ExtensionOffer.parseList(ExtensionOffer.format(list)) == list)
        }
    }

    @Test func parsedOffersFormatCanonically() throws {
        let messy = " ,permessage-deflate ;\tserver_max_window_bits = \"10\" ; client_no_context_takeover,, x-foo ;a=\"\\b\" ,"
        let parsed = try #require(ExtensionOffer.parseList(messy))
        let canonical = "permessage-deflate; server_max_window_bits=10; client_no_context_takeover, x-foo; a=b"
        #expect(ExtensionOffer.format(parsed) == canonical)
        #expect(parsed.map(\.description) == [
            "permessage-deflate; server_max_window_bits=10; client_no_context_takeover", "x-foo; a=b",
        ])
        #expect(ExtensionOffer.parseList(canonical) == parsed)
    }
}
