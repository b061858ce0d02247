// wsecho: echo server and echo client for interop testing (see DESIGN.md, "Command-line
// contracts"). Everything here goes through the public API of the WebSockets library.
import Dispatch
import Foundation
import NIOCore
import NIOSSL
import SocketIO
import WebSockets

let usage = """
    usage: wsecho server [--host 127.0.0.1] [--port 9001] [--no-deflate] [--tls-cert PEM --tls-key PEM]
           wsecho client --url URL [--no-deflate]
           wsecho socketio [--host 127.0.0.1] [--port 9002]
    """

let help = """
    \(usage)

    server    Echo server: every text or binary message comes back unchanged, with the
              same type. Pings are answered and the closing handshake is completed by the
              library. permessage-deflate is negotiated unless --no-deflate. With
              --tls-cert and --tls-key (PEM files) it speaks wss://. Prints
              "listening on HOST:PORT" once it accepts connections (--port 0 picks a free
              port) and runs until SIGINT or SIGTERM, then shuts down gracefully (1001).
    client    Connects to URL (ws:// or wss://), offers permessage-deflate unless
              --no-deflate, echoes every message it receives until the connection closes,
              then exits 0. Exits 1 with a one-line error on stderr when it cannot
              connect or the opening handshake fails.
    socketio  Socket.IO v5 echo server (Engine.IO v4, long-polling and WebSocket, at
              /socket.io/, on every namespace). Every event comes back to its sender
              with the same arguments, and is acknowledged with them when the client
              asked. Commands (also echoed): "join" ROOM joins a room; "to-room" with
              [ROOM, EVENT, ARGS...] emits EVENT to the room's members; "broadcast" with
              [EVENT, ARGS...] emits to every other client of the namespace. Other paths
              answer plain HTTP. Prints "listening on HOST:PORT" once ready (default
              port 9002).

    Limits (both server and client), raised above the library defaults so that interop
    suites with large messages pass: messages and frames up to \(EchoLimits.maxMessageSize >> 20) MiB
    (larger ones close with 1009), outgoing messages fragmented at 1 MiB, and up to
    \(EchoLimits.maxBufferedBytes >> 20) MiB of echoes queued per connection.
    Bad arguments print the usage line on stderr and exit 2.
    """

enum EchoLimits {
    static let maxMessageSize = 64 << 20
    static let maxBufferedBytes = 256 << 20
}

/// Writes a line to stdout, unbuffered (the "listening on" line must reach pipes at once).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Writes a line to stderr.
func complain(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Usage on stderr, exit 2.
func badArguments(_ why: String) -> Never {
    complain("wsecho: \(why)")
    complain(usage)
    exit(2)
}

// MARK: Arguments

struct ServerOptions {
    var host = "127.0.0.1"
    var port = 9001
    var deflate = true
    var tlsCert: String?
    var tlsKey: String?
}

struct ClientOptions {
    var url: String?
    var deflate = true
}

/// Splits `--name value` and `--name=value` options; flags take no value.
struct ArgumentReader {
    private var rest: ArraySlice<String>

    init(_ arguments: ArraySlice<String>) { rest = arguments }

    /// The next option name and, for options in `valued`, its value.
    mutating func next(valued: Set<String>) -> (name: String, value: String?)? {
        guard let argument = rest.popFirst() else { return nil }
        guard argument.hasPrefix("--") else { badArguments("unexpected argument \(argument)") }
        var name = argument
        var inline: String?
        if let eq = argument.firstIndex(of: "=") {
            name = String(argument[..<eq])
            inline = String(argument[argument.index(after: eq)...])
        }
        if valued.contains(name) {
            if let inline { return (name, inline) }
            guard let value = rest.popFirst() else { badArguments("\(name) needs a value") }
            return (name, value)
        }
        if inline != nil { badArguments("\(name) takes no value") }
        return (name, nil)
    }
}

func parsePort(_ text: String) -> Int {
    guard let port = Int(text), (0...65535).contains(port) else { badArguments("invalid port \(text)") }
    return port
}

func parseServerOptions(_ arguments: ArraySlice<String>) -> ServerOptions {
    var options = ServerOptions()
    var reader = ArgumentReader(arguments)
    while let (name, value) = reader.next(valued: ["--host", "--port", "--tls-cert", "--tls-key"]) {
        switch name {
        case "--host": options.host = value!
        case "--port": options.port = parsePort(value!)
        case "--no-deflate": options.deflate = false
        case "--tls-cert": options.tlsCert = value!
        case "--tls-key": options.tlsKey = value!
        case "--help": printHelpAndExit()
        default: badArguments("unknown option \(name) for server")
        }
    }
    if (options.tlsCert == nil) != (options.tlsKey == nil) {
        badArguments("--tls-cert and --tls-key go together")
    }
    return options
}

func parseClientOptions(_ arguments: ArraySlice<String>) -> ClientOptions {
    var options = ClientOptions()
    var reader = ArgumentReader(arguments)
    while let (name, value) = reader.next(valued: ["--url"]) {
        switch name {
        case "--url": options.url = value!
        case "--no-deflate": options.deflate = false
        case "--help": printHelpAndExit()
        default: badArguments("unknown option \(name) for client")
        }
    }
    if options.url == nil { badArguments("client needs --url") }
    return options
}

func printHelpAndExit() -> Never {
    say(help)
    exit(0)
}

// MARK: Signals

/// SIGINT and SIGTERM as an async sequence. Created before listening so that a signal
/// sent right after the "listening on" line is not lost.
final class Signals {
    let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "wsecho.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)  // the dispatch source gets it instead
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        self.stream = stream
        self.sources = sources
    }

    /// Waits for the first signal.
    func first() async -> Int32 {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? SIGTERM
    }
}

