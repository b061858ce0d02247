import Foundation
import NIOCore
import Testing
import WebSockets

/// A real headless Chromium loads a page served by our `WebSocketServer` over plain
/// HTTP, runs the browser example of the original design notes against the same
/// server's echo, and posts what it saw back to `/result`.
@Suite struct BrowserTests {
    @Test func chromiumRunsTheDesignNotesExampleAgainstOurServer() async throws {
        guard let chromium = BrowserProcess.executable else {
            print("BrowserTests: skipping: no Chromium at $WS_CHROMIUM or /usr/bin/chromium")
            return
        }
        let bigRepeat = 4000
        let big = String(repeating: "Sending a large and very compressible message to the server. ", count: bigRepeat)

        let page = BrowserBox<String>("")
        let pageRequests = BrowserBox<[String]>([])
        let result = BrowserBox<[UInt8]?>(nil)
        let server = try await WebSocketServer.listen(host: "127.0.0.1", port: 0) { request in
            pageRequests.update { $0.append("\(request.method) \(request.path) \(request.header("User-Agent") ?? "")") }
            switch (request.method, request.path) {
            case ("GET", "/"):
                return .html(page.get)
            case ("POST", "/result"):
                result.update { $0 = request.body }
                return .text("thanks\n")
            default:
                return .text("not found\n", status: 404)
            }
        }
        page.update { $0 = browserTestPage(port: server.port, bigRepeat: bigRepeat) }

        struct ServerSide: Sendable {
            var offeredExtensions: String?
            var negotiated = ""
            var origin: String?
            var messages: [String] = []
            var close: String?
        }
        let serverSide = BrowserBox(ServerSide())
        server.onconnection = { ws, request in
            serverSide.update {
                $0.offeredExtensions = request.header("Sec-WebSocket-Extensions")
                $0.negotiated = ws.extensions
                $0.origin = request.header("Origin")
            }
            ws.onmessage = { event in
                let summary: String
                switch event.data {
                case .text(let t): summary = t == big ? "text big" : "text \(t)"
                case .binary(let b): summary = "binary \(b.count) \(b == (0..<1024).map { UInt8(($0 * 7) & 255) })"
                }
                serverSide.update { $0.messages.append(summary) }
                try? ws.send(event.data)
            }
            ws.onclose = { event in
                serverSide.update { $0.close = "\(event.code) \(event.reason) \(event.wasClean)" }
            }
        }

        let url = "http://127.0.0.1:\(server.port)/"
        let browser = try BrowserProcess(executable: chromium, url: url)
        defer { browser.stop() }

        // Wait (bounded) for the page's report.
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while result.get == nil && clock.now < end && browser.isRunning {
            try await Task.sleep(for: .milliseconds(20))
        }
        let stillRunning = browser.isRunning
        browser.stop()
        await server.shutdown(deadline: .seconds(2))

        let body = try #require(result.get, "no POST /result within 30 s (Chromium running: \(stillRunning); requests: \(pageRequests.get))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], "bad JSON: \(String(decoding: body, as: UTF8.self))")

        print("BrowserTests: Chromium reported \(String(decoding: body, as: UTF8.self))")
        // What the browser saw.
        #expect(json["timedOut"] == nil)
        #expect(json["errors"] as? [String] == [])
        #expect(json["events"] as? [String] == ["open", "message text", "message binary", "message text", "close"])
        #expect(json["messages"] as? [String] == ["Sending a message to the server"])
        #expect(json["binaryEchoed"] as? Bool == true)
        #expect(json["bigEchoed"] as? Bool == true)
        #expect(json["protocol"] as? String == "")
        #expect((json["extensions"] as? String)?.hasPrefix("permessage-deflate") == true, "browser's ws.extensions: \(json["extensions"] ?? "nil")")
        let close = try #require(json["close"] as? [String: Any])
        #expect(close["code"] as? Int == 4000)
        #expect(close["wasClean"] as? Bool == true)
        // The server echoes the code; echoing the reason is optional (RFC 6455 §5.5.1).
        let reason = close["reason"] as? String
        #expect(reason == "" || reason == "done by browser", "browser's close reason: \(reason ?? "nil")")

        // What the server saw.
        let seen = serverSide.get
        #expect(seen.offeredExtensions?.contains("permessage-deflate") == true, "Chromium's offer: \(seen.offeredExtensions ?? "nil")")
        #expect(seen.negotiated.hasPrefix("permessage-deflate"), "server's ws.extensions: \(seen.negotiated)")
        #expect(seen.origin == "http://127.0.0.1:\(server.port)")
        #expect(seen.messages == ["text Sending a message to the server", "binary 1024 true", "text big"])
        #expect(seen.close == "4000 done by browser true")
        let requests = pageRequests.get
        #expect(requests.first?.hasPrefix("GET / ") == true && requests.first?.contains("Chrome") == true, "\(requests)")
        #expect(requests.contains { $0.hasPrefix("POST /result ") })
    }
}
