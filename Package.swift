// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-websockets",
    products: [
        .library(name: "WebSockets", targets: ["WebSockets"]),
        .library(name: "WebSocketFraming", targets: ["WebSocketFraming"]),
        .library(name: "SocketIO", targets: ["SocketIO"]),
        .library(name: "RedisPubSub", targets: ["RedisPubSub"]),
        .executable(name: "wsbench", targets: ["wsbench"]),
        .executable(name: "wsecho", targets: ["wsecho"]),
        .executable(name: "wsload", targets: ["wsload"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // System libraries, found through pkg-config.
        .systemLibrary(
            name: "CZlib", path: "CSources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CLibcrypto", path: "CSources/CLibcrypto", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),

        // The sans-I/O C engine: kernels, frame parser and writer, handshake helpers.
        .target(
            name: "CWebSocket",
            dependencies: ["CZlib", "CLibcrypto"],
            path: "CSources/CWebSocket"),

        // Swift types over the engine; still no I/O.
        .target(
            name: "WebSocketFraming",
            dependencies: ["CWebSocket"],
            path: "Sources/WebSocketFraming"),

        // A small Redis client (RESP over NIO): commands, pub/sub, reconnection.
        .target(
            name: "RedisPubSub",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/RedisPubSub"),

        // Connections on SwiftNIO: client, server, TLS, browser and async APIs.
        .target(
            name: "WebSockets",
            dependencies: [
                "WebSocketFraming",
                "RedisPubSub",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/WebSockets"),

        // Engine.IO v4 + Socket.IO v5, client and server, over the public API of WebSockets
        // (plus NIOHTTP1 for the long-polling client).
        .target(
            name: "SocketIO",
            dependencies: [
                "WebSockets", "RedisPubSub",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/SocketIO"),

        // Echo server and client for interop tests.
        .executableTarget(
            name: "wsecho",
            dependencies: [
                "WebSockets", "SocketIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/wsecho"),

        // A seeded generator shared by the tests and the benchmark.
        .target(name: "SeededRandom", path: "Sources/SeededRandom"),

        // The benchmark executable (the project's main job).
        .executableTarget(
            name: "wsbench",
            dependencies: [
                "CWebSocket", "CZlib", "WebSocketFraming", "WebSockets", "SeededRandom",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/wsbench"),

        // Load, memory and churn scenarios (scripts/loadtest).
        .executableTarget(
            name: "wsload",
            dependencies: [
                "WebSockets", "SeededRandom",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/wsload"),

        .testTarget(
            name: "CWebSocketTests",
            dependencies: ["CWebSocket", "SeededRandom"]),
        .testTarget(
            name: "WebSocketFramingTests",
            dependencies: ["WebSocketFraming", "CWebSocket", "SeededRandom"]),
        .testTarget(
            name: "InteropTests",
            dependencies: [
                "WebSockets", "SocketIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "SocketIOTests",
            dependencies: [
                "SocketIO", "WebSockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "WebSocketsTests",
            dependencies: [
                "WebSockets",
                "RedisPubSub",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
