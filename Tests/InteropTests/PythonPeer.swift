import Foundation
import NIOConcurrencyHelpers
import Testing
import WebSockets

// The Python side of the interop tests: python-websockets 17.x from the project's .venv,
// run as separate processes that report what they observe as JSON lines on stdout.

/// Where the Python peer lives, whether it is usable, and the script it runs.
enum PythonPeer {
    /// The package root, from this file's path (not the working directory).
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `.venv/bin/python`, provisioned by `scripts/test`.
    static let python = packageRoot.appendingPathComponent(".venv/bin/python")

    /// Whether `.venv/bin/python` exists and imports websockets 17.x (checked once).
    static let isAvailable = runs("import sys, websockets; sys.exit(0 if websockets.__version__.startswith('17.') else 1)")

    /// Whether `.venv/bin/python -c code` exits 0 within 20 s (how the tests check that
    /// a Python peer is installed).
    static func runs(_ code: String) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: python.path) else { return false }
        let check = Process()
        check.executableURL = python
        check.arguments = ["-c", code]
        check.standardOutput = FileHandle.nullDevice
        check.standardError = FileHandle.nullDevice
        do { try check.run() } catch { return false }
        let deadline = Date().addingTimeInterval(20)
        while check.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if check.isRunning {
            check.terminate()
            return false
        }
        return check.terminationStatus == 0
    }

    /// The reason printed when the tests skip.
    static let missing: Comment = "python websockets 17.x not found at .venv/bin/python (run scripts/test, or: python3 -m venv .venv && .venv/bin/pip install 'websockets>=17,<18')"

    /// The peer script, written once per test process into a temporary directory.
    static let script: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("swift-websockets-python-interop-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("peer.py")
        try? Data(peerScript.utf8).write(to: url)
        return url
    }()

    /// Starts a python-websockets server; returns once it printed its port.
    static func server(deflate: String, timeout: Double = 30) async throws -> (PythonProcess, port: Int) {
        let peer = try PythonProcess(arguments: [script.path, "server", #"{"limit": 80, "deflate": \#(deflate)}"#], label: "python server")
        do {
            let listening = try await peer.waitFor("listening", timeout: timeout) { $0.event == "listening" }
            guard let port = listening.port else { throw PeerError("python server printed no port") }
            return (peer, port)
        } catch {
            peer.stop()
            throw error
        }
    }

    /// Starts a python-websockets client running `steps` against `url`.
    static func client(url: String, deflate: String, steps: [[String: any Sendable]], cafile: String? = nil) throws -> PythonProcess {
        var config: [String: any Sendable] = ["limit": 80, "url": url, "steps": steps]
        if let cafile { config["cafile"] = cafile }
        var json = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        json.removeLast()  // the closing brace: the deflate configuration is JSON already
        json += #", "deflate": \#(deflate)}"#
        return try PythonProcess(arguments: [script.path, "client", json], label: "python client")
    }
}

/// A test failure with a message.
struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One JSON line from the Python peer (fields absent from an event are nil).
struct PyEvent: Decodable, Sendable, CustomStringConvertible {
    var event: String
    var id: String?
    var port: Int?
    var ok: Bool?
    var detail: String?
    var error: String?
    var count: Int?
    var kind: String?
    var size: Int?
    var gotKind: String?
    var gotSize: Int?
    var requestExtensions: String?
    var responseExtensions: String?
    var rcvdCode: Int?
    var rcvdReason: String?
    var sentCode: Int?
    var sentReason: String?
    var pong: Bool?
    var pingsIn: Int?
    var compressedIn: Int?
    var plainIn: Int?
    var raw = ""

    enum CodingKeys: String, CodingKey {
        case event, id, port, ok, detail, error, count, kind, size, gotKind, gotSize, requestExtensions
        case responseExtensions, rcvdCode, rcvdReason, sentCode, sentReason, pong, pingsIn, compressedIn, plainIn
    }

    var description: String { raw }
}

/// A Python process with its stdout parsed into events and its stderr kept for failure
/// messages. Its stdin stays open: the script exits when it closes (the test process
/// died) or after its own time limit; `stop()` kills it.
final class PythonProcess: @unchecked Sendable {
    let label: String
    private let process = Process()
    private let stdinPipe = Pipe()
    private let lock = NIOLock()
    private var lines: [PyEvent] = []
    private var rawLines: [String] = []
    private var errLines: [String] = []
    private var stdoutClosed = false

    init(executable: URL = PythonPeer.python, arguments: [String], label: String) throws {
        self.label = label
        let out = Pipe()
        let err = Pipe()
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = stdinPipe
        process.standardOutput = out
        process.standardError = err
        try process.run()
        Self.readLines(out.fileHandleForReading) { [self] line in
            lock.withLock {
                rawLines.append(line)
                if var event = try? JSONDecoder.snake.decode(PyEvent.self, from: Data(line.utf8)) {
                    event.raw = line
                    lines.append(event)
                }
            }
        } done: { [self] in
            lock.withLock { stdoutClosed = true }
        }
        Self.readLines(err.fileHandleForReading) { [self] line in
            lock.withLock { errLines.append(line) }
        } done: {}
    }

    /// Reads a pipe on its own thread (never on the cooperative pool) until EOF.
    private static func readLines(_ handle: FileHandle, _ sink: @escaping @Sendable (String) -> Void, done: @escaping @Sendable () -> Void) {
        let thread = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    sink(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty { sink(String(decoding: pending, as: UTF8.self)) }
            done()
        }
        thread.start()
    }

    /// The events (JSON lines on stdout) so far.
    var events: [PyEvent] { lock.withLock { lines } }

    /// All stdout lines so far.
    var stdoutLines: [String] { lock.withLock { rawLines } }

    /// All stderr lines so far.
    var stderrLines: [String] { lock.withLock { errLines } }

    /// What the process wrote so far, for failure messages.
    var transcript: String {
        lock.withLock {
            let out = rawLines.joined(separator: "\n")
            let err = errLines.joined(separator: "\n")
            return "\(label) stdout:\n\(out)\n\(label) stderr:\n\(err)"
        }
    }

    /// Waits (bounded) for the first event matching `match`.
    func waitFor(_ what: String, timeout: Double, _ match: (PyEvent) -> Bool) async throws -> PyEvent {
        try await waitFor(what, count: 1, timeout: timeout, match)[0]
    }

    /// Waits (bounded) until `count` events match `match`; returns the matching events.
    func waitFor(_ what: String, count: Int, timeout: Double, _ match: (PyEvent) -> Bool) async throws -> [PyEvent] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let (all, closed) = lock.withLock { (lines, stdoutClosed) }
            let found = all.filter(match)
            if found.count >= count { return found }
            if closed { throw PeerError("\(label) exited before \(what)\n\(transcript)") }
            if Date() >= deadline { throw PeerError("timed out after \(timeout) s waiting for \(what)\n\(transcript)") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// Waits (bounded) for the first stdout line matching `match`.
    func waitForLine(timeout: Double, _ match: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let (found, closed) = lock.withLock { (rawLines.first(where: match), stdoutClosed) }
            if let found { return found }
            if closed { throw PeerError("\(label) exited before printing the expected line\n\(transcript)") }
            if Date() >= deadline { throw PeerError("timed out after \(timeout) s waiting for a line\n\(transcript)") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    /// Waits (bounded) for the process to exit and its output to be read; returns its
    /// exit status, or nil on timeout.
    func waitForExit(timeout: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning || !lock.withLock({ stdoutClosed }) {
            if Date() >= deadline { return nil }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return process.terminationStatus
    }

    /// Sends a signal (SIGTERM, SIGINT) if the process still runs.
    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Kills the process: SIGTERM now, SIGKILL if it still runs a second later.
    func stop() {
        try? stdinPipe.fileHandleForWriting.close()
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        process.terminate()
        let process = self.process
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(1)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(pid, SIGKILL) }
        }
    }
}

extension JSONDecoder {
    static var snake: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// Runs `operation`, failing after `seconds`. The operation is not awaited past the
/// deadline (a receive without cancellation support would otherwise hang the test).
func withTimeout<T: Sendable>(
    _ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = ResumeOnce<T>()
    return try await withCheckedThrowingContinuation { continuation in
        once.set(continuation)
        let timer = Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            if Task.isCancelled { return }
            once.resume(.failure(PeerError("timed out after \(seconds) s: \(what)")))
        }
        Task {
            do {
                let value = try await operation()
                timer.cancel()
                once.resume(.success(value))
            } catch {
                timer.cancel()
                once.resume(.failure(error))
            }
        }
    }
}

/// A continuation resumed at most once.
final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NIOLock()
    private var continuation: CheckedContinuation<T, Error>?
    private var early: Result<T, Error>?

    func set(_ c: CheckedContinuation<T, Error>) {
        let result: Result<T, Error>? = lock.withLock {
            if let early { return early }
            continuation = c
            return nil
        }
        if let result { c.resume(with: result) }
    }

    func resume(_ result: Result<T, Error>) {
        let c: CheckedContinuation<T, Error>? = lock.withLock {
            defer { continuation = nil }
            if continuation == nil && early == nil { early = result }
            return continuation
        }
        c?.resume(with: result)
    }
}

/// The wsecho executable, found beside the test bundle (same scratch path, same
/// configuration), or nil when it was not built.
enum Wsecho {
    static let url: URL? = {
        var starts = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()]
        if let main = Bundle.main.executableURL { starts.append(main.resolvingSymlinksInPath()) }
        starts.append(Bundle.main.bundleURL)
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = dir.appendingPathComponent("wsecho")
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                   FileManager.default.isExecutableFile(atPath: candidate.path) {
                    return candidate
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        return nil
    }()

    static let missing: Comment = "wsecho is not built next to the test bundle (swift build --build-tests builds it)"
}

/// Deterministic test messages: text of an exact UTF-8 size with words repeating at
/// many distances (so deflate windows matter), and binary that is the same with every
/// 97th byte random (not valid UTF-8).
enum TestData {
    static let vocabulary: [[UInt8]] = [
        "alpha ", "beta ", "gamma ", "delta ", "\u{e9}psilon ", "\u{3b6}\u{3ae}\u{3c4}\u{3b1} ", "\u{6f22}\u{5b57} ",
        "\u{1F600} ", "websocket ", "deflate ", "\n", "x", "0123456789 ",
    ].map { Array($0.utf8) }

    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    private static func block(_ n: Int, _ rng: inout Generator) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n)
        while out.count < n {
            let word = vocabulary[Int(rng.next() % UInt64(vocabulary.count))]
            if out.count + word.count > n {
                out.append(contentsOf: repeatElement(UInt8(ascii: "a"), count: n - out.count))
            } else {
                out.append(contentsOf: word)
            }
        }
        return out
    }

    /// Valid UTF-8 of exactly `n` bytes.
    static func textBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = Generator(state: seed)
        let size = 1 << 20
        if n <= size { return block(n, &rng) }
        let whole = block(size, &rng)
        var out: [UInt8] = []
        out.reserveCapacity(n)
        for _ in 0..<(n / size) { out.append(contentsOf: whole) }
        out.append(contentsOf: block(n % size, &rng))
        return out
    }

    static func text(_ n: Int, seed: UInt64) -> String { String(decoding: textBytes(n, seed: seed), as: UTF8.self) }

    static func binary(_ n: Int, seed: UInt64) -> [UInt8] {
        var bytes = textBytes(n, seed: seed &+ 1)
        var rng = Generator(state: seed)
        bytes.withUnsafeMutableBufferPointer { b in
            var i = 0
            while i < b.count {
                b[i] = UInt8(truncatingIfNeeded: rng.next())
                i += 97
            }
        }
        return bytes
    }

    static func message(_ kind: String, _ n: Int, seed: UInt64) -> Message {
        kind == "text" ? .text(text(n, seed: seed)) : .binary(binary(n, seed: seed))
    }
}

