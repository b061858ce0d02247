import Foundation
import WebSockets

/// Many connections each send `messages` sequence-numbered messages (text and binary,
/// some longer than the fragment size) as fast as backpressure allows, while reading the
/// echoes; every echo must be the next expected message, byte for byte.
func runOrdering(connections: Int, messages: Int, report: LoadReport) async throws {
    let fragmentSize = 16 << 10
    for deflate in [false, true] {
        let label = deflate ? "with permessage-deflate" : "without deflate"
        report.heading("ordering: \(connections) connections x \(messages) messages, \(label), fragments of \(fragmentSize) B")
        let server = try ServerProcess(flags: (deflate ? [] : ["--no-deflate"]) + ["--fragment-size", "\(fragmentSize)"])
        defer { server.stop() }
        let configuration = clientConfiguration(deflate: deflate, fragmentSize: fragmentSize)
        let bytes = ByteCounter()
        let url = "ws://127.0.0.1:\(server.port)/"
        let start = Date()
        let result = await runBounded(count: connections, width: connections) { c in
            let ws = try await WebSocket.connect(to: url, configuration: configuration)
            let sender = Task {
                for seq in 0..<messages {
                    try await ws.send(SequencedPayload.message(connection: c, seq: seq, fragmentSize: fragmentSize))
                }
            }
            var expected = 0
            do {
                for try await message in ws.messages {
                    let want = SequencedPayload.message(connection: c, seq: expected, fragmentSize: fragmentSize)
                    guard sameBytes(message, want) else {
                        let got = SequencedPayload.claimedSeq(message).map { "message \($0)" } ?? "an unrecognised message"
                        throw LoadFailure("connection \(c): expected message \(expected), got \(got)")
                    }
                    bytes.add(sizeOf(message))
                    expected += 1
                    if expected == messages { break }
                }
            } catch {
                sender.cancel()
                ws.abortForLoad()
                throw error
            }
            try await sender.value
            guard expected == messages else { throw LoadFailure("connection \(c): closed after \(expected) of \(messages)") }
            try await ws.close()
        }
        let elapsed = seconds(since: start)
        for sample in result.samples { report.note("error: \(sample)") }
        report.note("\(connections * messages) messages, \(bytes.total >> 20) MiB echoed in \(fmt(elapsed, 2)) s")
        report.check(result.failures == 0, "\(label): every message arrived once, in order, intact (\(result.failures) connections failed)")
    }
}

/// Byte-for-byte equality (String's == is canonical equivalence, which would accept a
/// differently normalised echo).
func sameBytes(_ a: Message, _ b: Message) -> Bool {
    switch (a, b) {
    case (.text(let x), .text(let y)): x.utf8.elementsEqual(y.utf8)
    case (.binary(let x), .binary(let y)): x == y
    default: false
    }
}

func sizeOf(_ message: Message) -> Int {
    switch message {
    case .text(let s): s.utf8.count
    case .binary(let b): b.count
    }
}

/// A total shared by the connection tasks.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = 0
    func add(_ n: Int) { lock.lock(); sum += n; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return sum }
}
