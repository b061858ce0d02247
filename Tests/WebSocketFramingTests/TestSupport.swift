@_exported import SeededRandom
@testable import WebSocketFraming


/// Builds a frame by hand, so tests do not depend on FrameWriter.
func rawFrame(
    fin: Bool = true, rsv: UInt8 = 0, opcode: UInt8, payload: [UInt8], mask: [UInt8]? = nil,
    lengthForm: Int? = nil
) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    let n = payload.count
    let form = lengthForm ?? (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8)
    switch form {
    case 0: out.append(maskBit | UInt8(n))
    case 2: out += [maskBit | 126, UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
    default: out.append(maskBit | 127); out += (0..<8).map { UInt8((UInt64(n) >> (56 - 8 * UInt64($0))) & 0xFF) }
    }
    if let mask {
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
    } else {
        out += payload
    }
    return out
}

/// Everything a parser delivered for a byte stream: whole frames, and the error, if any.
struct ParseOutcome: Equatable {
    var frames: [Frame] = []
    var error: FramingError?
}

/// Feeds `bytes` to a fresh parser in pieces of the given sizes (the rest in one piece)
/// and collects whole frames.
func parseAll(
    _ bytes: [UInt8], role: Role, pieces: [Int] = [], maxFrameSize: Int = 16 << 20,
    maxMessageSize: Int = 16 << 20, allowedReservedBits: UInt8 = 0
) -> ParseOutcome {
    let parser = FrameParser(
        role: role, maxFrameSize: maxFrameSize, maxMessageSize: maxMessageSize,
        allowedReservedBits: allowedReservedBits)
    var outcome = ParseOutcome()
    var pending: Frame?
    var offset = 0
    var sizes = pieces
    while offset < bytes.count || (offset == 0 && bytes.isEmpty) {
        let n = sizes.isEmpty ? bytes.count - offset : min(sizes.removeFirst(), bytes.count - offset)
        var piece = Array(bytes[offset..<offset + n])
        offset += n
        do {
            try piece.withUnsafeMutableBytes { buf in
                try parser.parse(buf) { chunk in
                    if chunk.isFrameStart { pending = Frame(fin: chunk.fin, rsv: chunk.rsv, opcode: chunk.opcode) }
                    pending!.payload += chunk.payload
                    if chunk.isFrameEnd { outcome.frames.append(pending!); pending = nil }
                }
            }
        } catch {
            outcome.error = error as? FramingError
            return outcome
        }
        if bytes.isEmpty { break }
    }
    return outcome
}