extension Message {
    var kind: String {
        switch self {
        case .text: "text"
        case .binary: "binary"
        }
    }

    var size: Int {
        switch self {
        case .text(let s): s.utf8.count
        case .binary(let b): b.count
        }
    }

    /// Same type and same bytes (memcmp, fast in debug builds too).
    func sameAs(_ other: Message) -> Bool {
        func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
            a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
        }
        switch (self, other) {
        case (.binary(let a), .binary(let b)):
            return a.withUnsafeBytes { x in b.withUnsafeBytes { y in equal(x, y) } }
        case (.text(var a), .text(var b)):
            return a.withUTF8 { x in b.withUTF8 { y in equal(UnsafeRawBufferPointer(x), UnsafeRawBufferPointer(y)) } }
        default:
            return false
        }
    }

    var summary: String { "\(kind) \(size) B" }
}

/// The peer script (written to a temporary directory at test time).
let peerScript = #"""
# The Python side of the interop tests: a python-websockets server or client driven by
# a JSON configuration, reporting what it observes as JSON lines on stdout.
import asyncio
import json
import os
import random
import ssl
import sys
import threading
import time
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode
from websockets.protocol import Protocol

# Counts the data messages that arrived compressed (RSV1 set on their first frame) and
# those that arrived uncompressed, while permessage-deflate is in use.
STATS = {"compressed_in": 0, "plain_in": 0}
_decode = PerMessageDeflate.decode


