/// A JSON value as Socket.IO carries it: event arguments, acknowledgements and auth
/// payloads. `binary` is not JSON: Socket.IO sends it as a separate attachment with a
/// placeholder in the JSON, so binary can sit anywhere inside arrays and objects.
///
/// Literals make payloads short: `socket.emit("chat", ["user": "ann", "n": 1])`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    case binary([UInt8])

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The number, if this is one.
    public var numberValue: Double? { if case .number(let n) = self { return n } else { return nil } }
    /// The number as an Int, if this is an integral number.
    public var intValue: Int? {
        guard case .number(let n) = self, n.rounded() == n, abs(n) < 9.007199254740992e15 else { return nil }
        return Int(n)
    }
    /// The Boolean, if this is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// The members, if this is an object.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    /// The bytes, if this is binary.
    public var binaryValue: [UInt8]? { if case .binary(let b) = self { return b } else { return nil } }
    /// True for `null`.
    public var isNull: Bool { self == .null }

    /// A member of an object (nil for other values or a missing key).
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
    /// An element of an array (nil for other values or an index out of range).
    public subscript(index: Int) -> JSONValue? {
        guard let a = arrayValue, a.indices.contains(index) else { return nil }
        return a[index]
    }

    /// True when binary sits anywhere inside (the packet then needs attachments).
    public var containsBinary: Bool {
        switch self {
        case .binary: return true
        case .array(let a): return a.contains { $0.containsBinary }
        case .object(let o): return o.values.contains { $0.containsBinary }
        default: return false
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    /// `nil` is JSON null.
    public init(nilLiteral: ()) { self = .null }
    /// A Boolean literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An integer literal.
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    /// A floating-point literal.
    public init(floatLiteral value: Double) { self = .number(value) }
    /// A string literal.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An array literal.
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// A dictionary literal (a later duplicate key wins).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The JSON text (binary shows as `<binary N bytes>`).
    public var description: String {
        var out = ""
        JSONText.write(self, into: &out, binaryPlaceholder: { "\"<binary \($0.count) bytes>\"" })
        return out
    }
}
