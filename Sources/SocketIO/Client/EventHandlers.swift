import NIOConcurrencyHelpers

/// Identifies a handler registered with `on`, `once` or `onAny`, for `off(_:)`.
public struct SocketIOHandlerID: Hashable, Sendable {
    let value: Int
}

/// The handlers of one socket or manager, by event name. Thread-safe; handlers are
/// called outside the lock, so they may register or remove handlers themselves.
final class EventHandlers: Sendable {
    private struct Entry {
        var id: Int
        /// nil: every event (`onAny`).
        var event: String?
        var once: Bool
        var handler: @Sendable (SocketIOEvent) -> Void
    }

    private struct State {
        var entries: [Entry] = []
        var nextID = 0
        /// Lifecycle events that found no handler, kept for one registered later.
        var unheard: [String: SocketIOEvent] = [:]
    }

    /// Events kept for a late handler: `io(url)` starts connecting at once, and a fast
    /// server can answer before the line that registers `on("connect")`.
    private static let kept: Set<String> = ["connect", "connect_error"]

    private let state = NIOLockedValueBox(State())

    @discardableResult
    func add(_ event: String?, once: Bool, _ handler: @escaping @Sendable (SocketIOEvent) -> Void) -> SocketIOHandlerID {
        state.withLockedValue { state in
            state.nextID += 1
            state.entries.append(Entry(id: state.nextID, event: event, once: once, handler: handler))
            return SocketIOHandlerID(value: state.nextID)
        }
    }

    func remove(_ id: SocketIOHandlerID) {
        state.withLockedValue { $0.entries.removeAll { $0.id == id.value } }
    }

    func removeAll(_ event: String?) {
        state.withLockedValue { state in
            if let event { state.entries.removeAll { $0.event == event } } else { state.entries.removeAll() }
        }
    }

    /// Calls the handlers of `event.name` in registration order (and the catch-all
    /// handlers when `includeAny`), dropping `once` handlers as they are taken.
    func dispatch(_ event: SocketIOEvent, includeAny: Bool = false) {
        let handlers: [@Sendable (SocketIOEvent) -> Void] = state.withLockedValue { state in
            var picked: [@Sendable (SocketIOEvent) -> Void] = []
            state.entries.removeAll { entry in
                guard entry.event == event.name || (includeAny && entry.event == nil) else { return false }
                picked.append(entry.handler)
                return entry.once
            }
            if picked.isEmpty && Self.kept.contains(event.name) { state.unheard[event.name] = event }
            // A later state makes an unheard one stale.
            if event.name == "disconnect" { state.unheard["connect"] = nil }
            if event.name == "connect" { state.unheard["connect_error"] = nil }
            return picked
        }
        for handler in handlers { handler(event) }
    }

    /// The lifecycle event `name` that happened before any handler for it existed (taken:
    /// it is handed out once).
    func takeUnheard(_ name: String) -> SocketIOEvent? {
        state.withLockedValue { $0.unheard.removeValue(forKey: name) }
    }
}

/// Work collected under a lock and done after it is released: handler calls never run
/// while the client's lock is held.
struct DeferredCalls {
    private(set) var calls: [@Sendable () -> Void] = []

    mutating func add(_ call: @escaping @Sendable () -> Void) { calls.append(call) }

    /// Queues a handler dispatch.
    mutating func emit(_ handlers: EventHandlers, _ name: String, _ args: [JSONValue] = []) {
        let event = SocketIOEvent(name: name, args: args)
        calls.append { handlers.dispatch(event) }
    }
}
