import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import Testing

// The Python side of the Socket.IO client interop tests: a python-socketio 5.x
// AsyncServer on aiohttp (both from the project's .venv), run as a separate process
// that reports what it sees as JSON lines on stdout.

enum SocketIOPeer {
    /// Whether `.venv/bin/python` imports python-socketio 5.x and aiohttp (checked once).
    static let isAvailable = PythonPeer.runs("import sys, socketio, aiohttp, importlib.metadata as m; sys.exit(0 if m.version('python-socketio').startswith('5.') else 1)")

    /// The reason printed when the tests skip.
    static let missing: Comment = "python-socketio 5.x with aiohttp not found at .venv/bin/python (run scripts/test, or: .venv/bin/pip install 'python-socketio>=5,<6' aiohttp)"

    /// The server script, written once per test process into a temporary directory.
    static let script: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("swift-socketio-client-interop-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("sio_server.py")
        try? Data(serverScript.utf8).write(to: url)
        return url
    }()

    /// Starts a python-socketio server (port 0: any free port); returns once it listens.
    static func server(port: Int = 0, pingInterval: Double = 25, pingTimeout: Double = 20,
                       tls: (certificate: String, key: String)? = nil,
                       timeout: Double = 30) async throws -> (PythonProcess, port: Int) {
        var config = #"{"port": \#(port), "ping_interval": \#(pingInterval), "ping_timeout": \#(pingTimeout), "limit": 120"#
        if let tls { config += #", "certfile": "\#(tls.certificate)", "keyfile": "\#(tls.key)""# }
        config += "}"
        let peer = try PythonProcess(arguments: [script.path, config], label: "python-socketio server")
        do {
            let listening = try await peer.waitFor("listening", timeout: timeout) { $0.event == "listening" }
            guard let port = listening.port else { throw PeerError("python server printed no port") }
            return (peer, port)
        } catch {
            peer.stop()
            throw error
        }
    }

    static let serverScript = #"""
import asyncio
import json
import os
import sys
import threading
import time

import socketio
from aiohttp import web

cfg = json.loads(sys.argv[1])


def report(**fields):
    fields["t"] = round(time.time(), 3)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def watchdog(limit):
    """Exit when the test process goes away (stdin closes) or after `limit` seconds."""
    def on_eof():
        try:
            sys.stdin.buffer.read()
        except Exception:
            pass
        os._exit(0)
    threading.Thread(target=on_eof, daemon=True).start()
    timer = threading.Timer(limit, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=cfg["ping_interval"],
                           ping_timeout=cfg["ping_timeout"], max_http_buffer_size=10_000_000)
app = web.Application()
sio.attach(app)


def query_transport(environ):
    for part in environ.get("QUERY_STRING", "").split("&"):
        if part.startswith("transport="):
            return part[len("transport="):]
    return ""


def register(ns):
    async def connect(sid, environ, auth):
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        if token == "bad":
            report(event="rejected", detail=ns)
            raise socketio.exceptions.ConnectionRefusedError("bad token", {"code": 42})
        report(event="connect", id=sid, detail=ns, kind=query_transport(environ),
               eio=sio.manager.eio_sid_from_sid(sid, ns), auth=auth)

    async def disconnect(sid, reason=None):
        report(event="disconnect", id=sid, detail=ns, reason=str(reason))

    async def any_event(event, sid, *args):
        report(event="received", id=sid, detail=ns, name=event, count=len(args),
               args=json.dumps(args, default=lambda b: {"bytes": len(b)}))
        if event == "join":
            await sio.enter_room(sid, args[0], namespace=ns)
            return "joined"
        if event == "to-room":
            await sio.emit(args[1], tuple(args[2:]), room=args[0], namespace=ns)
            return "sent"
        if event == "broadcast":
            await sio.emit(args[0], tuple(args[1:]), skip_sid=sid, namespace=ns)
            return "sent"
        if event == "transport":
            return sio.transport(sid, namespace=ns)
        if event == "call-me":
            try:
                answer = await sio.call(args[0], tuple(args[1:]), to=sid, namespace=ns, timeout=10)
            except Exception as exc:
                answer = "error: " + repr(exc)
            if not isinstance(answer, tuple):
                answer = () if answer is None else (answer,)
            await sio.emit("call-result", answer, to=sid, namespace=ns)
            return None
        if event == "slow-ack":
            await asyncio.sleep(3)
            return "late"
        if event == "server-disconnect":
            await sio.disconnect(sid, namespace=ns)
            return None
        await sio.emit(event, tuple(args), to=sid, namespace=ns)
        return tuple(args)

    sio.on("connect", connect, namespace=ns)
    sio.on("disconnect", disconnect, namespace=ns)
    sio.on("*", any_event, namespace=ns)


register("/")
register("/chat")


async def main():
    watchdog(cfg.get("limit", 120))
    runner = web.AppRunner(app)
    await runner.setup()
    ssl_context = None
    if "certfile" in cfg:
        import ssl
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(cfg["certfile"], cfg["keyfile"])
    site = web.TCPSite(runner, "127.0.0.1", cfg["port"], reuse_address=True, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    report(event="listening", port=port)
    await asyncio.get_running_loop().create_future()


asyncio.run(main())
"""#
}

/// Records a socket's events and lets a test wait for them (bounded).
final class EventLog: @unchecked Sendable {
    private let lock = NIOLock()
    private var events: [SocketIOEvent] = []

    /// Records `names` on `socket` (and every server event through `onAny`).
    init(_ socket: SocketIOClient, reserved: [String] = [
        "connect", "disconnect", "connect_error", "reconnect_attempt", "reconnect", "reconnect_failed",
    ]) {
        for name in reserved { socket.on(name) { [self] event in lock.withLock { events.append(event) } } }
        socket.onAny { [self] event in lock.withLock { events.append(event) } }
    }

    /// The events named `name` so far.
    func all(_ name: String) -> [SocketIOEvent] { lock.withLock { events.filter { $0.name == name } } }

    /// Waits until `count` events named `name` arrived; returns them.
    @discardableResult
    func wait(_ name: String, count: Int = 1, timeout: Double = 15) async throws -> [SocketIOEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let found = all(name)
            if found.count >= count { return found }
            if Date() >= deadline {
                let seen = lock.withLock { events.map { "\($0.name) \($0)" } }
                throw PeerError("timed out after \(timeout) s waiting for \(count) × \(name); saw: \(seen)")
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

/// Client options for the tests: no autoconnect (handlers first), fast reconnection.
func testClientOptions(_ transports: [SocketIOClientOptions.Transport] = [.polling, .websocket]) -> SocketIOClientOptions {
    var options = SocketIOClientOptions()
    options.transports = transports
    options.autoConnect = false
    options.reconnectionDelay = .milliseconds(100)
    options.reconnectionDelayMax = .milliseconds(500)
    options.timeout = .seconds(10)
    return options
}

/// A connected client and its event log.
func connectedClient(port: Int, namespace: String = "/", _ options: SocketIOClientOptions) async throws -> (SocketIOClient, EventLog) {
    let socket = io("http://127.0.0.1:\(port)\(namespace == "/" ? "" : namespace)", options: options)
    let log = EventLog(socket)
    socket.connect()
    try await log.wait("connect")
    return (socket, log)
}
