import NIOConcurrencyHelpers
import NIOCore

/// One Engine.IO session seen by the Socket.IO server: it decodes packets, joins
/// namespaces on CONNECT, and routes events and acks to the namespace sockets.
final class SocketIOServerConnection: @unchecked Sendable {
    let session: EngineIOSession
    /// Strong: a server with clients stays alive (the reference ends when they leave).
    private let server: SocketIOServer
    private let lock = NIOLock()
    private var reader: SocketIOPacketReader
    private var sockets: [String: SocketIOSocket] = [:]
    private var connectTimer: Scheduled<Void>?
    private var closed = false

    init(session: EngineIOSession, server: SocketIOServer) {
        self.session = session
        self.server = server
        self.reader = SocketIOPacketReader(maxAttachmentBytes: server.configuration.maxPayload)
    }

    /// Wires the session's callbacks (weakly: the session is owned by this object).
    func start() {
        session.onMessage = { [weak self] payload in self?.receive(payload) }
        session.onClose = { [weak self] reason in self?.sessionClosed(reason) }
        let timeout = server.configuration.connectTimeout
        let timer = server.configuration.eventLoopGroup.next().scheduleTask(in: timeout) { [weak self] in
            guard let self, self.lock.withLock({ self.sockets.isEmpty }) else { return }
            self.session.close(reason: "transport error", log: "no namespace joined within \(timeout)")
        }
        lock.withLock { connectTimer = timer }
    }

    /// Writes a packet to this client.
    @discardableResult
    func send(_ packet: SocketIOPacket) -> Bool { session.send(packet.engineIOPackets()) }

    /// Writes already encoded packets (a broadcast encodes once for every receiver).
    @discardableResult
    func send(encoded: [EngineIOPacket]) -> Bool { session.send(encoded) }

    // MARK: Receiving

    private func receive(_ payload: EngineIOPacket.Payload) {
        let packet: SocketIOPacket?
        do {
            packet = try lock.withLock { () throws(SocketIOPacket.DecodeError) -> SocketIOPacket? in try reader.receive(payload) }
        } catch {
            return session.close(reason: "parse error", log: "bad Socket.IO packet: \(error)")
        }
        guard let packet else { return }
        switch packet.kind {
        case .connect: connect(packet)
        case .disconnect: socket(for: packet.namespace)?.closeFromClient()
        case .event, .binaryEvent: socket(for: packet.namespace)?.receiveEvent(packet)
        case .ack, .binaryAck: socket(for: packet.namespace)?.receiveAck(packet)
        case .connectError: session.close(reason: "parse error", log: "a client sent CONNECT_ERROR")
        }
    }

    private func socket(for namespace: String) -> SocketIOSocket? {
        lock.withLock { sockets[namespace] }
    }

    private func connect(_ packet: SocketIOPacket) {
        guard let namespace = server.namespace(named: packet.namespace, auth: packet.data ?? .object([:])) else {
            send(SocketIOPacket(.connectError, namespace: packet.namespace, data: ["message": "Invalid namespace"]))
            return
        }
        let socket = SocketIOSocket(
            namespace: namespace, connection: self,
            handshake: SocketIOHandshake(request: session.request, auth: packet.data ?? .object([:]), sessionID: session.id))
        let fresh = lock.withLock { () -> Bool in
            guard !closed, sockets[packet.namespace] == nil else { return false }
            sockets[packet.namespace] = socket
            return true
        }
        // A second CONNECT to a namespace already joined is ignored, as socket.io does.
        guard fresh else { return }
        namespace.admit(socket) { [weak self] error in
            guard let self else { return }
            if let error {
                self.lock.withLock { _ = self.sockets.removeValue(forKey: packet.namespace) }
                var data: [String: JSONValue] = ["message": .string(error.message)]
                if let extra = error.data { data["data"] = extra }
                self.send(SocketIOPacket(.connectError, namespace: packet.namespace, data: .object(data)))
            } else {
                self.lock.withLock { self.connectTimer?.cancel() }
            }
        }
    }

    /// A namespace socket left (client or server disconnect).
    func remove(_ socket: SocketIOSocket) {
        lock.withLock { if sockets[socket.namespace.name] === socket { sockets.removeValue(forKey: socket.namespace.name) } }
    }

    private func sessionClosed(_ reason: String) {
        let all = lock.withLock { () -> [SocketIOSocket] in
            closed = true
            connectTimer?.cancel()
            defer { sockets = [:] }
            return Array(sockets.values)
        }
        for s in all { s.didDisconnect(reason: reason) }
        server.connectionClosed(self)
    }
}
