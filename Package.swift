// swift-tools-version:5.9
// Switchyard: a PostgreSQL read/write-splitting proxy on libevent.
// Modules depend one way: PGWire <- ProxyCore <- ProxyIO <- switchyard. Only ProxyIO imports C.
import PackageDescription

/// Release builds let ProxyIO specialise ProxyCore's generics (PoolStateMachine, ResponseTracker...) instead of
/// going through runtime generic metadata on every forwarded transaction.
/// Exclusivity is checked at compile time; the run-time checks (swift_beginAccess on every class property
/// access, a measurable share of each forwarded message) are off in release builds.
let crossModule: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let releaseIO: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CLibevent", pkgConfig: "libevent", providers: [.apt(["libevent-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CPgQuery", path: "Sources/CPgQuery"),
        .target(name: "PGWire", swiftSettings: crossModule),
        .target(name: "ProxyCore", dependencies: [
            "PGWire",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: crossModule),
        .target(name: "ProxyIO", dependencies: [
            "ProxyCore", "PGWire", "CLibevent", "COpenSSL", "CLibpq", "CPgQuery",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: releaseIO),
        .executableTarget(name: "switchyard", dependencies: [
            "ProxyIO", "ProxyCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "PGWireTests", dependencies: ["PGWire"]),
        .testTarget(name: "ProxyCoreTests", dependencies: ["ProxyCore", "PGWire", "ProxyIO"]),
    ]
)