// MARK: Server

func connectionSettings() -> ConnectionConfiguration {
    var connection = ConnectionConfiguration()
    connection.maxMessageSize = EchoLimits.maxMessageSize
    connection.maxFrameSize = EchoLimits.maxMessageSize
    connection.maxBufferedBytes = EchoLimits.maxBufferedBytes
    connection.logger.logLevel = .warning  // stdout and stderr stay for the contract's lines
    return connection
}

/// Echoes through the async API, so a client that sends faster than it reads is slowed
/// down by TCP instead of growing the server's memory.
func echo(_ ws: WebSocket, messages: MessageQueue) async {
    do {
        for try await message in messages {
            try await ws.send(message)
        }
    } catch {
        // The connection closed or failed while echoing; the library reports it to the peer.
    }
}

func runServer(_ options: ServerOptions) async -> Int32 {
    var configuration = ServerConfiguration()
    configuration.connection = connectionSettings()
    if !options.deflate { configuration.deflate.enabled = false }
    if let certPath = options.tlsCert, let keyPath = options.tlsKey {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certPath).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            configuration.tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        } catch {
            complain("wsecho: cannot load TLS certificate or key: \(error)")
            return 1
        }
    }
    let signals = Signals()
    let server: WebSocketServer
    do {
        server = try await WebSocketServer.listen(host: options.host, port: options.port, configuration: configuration) { _ in
            .text("wsecho: this port speaks WebSocket\n", status: 426)
        }
    } catch {
        complain("wsecho: cannot listen on \(options.host):\(options.port): \(error)")
        return 1
    }
    server.onconnection = { ws, _ in
        // Claim the async sequence before the first message can arrive.
        let messages = ws.messages
        Task { await echo(ws, messages: messages) }
    }
    say("listening on \(server.host):\(server.port)")
    _ = await signals.first()
    await server.shutdown(deadline: .seconds(2))
    return 0
}

// MARK: Socket.IO

/// Wires the echo and the three commands on one namespace.
func serveSocketIOEcho(_ namespace: SocketIONamespace) {
    namespace.on("connection") { socket in
        socket.onAny { event in
            socket.emit(event.name, with: event.args)
            if event.wantsAck { event.ack(with: event.args) }
            switch event.name {
            case "join":
                if let room = event.data.stringValue { socket.join(room) }
            case "to-room":
                if let room = event.args.first?.stringValue, let name = event.args.dropFirst().first?.stringValue {
                    namespace.to(room).emit(name, with: Array(event.args.dropFirst(2)))
                }
            case "broadcast":
                if let name = event.data.stringValue {
                    socket.broadcast.emit(name, with: Array(event.args.dropFirst()))
                }
            default:
                break
            }
        }
    }
}

func runSocketIO(_ options: ServerOptions) async -> Int32 {
    let signals = Signals()
    let server: WebSocketServer
    do {
        var configuration = ServerConfiguration()
        configuration.connection = connectionSettings()
        server = try await WebSocketServer.listen(host: options.host, port: options.port, configuration: configuration) { _ in
            .text("wsecho socketio: Socket.IO lives at /socket.io/\n", status: 404)
        }
    } catch {
        complain("wsecho: cannot listen on \(options.host):\(options.port): \(error)")
        return 1
    }
    var settings = SocketIOServerConfiguration()
    settings.logger.logLevel = .warning
    let io = SocketIOServer(attachingTo: server, configuration: settings)
    serveSocketIOEcho(io.of("/"))
    io.allowNamespaces({ _, _ in true }, setUp: serveSocketIOEcho)
    say("listening on \(server.host):\(server.port)")
    _ = await signals.first()
    io.close()
    await server.shutdown(deadline: .seconds(2))
    return 0
}

// MARK: Client

func runClient(_ options: ClientOptions) async -> Int32 {
    var configuration = ClientConfiguration()
    configuration.connection = connectionSettings()
    if !options.deflate { configuration.deflate = nil }
    let url = options.url!
    let ws: WebSocket
    do {
        ws = try await WebSocket.connect(to: url, configuration: configuration)
    } catch {
        complain("wsecho: cannot connect to \(url): \(error)")
        return 1
    }
    var failure: Error?
    do {
        for try await message in ws.messages {
            do { try await ws.send(message) } catch { break }  // closing: stop echoing
        }
    } catch {
        failure = error
    }
    await ws.closed()
    if let failure { complain("wsecho: connection ended without a closing handshake: \(failure)") }
    return 0
}

// MARK: Main

let arguments = CommandLine.arguments.dropFirst()
guard let command = arguments.first else { badArguments("missing command") }
let rest = arguments.dropFirst()
let status: Int32
switch command {
case "server":
    status = await runServer(parseServerOptions(rest))
case "client":
    status = await runClient(parseClientOptions(rest))
case "socketio":
    var options = parseServerOptions(rest)
    if !rest.contains("--port") { options.port = 9002 }
    status = await runSocketIO(options)
case "--help", "-h", "help":
    printHelpAndExit()
default:
    badArguments("unknown command \(command)")
}
exit(status)
