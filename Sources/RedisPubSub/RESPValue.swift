import NIOCore

/// A value of the Redis serialization protocol, version 2 (RESP2).
public enum RESPValue: Sendable, Equatable {
    /// `+OK`: a short status line.
    case simpleString(String)
    /// `-ERR ...`: an error reply; the text starts with the error kind.
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$5 hello`: binary-safe bytes, or nil for the null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// `*2 ...`: an array, or nil for the null array (`*-1`).
    case array([RESPValue]?)

    /// The bytes of a bulk or simple string, else nil.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let b): b
        case .simpleString(let s): Array(s.utf8)
        default: nil
        }
    }

    /// A bulk or simple string as text (invalid UTF-8 repaired), else nil.
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The integer of an integer reply, else nil.
    public var integer: Int64? {
        if case .integer(let n) = self { return n }
        return nil
    }
}

/// Encodes commands: every command is sent as an array of bulk strings, the form Redis
/// reads for any argument, binary or not.
public enum RESPEncoder {
    /// Appends `arguments` (command name first) as one RESP array of bulk strings.
    public static func writeCommand(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.count)\r\n")
            buffer.writeBytes(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// The command as bytes.
    public static func command(_ arguments: [[UInt8]]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(arguments.reduce(16) { $0 + $1.count + 16 })
        writeCommand(arguments, into: &buffer)
        return buffer
    }

    /// The command as bytes, from text arguments.
    public static func command(_ arguments: [String]) -> ByteBuffer {
        command(arguments.map { Array($0.utf8) })
    }
}
