import NIOConcurrencyHelpers
import WebSocketFraming

/// Received messages for an async reader: `for try await message in ws.messages`.
/// Holds at most `capacity` messages before asking the connection to stop reading
/// from the socket; reading resumes as the consumer catches up.
public final class MessageQueue: AsyncSequence, @unchecked Sendable {
    public typealias Element = Message

    private let lock = NIOLock()
    private var buffer: [Message] = []
    private var head = 0
    private var finished = false
    private var failure: WebSocketError?
    /// Readers waiting for a message, in arrival order (several tasks may iterate).
    private var waiters: [CheckedContinuation<Message?, Error>] = []
    private var paused = false
    private let capacity: Int
    private let onDrain: @Sendable () -> Void

    init(capacity: Int, onDrain: @escaping @Sendable () -> Void) {
        self.capacity = Swift.max(1, capacity)
        self.onDrain = onDrain
    }

    /// Adds a message; returns false when the queue is full (the producer should pause).
    func push(_ message: Message) -> Bool {
        let (w, full): (CheckedContinuation<Message?, Error>?, Bool) = lock.withLock {
            if !waiters.isEmpty { return (waiters.removeFirst(), false) }
            buffer.append(message)
            let full = buffer.count - head >= capacity
            if full { paused = true }
            return (nil, full)
        }
        w?.resume(returning: message)
        return !full
    }

    /// Ends the sequence, with an error when the connection failed.
    func finish(error: WebSocketError?) {
        let all: [CheckedContinuation<Message?, Error>] = lock.withLock {
            finished = true
            failure = error
            defer { waiters.removeAll() }
            return waiters
        }
        for w in all {
            if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
        }
    }

    fileprivate func next() async throws -> Message? {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message?, Error>) in
            enum Outcome { case message(Message, resume: Bool), end(WebSocketError?), wait }
            let outcome: Outcome = lock.withLock {
                if head < buffer.count {
                    let m = buffer[head]
                    head += 1
                    if head > 64 && head * 2 > buffer.count {
                        buffer.removeFirst(head)
                        head = 0
                    }
                    let resume = paused && buffer.count - head <= capacity / 2
                    if resume { paused = false }
                    return .message(m, resume: resume)
                }
                if finished { return .end(failure) }
                waiters.append(c)
                return .wait
            }
            switch outcome {
            case .message(let m, let resume):
                c.resume(returning: m)
                if resume { onDrain() }
            case .end(let e):
                if let e { c.resume(throwing: e) } else { c.resume(returning: nil) }
            case .wait:
                break
            }
        }
    }

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: MessageQueue
        /// The next message, nil at a clean close; throws when the connection failed.
        public mutating func next() async throws -> Message? { try await queue.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}
