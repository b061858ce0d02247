import NIOCore
import RedisPubSub
import Testing

/// RESP parsing and encoding, and Redis URLs: no server needed.
@Suite struct RedisProtocolTests {
    private func parseAll(_ text: String, parser: RESPParser = .init()) throws -> [RESPValue] {
        var buffer = ByteBuffer(string: text)
        var out: [RESPValue] = []
        while let v = try parser.parse(&buffer) { out.append(v) }
        #expect(buffer.readableBytes == 0)
        return out
    }

    @Test func parsesEveryType() throws {
        let values = try parseAll("+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n")
        #expect(values == [
            .simpleString("OK"), .error("ERR wrong"), .integer(-42), .bulkString(Array("he\r\no".utf8)),
            .bulkString(nil), .array(nil), .array([]), .array([.bulkString([97]), .array([.integer(7)])]),
        ])
    }

    /// Fed one byte at a time, the parser returns nil until a value is complete and never
    /// consumes a partial value.
    @Test func parsesByteByByte() throws {
        let wire = Array("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\n\u{0}\r\n\r\n:1\r\n".utf8)
        let parser = RESPParser()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        for b in wire {
            buffer.writeInteger(b)
            if let v = try parser.parse(&buffer) { values.append(v) }
        }
        #expect(values == [.array([.bulkString(Array("message".utf8)), .bulkString(Array("news".utf8)), .bulkString([0, 13, 10])]), .integer(1)])
    }

    @Test func rejectsMalformedAndOversized() {
        let small = RESPParser(maxBulkLength: 10, maxArrayCount: 4, maxDepth: 2, maxLineLength: 16)
        let cases: [(String, RESPParseError)] = [
            ("?x\r\n", .unknownType(UInt8(ascii: "?"))),
            (":12a\r\n", .invalidNumber),
            ("$-2\r\n", .invalidNumber),
            ("$11\r\n", .tooLarge),
            ("*5\r\n", .tooLarge),
            ("*1\r\n*1\r\n*1\r\n:1\r\n", .tooDeep),
            ("$2\r\nabcd", .malformed),
            ("+" + String(repeating: "a", count: 40), .malformed),
            ("+ab\rx", .malformed),
        ]
        for (text, error) in cases {
            var buffer = ByteBuffer(string: text)
            #expect(throws: error, "\(text.debugDescription)") { _ = try small.parse(&buffer) }
        }
    }

    @Test func encodesCommandsAsBulkArrays() {
        let bytes = RESPEncoder.command([Array("PUBLISH".utf8), Array("ch".utf8), [0, 13, 10]])
        #expect(String(decoding: bytes.readableBytesView, as: UTF8.self) == "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$3\r\n\u{0}\r\n\r\n")
    }

    @Test func parsesURLs() throws {
        let a = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(a.host == "127.0.0.1" && a.port == 6379 && a.password == nil && a.database == 0)
        let b = try RedisConfiguration(url: "redis://:p%40ss@localhost:6390/3")
        #expect(b.host == "localhost" && b.port == 6390 && b.password == "p@ss" && b.username == nil && b.database == 3)
        let c = try RedisConfiguration(url: "redis://user:pw@[::1]:7000/0")
        #expect(c.host == "::1" && c.port == 7000 && c.username == "user" && c.password == "pw")
        let d = try RedisConfiguration(url: "REDIS://secret@h")
        #expect(d.password == "secret" && d.host == "h")
        for bad in ["http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x", "redis://h/db", "redis://h/-1", "redis://:%zz@h"] {
            #expect(throws: RedisError.self, "\(bad)") { _ = try RedisConfiguration(url: bad) }
        }
    }

    @Test func backoffDoublesUpToTheCap() {
        var c = RedisConfiguration()
        c.minBackoff = .milliseconds(50)
        c.maxBackoff = .seconds(1)
        #expect(c.backoffDelays(5) == [50, 100, 200, 400, 800].map { TimeAmount.milliseconds($0) })
        #expect(c.backoffDelays(8).last == .seconds(1))
    }
}

extension RedisConfiguration {
    /// The first `n` retry delays.
    func backoffDelays(_ n: Int) -> [TimeAmount] { (1...n).map { backoff(after: $0) } }
}