def counting_decode(self, frame, *, max_size=None):
    if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
        STATS["compressed_in" if frame.rsv1 else "plain_in"] += 1
    return _decode(self, frame, max_size=max_size)


PerMessageDeflate.decode = counting_decode

# Counts the pings received (the peer only sends its next keepalive ping once the last
# one was answered, so several pings prove the pongs reached it).
STATS["pings_in"] = 0
_recv_frame = Protocol.recv_frame


def counting_recv_frame(self, frame):
    if frame.opcode is Opcode.PING:
        STATS["pings_in"] += 1
    return _recv_frame(self, frame)


Protocol.recv_frame = counting_recv_frame


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


VOCAB = ["alpha ", "beta ", "gamma ", "delta ", "\u00e9psilon ", "\u03b6\u03ae\u03c4\u03b1 ",
         "\u6f22\u5b57 ", "\U0001F600 ", "websocket ", "deflate ", "\n", "x", "0123456789 "]


def text_block(n, rnd):
    parts, size = [], 0
    while size < n:
        word = rnd.choice(VOCAB)
        length = len(word.encode())
        if size + length > n:
            word, length = "a" * (n - size), n - size
        parts.append(word)
        size += length
    return "".join(parts)


def make_text(n, seed):
    """Text of exactly n UTF-8 bytes, with repeats at many distances (for deflate windows)."""
    rnd = random.Random(seed)
    block = 1 << 20
    if n <= block:
        return text_block(n, rnd)
    whole = text_block(block, rnd)
    return whole * (n // block) + text_block(n % block, rnd)


def make_binary(n, seed):
    """n bytes: the text above with every 97th byte random (so not valid UTF-8)."""
    data = bytearray(make_text(n, seed + 1).encode())
    rnd = random.Random(seed)
    data[::97] = rnd.randbytes(len(data[::97]))
    return bytes(data)


def make(kind, n, seed):
    return make_text(n, seed) if kind == "text" else make_binary(n, seed)


def kind_of(message):
    return "text" if isinstance(message, str) else "binary"


def size_of(message):
    return len(message.encode()) if isinstance(message, str) else len(message)


def close_fields(ws):
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    return dict(
        rcvd_code=rcvd.code if rcvd else None, rcvd_reason=rcvd.reason if rcvd else None,
        sent_code=sent.code if sent else None, sent_reason=sent.reason if sent else None, **STATS)


def deflate_kwargs(cfg, factory):
    mode = cfg.get("mode", "default")
    if mode == "none":
        return dict(compression=None)
    if mode == "default":
        return dict(compression="deflate")
    return dict(compression=None, extensions=[factory(**cfg.get("params", {}))])


async def send_tricky(ws, size):
    """Sends text of `size` bytes as bytes fragments cut inside multi-byte characters
    (text=True), with a ping between the first two fragments (RFC 6455 §5.4 allows control
    frames in the middle of a fragmented message). Returns the text and the pong waiter."""
    whole = make_text(size, 7)
    raw = whole.encode()
    inside = [i for i, b in enumerate(raw) if 0x80 <= b < 0xC0]
    cuts = sorted(set(inside[:: max(1, len(inside) // 6)][:6]))
    pieces = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
    waiter = []

    async def fragments():
        for i, piece in enumerate(pieces):
            yield piece
            if i == 0:
                waiter.append(await ws.ping(b"mid-message ping"))

    await ws.send(fragments(), text=True)
    return whole, len(pieces), waiter[0]


# MARK: server

async def server_handler(ws):
    url = urlparse(ws.request.path)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    mode, cid = url.path.strip("/"), q.get("id", "")
    report(event="open", id=cid, mode=mode,
           request_extensions=ws.request.headers.get("Sec-WebSocket-Extensions"),
           response_extensions=ws.response.headers.get("Sec-WebSocket-Extensions"))
    try:
        if mode == "echo":
            async for message in ws:
                await ws.send(message)
        elif mode == "frag":
            # Report how each message arrived, then send it back in the same pieces.
            while True:
                pieces = [piece async for piece in ws.recv_streaming()]
                report(event="fragments", id=cid, count=len(pieces), kind=kind_of(pieces[0]),
                       size=sum(size_of(p) for p in pieces))
                await ws.send(pieces)
        elif mode == "close":
            # Close with the requested code once the client says so.
            await ws.recv()
            await ws.close(int(q["code"]), q.get("reason", ""))
        elif mode == "ping":
            waiter = await ws.ping(b"ping-from-python")
            await asyncio.wait_for(waiter, 5)
            report(event="pong", id=cid, ok=True)
            await ws.send("pong received")
            async for message in ws:
                await ws.send(message)
        elif mode == "tricky":
            # Send a tricky fragmented text; the peer must echo it.
            whole, count, waiter = await send_tricky(ws, int(q.get("size", "20000")))
            await asyncio.wait_for(waiter, 5)
            back = await asyncio.wait_for(ws.recv(), 10)
            report(event="tricky", id=cid, ok=back == whole, count=count, pong=True)
            async for message in ws:
                await ws.send(message)
        elif mode == "script":
            # The peer must echo: we send, it sends back (the wsecho client test).
            sizes = [int(s) for s in q.get("sizes", "0,1,125,126,65536").split(",")]
            problems = []
            for i, n in enumerate(sizes):
                for kind in ("text", "binary"):
                    message = make(kind, n, i)
                    await ws.send(message)
                    back = await asyncio.wait_for(ws.recv(), 20)
                    if back != message:
                        problems.append(f"{kind} {n}: got {kind_of(back)} {size_of(back)}")
            pieces = ["fragment one, ", "fragment two, ", "\U0001F600"]
            await ws.send(pieces)
            back = await asyncio.wait_for(ws.recv(), 10)
            if back != "".join(pieces):
                problems.append("fragmented text came back different")
            waiter = await ws.ping(b"script-ping")
            await asyncio.wait_for(waiter, 5)
            report(event="script", id=cid, ok=not problems, detail="; ".join(problems))
            await ws.close(1000, "script done")
        else:
            await ws.close(1008, "unknown mode")
    except ConnectionClosed:
        pass
    except Exception as exc:
        report(event="error", id=cid, error=repr(exc))
        await ws.close(1011, "python peer error")
    try:
        await asyncio.wait_for(ws.wait_closed(), 12)
    except Exception:
        pass
    report(event="closed", id=cid, **close_fields(ws))


def process_request(connection, request):
    if request.path.startswith("/reject"):
        return connection.respond(403, "refused by the test\n")
    return None


async def run_server(cfg):
    kwargs = deflate_kwargs(cfg.get("deflate", {}), ServerPerMessageDeflateFactory)
    async with serve(server_handler, "127.0.0.1", 0, max_size=None, ping_interval=None,
                     process_request=process_request, **kwargs) as server:
        report(event="listening", port=server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().create_future()


# MARK: client

async def recv_pieces(ws):
    return [piece async for piece in ws.recv_streaming()]


async def run_steps(ws, steps):
    for step in steps:
        op = step["op"]
        if op == "roundtrip":
            for i, n in enumerate(step["sizes"]):
                for kind in step.get("kinds", ["text", "binary"]):
                    message = make(kind, n, i)
                    await ws.send(message)
                    back = await asyncio.wait_for(ws.recv(), step.get("timeout", 20))
                    report(event="roundtrip", kind=kind, size=n, ok=back == message,
                           got_kind=kind_of(back), got_size=size_of(back))
        elif op == "fragments":
            pieces = [make(step["kind"], n, i) for i, n in enumerate(step["sizes"])]
            if step["kind"] == "text":
                whole = "".join(pieces)
            else:
                whole = b"".join(pieces)
            await ws.send(pieces)
            back_pieces = await asyncio.wait_for(recv_pieces(ws), 20)
            back = ("" if isinstance(back_pieces[0], str) else b"").join(back_pieces)
            report(event="fragments", kind=step["kind"], ok=back == whole, count=len(back_pieces),
                   got_kind=kind_of(back), got_size=size_of(back), size=size_of(whole))
        elif op == "fragments_tricky":
            whole, count, waiter = await send_tricky(ws, step["size"])
            await asyncio.wait_for(waiter, 5)
            back = await asyncio.wait_for(ws.recv(), 20)
            report(event="tricky", ok=back == whole, count=count, pong=True,
                   got_kind=kind_of(back), got_size=size_of(back), size=step["size"])
        elif op == "send_message":
            await ws.send(make(step["kind"], step["size"], 0))
        elif op == "ping":
            waiter = await ws.ping(step.get("data", "ping-from-python").encode())
            await asyncio.wait_for(waiter, 5)
            report(event="pong", ok=True)
        elif op == "send":
            await ws.send(step["text"])
        elif op == "close":
            await ws.close(step["code"], step.get("reason", ""))
        elif op == "wait_close":
            try:
                message = await asyncio.wait_for(ws.recv(), 20)
                report(event="unexpected", kind=kind_of(message), size=size_of(message))
            except ConnectionClosed:
                pass
        elif op == "sleep":
            await asyncio.sleep(step["seconds"])


async def run_client(cfg):
    kwargs = deflate_kwargs(cfg.get("deflate", {}), ClientPerMessageDeflateFactory)
    if "cafile" in cfg:
        kwargs["ssl"] = ssl.create_default_context(cafile=cfg["cafile"])
    try:
        ws = await connect(cfg["url"], max_size=None, ping_interval=None, open_timeout=30,
                           close_timeout=10, **kwargs)
    except Exception as exc:
        report(event="connect_failed", error=repr(exc))
        return
    report(event="open",
           request_extensions=ws.request.headers.get("Sec-WebSocket-Extensions"),
           response_extensions=ws.response.headers.get("Sec-WebSocket-Extensions"))
    try:
        await run_steps(ws, cfg.get("steps", []))
    except ConnectionClosed as exc:
        report(event="closed_early", error=repr(exc))
    except Exception as exc:
        report(event="error", error=repr(exc))
    try:
        await asyncio.wait_for(ws.close(), 12)
        await asyncio.wait_for(ws.wait_closed(), 12)
    except Exception as exc:
        report(event="error", error="closing: " + repr(exc))
    report(event="closed", **close_fields(ws))


def main():
    cfg = json.loads(sys.argv[2])
    watchdog(cfg.get("limit", 60))
    if sys.argv[1] == "server":
        asyncio.run(run_server(cfg))
    else:
        try:
            asyncio.run(asyncio.wait_for(run_client(cfg), cfg.get("limit", 60) - 5))
        except Exception as exc:
            report(event="error", error="client: " + repr(exc))
    sys.stdout.flush()
    os._exit(0)  # not a normal shutdown: the watchdog thread sits in a read of stdin


if __name__ == "__main__":
    main()
"""#
