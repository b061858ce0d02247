// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-websockets",
    products: [
        .library(name: "WebSocketFraming", targets: ["WebSocketFraming"]),
        .executable(name: "wsbench", targets: ["wsbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
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

        // The benchmark executable (the project's main job).
        .executableTarget(
            name: "wsbench",
            dependencies: [
                "CWebSocket", "CZlib", "WebSocketFraming",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/wsbench"),

        .testTarget(
            name: "CWebSocketTests",
            dependencies: ["CWebSocket"]),
        .testTarget(
            name: "WebSocketFramingTests",
            dependencies: ["WebSocketFraming", "CWebSocket"]),
    ],
    swiftLanguageModes: [.v6]
)
