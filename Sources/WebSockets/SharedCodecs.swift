import NIOConcurrencyHelpers
import NIOCore
import WebSocketFraming

/// One `DeflateCodecPool` per event loop: connections that compress or decompress without
/// context takeover borrow a zlib stream per message from their loop's pool, so idle
/// connections hold no zlib state (the memory-light mode of permessage-deflate).
enum SharedCodecs {
    /// A pool used only on its own event loop.
    private final class Entry: @unchecked Sendable {
        let pool = DeflateCodecPool()
    }

    private static let pools = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    /// The pool of `eventLoop`; call on that loop only.
    static func pool(for eventLoop: EventLoop) -> DeflateCodecPool {
        eventLoop.preconditionInEventLoop()
        let id = ObjectIdentifier(eventLoop)
        return pools.withLockedValue { pools in
            if let entry = pools[id] { return entry.pool }
            let entry = Entry()
            pools[id] = entry
            return entry.pool
        }
    }
}
