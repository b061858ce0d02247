/// Creates a Socket.IO client for `url`, like socket.io-client's `io(url)`: a new
/// `SocketIOManager` for the server and the socket of the namespace in the URL's path
/// (`io("http://localhost:8080/chat")` joins "/chat"). It connects right away unless
/// `options.autoConnect` is false. To share one connection among namespaces, create a
/// `SocketIOManager` and call its `socket(_:)` for each.
///
/// An invalid URL does not crash: the socket reports `connect_error` with the reason.
public func io(_ url: String, options: SocketIOClientOptions = .init()) -> SocketIOClient {
    let manager = SocketIOManager(url, options: options)
    return manager.socket(manager.address?.namespace ?? "/")
}
