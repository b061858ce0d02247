import NIOCore

/// Why a reply could not be parsed. The connection is dropped on any of these: the
/// stream cannot be resynchronized.
public enum RESPParseError: Error, Sendable, Equatable {
    /// A type byte other than `+ - : $ *`.
    case unknownType(UInt8)
    /// A length or integer that is not a decimal number in range.
    case invalidNumber
    /// A line without its CRLF within `maxLineLength`, or a bulk string not followed by CRLF.
    case malformed
    /// A bulk string or array larger than the parser's limits.
    case tooLarge
    /// Arrays nested deeper than `maxDepth`.
    case tooDeep
}

/// Parses RESP2 replies incrementally from a buffer that grows as bytes arrive: each
/// call returns one complete value and consumes its bytes, or nil (consuming nothing)
/// while the value is incomplete. Sizes are checked before anything is buffered for
/// them, so a hostile or broken server cannot make us allocate without bound.
public struct RESPParser: Sendable {
    /// Largest bulk string accepted (default 64 MiB; Redis itself allows 512 MiB).
    public var maxBulkLength: Int
    /// Most elements in one array (default 1,048,576).
    public var maxArrayCount: Int
    /// Deepest array nesting (default 16; pub/sub replies use 1).
    public var maxDepth: Int
    /// Longest status, error or number line (default 64 KiB).
    public var maxLineLength: Int

    /// Creates a parser with these limits.
    public init(maxBulkLength: Int = 64 << 20, maxArrayCount: Int = 1 << 20, maxDepth: Int = 16, maxLineLength: Int = 64 << 10) {
        self.maxBulkLength = maxBulkLength
        self.maxArrayCount = maxArrayCount
        self.maxDepth = maxDepth
        self.maxLineLength = maxLineLength
    }

    /// The next complete value in `buffer` (consumed), or nil if more bytes are needed.
    public func parse(_ buffer: inout ByteBuffer) throws(RESPParseError) -> RESPValue? {
        var cursor = buffer.readerIndex
        guard let value = try parseValue(buffer, at: &cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor)
        return value
    }

    private func parseValue(_ buffer: ByteBuffer, at cursor: inout Int, depth: Int) throws(RESPParseError) -> RESPValue? {
        guard let type = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
        guard let line = try readLine(buffer, from: cursor + 1) else { return nil }
        var next = line.end
        switch type {
        case UInt8(ascii: "+"):
            cursor = next
            return .simpleString(String(decoding: line.bytes, as: UTF8.self))
        case UInt8(ascii: "-"):
            cursor = next
            return .error(String(decoding: line.bytes, as: UTF8.self))
        case UInt8(ascii: ":"):
            cursor = next
            return .integer(try number(line.bytes))
        case UInt8(ascii: "$"):
            let length = try number(line.bytes)
            if length == -1 {
                cursor = next
                return .bulkString(nil)
            }
            guard length >= 0 else { throw .invalidNumber }
            guard length <= maxBulkLength else { throw .tooLarge }
            let n = Int(length)
            guard buffer.writerIndex - next >= n + 2 else { return nil }
            guard buffer.getInteger(at: next + n, as: UInt16.self) == 0x0D0A else { throw .malformed }
            let bytes = buffer.getBytes(at: next, length: n) ?? []
            cursor = next + n + 2
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            let count = try number(line.bytes)
            if count == -1 {
                cursor = next
                return .array(nil)
            }
            guard count >= 0 else { throw .invalidNumber }
            guard count <= maxArrayCount else { throw .tooLarge }
            guard depth < maxDepth else { throw .tooDeep }
            var elements: [RESPValue] = []
            // Every element takes at least 3 bytes: reserve no more than the bytes at hand can hold.
            elements.reserveCapacity(min(Int(count), (buffer.writerIndex - next) / 3))
            for _ in 0..<count {
                guard let element = try parseValue(buffer, at: &next, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            cursor = next
            return .array(elements)
        default:
            throw .unknownType(type)
        }
    }

    /// The line starting at `start` (without CRLF) and the index after its CRLF, or nil
    /// when no CRLF has arrived yet.
    private func readLine(_ buffer: ByteBuffer, from start: Int) throws(RESPParseError) -> (bytes: [UInt8], end: Int)? {
        let available = buffer.writerIndex - start
        guard available > 0 else { return nil }
        let view = buffer.getSlice(at: start, length: min(available, maxLineLength + 2))!.readableBytesView
        guard let cr = view.firstIndex(of: 0x0D) else {
            if available >= maxLineLength + 2 { throw .malformed }
            return nil
        }
        let crOffset = cr - view.startIndex
        guard crOffset + 1 < view.count else { return nil }
        guard view[cr + 1] == 0x0A else { throw .malformed }
        return (Array(view[view.startIndex..<cr]), start + crOffset + 2)
    }

    private func number(_ bytes: [UInt8]) throws(RESPParseError) -> Int64 {
        guard let n = Int64(String(decoding: bytes, as: UTF8.self)) else { throw .invalidNumber }
        return n
    }
}
