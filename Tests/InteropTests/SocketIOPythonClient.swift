import Foundation
import Testing

// python-socketio 5.x clients (socketio.AsyncClient on aiohttp, from the project's .venv)
// run scenarios against our Socket.IO server and report what they saw as JSON lines.

enum SocketIOPythonPeer {
    /// Whether .venv has python-socketio 5.x and aiohttp (the client tests' check).
    static let isAvailable = SocketIOPeer.isAvailable

    static let missing: Comment = "python-socketio 5.x and aiohttp not found in .venv (run scripts/test, or: .venv/bin/pip install 'python-socketio>=5,<6' aiohttp)"

    /// The client script, written once per test process.
    static let clientScript: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("swift-websockets-socketio-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("sio_client.py")
        try? Data(clientSource.utf8).write(to: url)
        return url
    }()

    /// Starts a scenario: `python sio_client.py SCENARIO URL TRANSPORTS` (for "cluster",
    /// the third argument is the second node's URL).
    static func client(_ scenario: String, url: String, transports: String = "default") throws -> PythonProcess {
        try PythonProcess(arguments: [clientScript.path, scenario, url, transports], label: "python-socketio \(scenario)")
    }

    static let clientSource = #"""
import asyncio, json, sys
import socketio

def plain(v):
    """JSON-friendly form: bytes become {"$bytes": hex}."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v

def out(**kw):
    print(json.dumps(plain(kw)), flush=True)

def client(**kw):
    opts = dict(reconnection=False)
    opts.update(kw)
    return socketio.AsyncClient(**opts)

def recorder(sio, name, namespace="/"):
    queue = asyncio.Queue()
    async def on_any(event, *args):
        await queue.put((event, list(args)))
        out(event="received", client=name, name=event, args=list(args), namespace=namespace)
    sio.on("*", on_any, namespace=namespace)
    return queue

async def expect(queue, name, timeout=10):
    while True:
        event, args = await asyncio.wait_for(queue.get(), timeout)
        if event == name:
            return args

async def basic(url, transports):
    sio = client()
    got = recorder(sio, "a")
    @sio.on("question")
    def question(*args):
        return ("reply",) + args
    await sio.connect(url, transports=transports, auth={"token": "good"}, wait_timeout=10)
    out(event="connected", sid=sio.get_sid(), transport=sio.transport())
    for _ in range(100):
        if transports is not None or sio.transport() == "websocket":
            break
        await asyncio.sleep(0.05)
    out(event="transport", transport=sio.transport())
    await sio.emit("echo", ("hi", {"n": 1, "list": [True, None, 2.5]}))
    args = await expect(got, "echo")
    out(event="echo", ok=args == ["hi", {"n": 1, "list": [True, None, 2.5]}], args=args)
    ack = await sio.call("echo", ("x", 2), timeout=10)
    out(event="ack", args=list(ack) if isinstance(ack, tuple) else [ack])
    payload = {"b": b"\x00\x01\xff", "nested": [b"xy", "s", {"deep": b"\x80" * 3}]}
    await sio.emit("bin", payload)
    args = await expect(got, "bin")
    out(event="binary", ok=args == [payload])
    big = bytes(range(256)) * 1200
    ack = await sio.call("bin", big, timeout=10)
    out(event="binary-ack", ok=ack == big, size=len(ack) if isinstance(ack, bytes) else -1)
    await sio.emit("ask-client", ("q", 1))
    args = await expect(got, "answer")
    out(event="answer", args=args)
    await sio.disconnect()
    out(event="done")

async def rooms(url, transports):
    names = ["a", "b", "c"]
    clients = {n: client() for n in names}
    queues = {n: recorder(clients[n], n) for n in names}
    for n in names:
        await clients[n].connect(url, transports=transports, wait_timeout=10)
    for n in ["a", "b"]:
        await clients[n].call("join", "room1", timeout=10)
    await clients["c"].emit("to-room", ("room1", "news", {"x": 1}))
    for n in ["a", "b"]:
        args = await expect(queues[n], "news")
        out(event="news", client=n, args=args)
    await clients["a"].emit("broadcast", ("hey", 7))
    for n in ["b", "c"]:
        args = await expect(queues[n], "hey")
        out(event="hey", client=n, args=args)
    # A marker after the broadcast: if "a" got "hey" it arrived before this echo.
    await clients["a"].emit("marker")
    await expect(queues["a"], "marker")
    out(event="done")
    for c in clients.values():
        await c.disconnect()

async def namespaces(url, transports):
    sio = client()
    root = recorder(sio, "a", "/")
    chat = recorder(sio, "a", "/chat")
    await sio.connect(url, transports=transports, namespaces=["/", "/chat"], wait_timeout=10)
    out(event="connected", root=sio.get_sid("/"), chat=sio.get_sid("/chat"))
    await sio.emit("echo", "on root", namespace="/")
    await sio.emit("echo", "on chat", namespace="/chat")
    out(event="root", args=await expect(root, "echo"))
    out(event="chat", args=await expect(chat, "echo"))
    ack = await sio.call("echo", "ack on chat", namespace="/chat", timeout=10)
    out(event="chat-ack", args=[ack])
    await sio.disconnect()
    out(event="done")

async def auth(url, transports):
    sio = client()
    errors = []
    @sio.event
    async def connect_error(data):
        errors.append(data)
    try:
        await sio.connect(url, transports=transports, auth={"token": "bad"}, wait_timeout=10)
        out(event="connected")
    except socketio.exceptions.ConnectionError as e:
        out(event="refused", error=str(e), data=errors[0] if errors else None)

async def idle(url, transports):
    sio = client()
    await sio.connect(url, transports=transports, wait_timeout=10)
    out(event="connected", sid=sio.get_sid(), transport=sio.transport())
    await asyncio.sleep(60)

async def reconnect(url, transports):
    sio = client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5)
    got = recorder(sio, "a")
    connected = asyncio.Queue()
    @sio.event
    async def connect():
        await connected.put(sio.get_sid())
    @sio.event
    async def disconnect(*reason):
        out(event="disconnected", reason=[str(r) for r in reason])
    await sio.connect(url, transports=transports, wait_timeout=10, retry=True)
    out(event="connected", n=1, sid=await connected.get())
    sid = await asyncio.wait_for(connected.get(), 30)
    out(event="connected", n=2, sid=sid)
    await sio.emit("echo", "after restart")
    out(event="echo", args=await expect(got, "echo"))
    await sio.disconnect()
    out(event="done")

async def cluster(ours, theirs):
    """a on our node; b and c on the python node; a and b join room r."""
    a, b, c = client(), client(), client()
    qa, qb, qc = recorder(a, "a"), recorder(b, "b"), recorder(c, "c")
    await a.connect(ours, wait_timeout=10)
    await b.connect(theirs, wait_timeout=10)
    await c.connect(theirs, wait_timeout=10)
    await a.call("join", "r", timeout=10)
    await b.call("join", "r", timeout=10)
    await a.emit("to-room", ("r", "from-ours", {"n": 1, "bin": b"\x00\xff"}))
    await expect(qb, "from-ours")
    await b.emit("to-room", ("r", "from-python", "x", 2))
    await expect(qa, "from-python")
    await a.emit("broadcast", ("ours-broadcast",))
    await expect(qb, "ours-broadcast")
    await expect(qc, "ours-broadcast")
    await b.emit("broadcast", ("py-broadcast",))
    await expect(qa, "py-broadcast")
    await expect(qc, "py-broadcast")
    await asyncio.sleep(0.3)  # time for anything that should not arrive
    out(event="done")
    for x in (a, b, c):
        await x.disconnect()

async def main():
    scenario, url, transports = sys.argv[1], sys.argv[2], sys.argv[3]
    if scenario == "cluster":
        try:
            await asyncio.wait_for(cluster(url, transports), 90)
        except Exception as e:
            out(event="error", error=f"{type(e).__name__}: {e}")
        return
    transports = None if transports == "default" else transports.split(",")
    try:
        await asyncio.wait_for(globals()[scenario](url, transports), 90)
    except Exception as e:
        out(event="error", error=f"{type(e).__name__}: {e}")

asyncio.run(main())
"""#
}
