import Foundation
import NIOConcurrencyHelpers
import WebSockets

/// `wsload serve`: the echo server the scenarios measure, in a process of its own so that
/// its memory and descriptors can be read from /proc without the clients mixed in.
/// `GET /stats` answers `connections N` (the server's open WebSocket count).
struct ServeOptions {
    var deflate = true
    var noContextTakeover = false
    var fragmentSize: Int?
}

func runServe(_ options: ServeOptions) async -> Int32 {
    ProcessStats.raiseFileLimit()
    var configuration = ServerConfiguration()
    configuration.connection.logger.logLevel = .error
    configuration.deflate.enabled = options.deflate
    if options.noContextTakeover {
        // Both directions reset per message: this server then borrows zlib streams from
        // its event loop's pool instead of holding two per connection.
        configuration.deflate.serverNoContextTakeover = true
        configuration.deflate.clientNoContextTakeover = true
    }
    if let size = options.fragmentSize { configuration.connection.fragmentSize = size }
    let holder = NIOLockedValueBox<WebSocketServer?>(nil)
    let server: WebSocketServer
    do {
        server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0, configuration: configuration) { request in
            guard request.uri == "/stats" else { return .text("wsload: WebSocket echo\n", status: 426) }
            let count = holder.withLockedValue { $0?.connectionCount } ?? -1
            return .text("connections \(count)\n")
        }
    } catch {
        FileHandle.standardError.write(Data("wsload serve: cannot listen: \(error)\n".utf8))
        return 1
    }
    holder.withLockedValue { $0 = server }
    server.onconnection = { ws, _ in
        ws.onmessage = { event in try? ws.send(event.data) }
    }
    FileHandle.standardOutput.write(Data("listening on \(server.host):\(server.port)\n".utf8))
    // The parent holds our stdin: when it goes away (closed pipe), so do we.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        Thread.detachNewThread {
            while readLine() != nil {}
            done.resume()
        }
    }
    await server.shutdown(deadline: .seconds(2))
    return 0
}
