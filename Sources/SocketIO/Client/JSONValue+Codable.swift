import Foundation

// Codable bridges for payloads the caller wants typed. Binary has no JSON form: it is
// written as a base64 string, which is what `Data` properties decode from by default
// (and what `Data` encodes to), so `Data` fields round-trip.
extension JSONValue {
    /// The JSON form of an `Encodable` value (through `JSONEncoder`).
    public init(encoding value: some Encodable, encoder: JSONEncoder = JSONEncoder()) throws {
        let data = try encoder.encode(value)
        do {
            self = try JSONText.parse(Array(data))
        } catch {
            throw SocketIOError.protocolError("JSONEncoder output did not parse: \(error)")
        }
    }

    /// Decodes a `Decodable` value from this JSON value (through `JSONDecoder`).
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        var text = ""
        JSONText.write(self, into: &text) { bytes in
            var quoted = ""
            JSONText.writeString(Data(bytes).base64EncodedString(), into: &quoted)
            return quoted
        }
        return try decoder.decode(T.self, from: Data(text.utf8))
    }
}
