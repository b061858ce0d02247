import Foundation
import SocketIO
import Testing
import WebSockets

// A mixed Socket.IO cluster on one Redis: our node (SocketIORedisAdapter) and a
// python-socketio node (AsyncServer on aiohttp with AsyncRedisManager). python-socketio
// clients connect to each; room emits and broadcasts made on either node reach the
// clients of the other.

enum SocketIORedisPeer {
    /// The Redis that scripts/test starts (`redis://:password@127.0.0.1:port/db`).
    static let url: String? = ProcessInfo.processInfo.environment["WS_REDIS_URL"]

    /// Whether .venv has python-socketio with the redis package.
    static let isAvailable = url != nil && SocketIOPythonPeer.isAvailable && PythonPeer.runs("import redis.asyncio")

    static let missing: Comment = "needs WS_REDIS_URL (scripts/test starts a Redis) and python-socketio + redis in .venv"

    static let nodeScript: URL = {
        let url = SocketIOPythonPeer.clientScript.deletingLastPathComponent().appendingPathComponent("sio_redis_node.py")
        try? Data(nodeSource.utf8).write(to: url)
        return url
    }()

    /// Starts the python-socketio node; returns it with its URL.
    static func startNode(redis: String) async throws -> (PythonProcess, String) {
        let node = try PythonProcess(arguments: [nodeScript.path, redis], label: "python-socketio node")
        let line = try await node.waitForLine(timeout: 30) { $0.hasPrefix("listening on ") }
        return (node, "http://" + line.dropFirst("listening on ".count))
    }

    static let nodeSource = #"""
import asyncio, sys
import socketio
from aiohttp import web

mgr = socketio.AsyncRedisManager(sys.argv[1])
sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=mgr)
app = web.Application()
sio.attach(app)

@sio.event
async def join(sid, room):
    await sio.enter_room(sid, room)
    return "joined"

@sio.on("to-room")
async def to_room(sid, room, event, *args):
    await sio.emit(event, tuple(args), room=room)

@sio.on("broadcast")
async def broadcast(sid, event, *args):
    await sio.emit(event, tuple(args), skip_sid=sid)

async def main():
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    # Exit when the test process goes away (stdin closes) or after 5 minutes.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await asyncio.wait_for(reader.read(), 300)
    except asyncio.TimeoutError:
        pass

asyncio.run(main())
"""#
}

@Suite(.serialized, .enabled(if: SocketIORedisPeer.isAvailable, SocketIORedisPeer.missing))
struct SocketIORedisClusterTests {
    @Test func roomEmitsAndBroadcastsCrossBetweenOurNodeAndPythonsNode() async throws {
        let redis = SocketIORedisPeer.url!
        let ours = try await TestSocketIOServer.start()
        let adapter = try await SocketIORedisAdapter.attach(to: ours.io, url: redis)
        let (node, pythonURL) = try await SocketIORedisPeer.startNode(redis: redis)
        defer { node.stop() }
        let peer = try SocketIOPythonPeer.client("cluster", url: ours.url, transports: pythonURL)
        defer { peer.stop() }
        try await sioWait(peer, "done", timeout: 40)
        // "a" is on our node, "b" on python's; both joined "r"; "c" (python's) did not.
        let got = sioEvents(peer, "received")
        func saw(_ client: String, _ name: String) -> [Any] {
            got.filter { $0["client"] as? String == client && $0["name"] as? String == name }.compactMap { $0["args"] }
        }
        #expect(saw("b", "from-ours").count == 1, "our room emit reached python's client")
        #expect(sameJSON(saw("b", "from-ours").first, [["n": 1, "bin": ["$bytes": "00ff"]]]))
        #expect(saw("c", "from-ours").isEmpty, "not in the room")
        #expect(saw("a", "from-python").count == 1, "python's room emit reached our client")
        #expect(sameJSON(saw("a", "from-python").first, ["x", 2]))
        #expect(saw("b", "ours-broadcast").count == 1 && saw("c", "ours-broadcast").count == 1)
        #expect(saw("a", "ours-broadcast").isEmpty, "not back to the sender")
        #expect(saw("a", "py-broadcast").count == 1)
        #expect(saw("b", "py-broadcast").isEmpty, "not back to the sender")
        await adapter.close()
        await ours.stop()
    }
}
