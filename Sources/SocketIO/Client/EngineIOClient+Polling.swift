import NIOCore
import NIOHTTP1
import NIOSSL

// HTTP long-polling: one connection keeps a GET waiting for the server's packets, the
// other POSTs queued packets, both keep-alive. Packets are joined with 0x1E; binary
// travels as `b` + base64.
extension EngineIOClient {
    func startPolling() {
        let sslContext: NIOSSLContext?
        do { sslContext = address.secure ? try NIOSSLContext(configuration: options.tls) : nil } catch {
            return fail("transport error", "TLS configuration: \(error)")
        }
        func connection() -> PollingHTTPConnection {
            PollingHTTPConnection(eventLoop: eventLoop, address: address, sslContext: sslContext,
                                  extraHeaders: options.extraHeaders, connectTimeout: options.timeout)
        }
        getConnection = connection()
        postConnection = connection()
        setTransport(.polling)
        poll()
    }

    /// How long a request may take: the handshake gets the connect timeout; later a GET
    /// may legitimately wait a whole heartbeat period for packets.
    private var requestTimeout: TimeAmount {
        guard let handshake else { return options.timeout }
        return handshake.pingInterval + handshake.pingTimeout + options.requestTimeoutMargin
    }

    private func target() -> String {
        address.target(path: options.path, transport: .polling, sid: handshake?.sid, extraQuery: options.query)
    }

    /// Issues the next GET unless one is in flight or the upgrade pauses polling.
    func poll() {
        guard let connection = getConnection, !polling, !upgrading,
              state == .opening || state == .open else { return }
        polling = true
        connection.request(method: .GET, target: target(), body: nil, timeout: requestTimeout, maxBody: options.maxMessageSize)
            .assumeIsolated().whenComplete { [weak self] result in
                guard let self, self.getConnection === connection else { return }
                self.polling = false
                switch result {
                case .failure(let error):
                    self.fail("transport error", "polling GET: \(error)")
                case .success(let response):
                    guard response.status == 200 else {
                        return self.fail("transport error", "polling GET answered HTTP \(response.status): \(Self.snippet(response.body))")
                    }
                    self.received(pollBody: response.body)
                }
            }
    }

    private func received(pollBody body: [UInt8]) {
        guard let text = String(validating: body, as: UTF8.self) else {
            return fail("parse error", "polling response is not UTF-8")
        }
        let packets: [EngineIOPacket]
        do { packets = try EngineIOPacket.decodePayload(text) } catch {
            return fail("parse error", "polling response: \(error) in \(Self.snippet(body))")
        }
        for packet in packets {
            guard state != .closed else { return }
            handle(packet)
        }
        if upgrading {
            completeUpgradeIfPaused()
        } else {
            poll()
        }
    }

    /// POSTs as much of the write buffer as one payload may hold.
    func postBatch() {
        guard let connection = postConnection, !posting, let handshake else { return }
        var count = 0
        var size = 0
        for packet in writeBuffer {
            let packetSize: Int
            switch packet.payload {
            case .text(let s): packetSize = 1 + s.utf8.count
            case .binary(let b): packetSize = 1 + (b.count + 2) / 3 * 4
            }
            let next = size + packetSize + (count > 0 ? 1 : 0)
            // At least one packet per POST: an oversized one is the server's to refuse.
            if count > 0 && (next > handshake.maxPayload || count == Self.maxPacketsPerPost) { break }
            size = next
            count += 1
        }
        let batch = Array(writeBuffer.prefix(count))
        writeBuffer.removeFirst(count)
        posting = true
        connection.request(method: .POST, target: target(), body: EngineIOPacket.encodePayload(batch),
                           timeout: requestTimeout, maxBody: 4096)
            .assumeIsolated().whenComplete { [weak self] result in
                guard let self, self.postConnection === connection else { return }
                self.posting = false
                switch result {
                case .failure(let error):
                    self.fail("transport error", "polling POST: \(error)")
                case .success(let response):
                    guard response.status == 200 else {
                        return self.fail("transport error", "polling POST answered HTTP \(response.status): \(Self.snippet(response.body))")
                    }
                    if self.upgrading {
                        self.completeUpgradeIfPaused()
                    } else {
                        self.flush()
                        self.finishCloseIfDrained()
                    }
                }
            }
    }

    /// The start of a body, for logs.
    static func snippet(_ body: [UInt8]) -> String {
        String(decoding: body.prefix(120), as: UTF8.self)
    }
}
