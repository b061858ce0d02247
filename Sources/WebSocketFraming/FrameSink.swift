/// Somewhere frames can be written in place: a byte array here, a NIO `ByteBuffer` in
/// the connection layer. Writing straight into the destination saves a copy per frame.
public protocol FrameSink {
    /// Makes room for `capacity` bytes at the end, lets `fill` write into it, and keeps
    /// the number of bytes `fill` returns.
    mutating func appendFrame(capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(FramingError) -> Int) throws(FramingError)
}

extension Array: FrameSink where Element == UInt8 {
    public mutating func appendFrame(capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(FramingError) -> Int) throws(FramingError) {
        let start = count
        append(contentsOf: repeatElement(0, count: capacity))
        var result: Result<Int, FramingError> = .success(0)
        withUnsafeMutableBytes { all in
            do throws(FramingError) {
                result = .success(try fill(UnsafeMutableRawBufferPointer(rebasing: all[start...])))
            } catch { result = .failure(error) }
        }
        switch result {
        case .success(let n): removeLast(capacity - n)
        case .failure(let e):
            removeLast(capacity)
            throw e
        }
    }
}
