import Foundation
import NIOConcurrencyHelpers

/// A headless Chromium started for one test; `stop()` always ends it.
final class BrowserProcess: @unchecked Sendable {
    private let process = Process()
    private let profile: URL
    private let lock = NIOLock()
    private var stopped = false

    /// The Chromium to use: `WS_CHROMIUM`, else /usr/bin/chromium; nil when absent.
    static var executable: String? {
        let path = ProcessInfo.processInfo.environment["WS_CHROMIUM"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/bin/chromium"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Launches `chromium --headless=new ... url` with a fresh profile directory.
    init(executable: String, url: String) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("ws-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--user-data-dir=\(profile.path)", url,
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, up to 5 s to exit, then SIGKILL; removes the profile. Idempotent.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        if process.isRunning {
            process.terminate()
            let end = Date().addingTimeInterval(5)
            while process.isRunning && Date() < end { usleep(20_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                let end = Date().addingTimeInterval(2)
                while process.isRunning && Date() < end { usleep(20_000) }
            }
        }
        try? FileManager.default.removeItem(at: profile)
    }

    deinit { stop() }
}

/// A thread-safe value for server callbacks.
final class BrowserBox<T: Sendable>: @unchecked Sendable {
    private var value: T
    private let lock = NIOLock()
    init(_ value: T) { self.value = value }
    var get: T { lock.withLock { value } }
    func update(_ f: (inout T) -> Void) { lock.withLock { f(&value) } }
}

/// The page the browser loads: the browser example of the original design notes (send
/// on open, onmessage and onclose set inside onopen), then a binary ArrayBuffer, a large
/// compressible text, and a close with 4000 and a reason. Results go back by
/// `fetch("/result", {method: "POST"})`.
func browserTestPage(port: Int, bigRepeat: Int) -> String {
    """
    <!doctype html>
    <html><head><meta charset="utf-8"><title>WebSockets</title></head>
    <body><h1>Welcome to WebSockets</h1>
    <script>
    var results = { events: [], messages: [], errors: [] };
    var reported = false;
    function report() {
      if (reported) return;
      reported = true;
      fetch("/result", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(results) });
    }
    var big = "Sending a large and very compressible message to the server. ".repeat(\(bigRepeat));
    var binary = new Uint8Array(1024);
    for (var i = 0; i < binary.length; i++) binary[i] = (i * 7) & 255;
    var step = 0;

    var ws = new WebSocket("ws://127.0.0.1:\(port)/");
    ws.binaryType = "arraybuffer";
    ws.onerror = function(event) { results.errors.push("error"); };
    // Replaced in onopen; reports a connection that never opened.
    ws.onclose = function(event) {
      results.events.push("close before open");
      results.close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
      report();
    };

    ws.onopen = function(event) {
      results.events.push("open");
      results.protocol = ws.protocol;
      results.extensions = ws.extensions;
      ws.send("Sending a message to the server");

      ws.onmessage = function(event) {
        if (typeof event.data === "string") {
          console.log("Message %s received", event.data.slice(0, 40));
          results.events.push("message text");
          if (step == 0) results.messages.push(event.data);
          else results.bigEchoed = (event.data === big);
        } else {
          var got = new Uint8Array(event.data);
          results.events.push("message binary");
          results.binaryEchoed = got.length === binary.length && got.every(function(v, i) { return v === binary[i]; });
        }
        step += 1;
        if (step == 1) ws.send(binary.buffer);
        else if (step == 2) ws.send(big);
        else if (step == 3) ws.close(4000, "done by browser");
      };

      ws.onclose = function(event) {
        console.log("The websocket has been closed");
        results.events.push("close");
        results.close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
        report();
      };
    };
    setTimeout(function() { results.timedOut = true; report(); }, 20000);
    </script>
    </body></html>
    """
}
