// swift-tools-version:6.0
// VoCo Store: compress images once into VoCo KV caches, keep them in LMDB, answer questions from them.
//
// Layout (imports point one way; the model side and the storage side meet only in VoCoPipeline):
//   C system libraries  CLMDB, CZstd, COpenBLAS, CJPEG, CPNG, CHiredis    (Debian -dev packages, Tools/deps.sh)
//   SafeTensors         memory-mapped safetensors reader and writer, dtype conversion
//   VoCoKernels (C)     F32/F16/BF16 GEMV, GEMM and flash attention, chosen at run time by CPU feature; a spin-then-park pool
//   VoCoCompute         the GEMM seam (VoCoKernels by default, OpenBLAS as the reference) and the small vector kernels
//   VoCoModel           config, checkpoint, CLIP vision tower, projector, LLaMA, the two VoCo passes
//   VoCoTokenizer       Hugging Face tokenizer.json (LLaMA-style BPE)
//   VoCoImage           JPEG/PNG decoding and CLIP preprocessing
//   VoCoStore           VoCo KV records, codecs, the store over backend protocols (records, catalog, jobs)
//   VoCoStoreLMDB       the LMDB backend
//   VoCoStoreRedis      the Redis Cluster backend (hiredis, our own cluster routing)
//   VoCoPipeline        images -> caches -> answers: where the model side and the storage side meet;
//                       Ingest/ (folders -> records, batch by batch)
//   VoCoServer          the HTTP servers' shared foundation (Hummingbird 2) and the ingest daemon
//   VoCoCommands        the `voco` subcommand tree (a library so tests run the real commands)
//   voco, voco-bench    thin executables
import PackageDescription

let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "VoCoStore",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "voco", targets: ["voco"]),
        .library(name: "VoCoImage", targets: ["VoCoImage"]),  // also for Tools/fuzz
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // MARK: - System libraries
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis", providers: [.apt(["libhiredis-dev"])]),

        // MARK: - Libraries
        .target(name: "SafeTensors", swiftSettings: optimize),
        // Optimised in debug builds too (the engine's tests run through these kernels); per-function
        // target attributes select AVX2 / AVX-512 code, so no -m flag is needed.
        .target(name: "VoCoKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "VoCoCompute", dependencies: ["SafeTensors", "COpenBLAS", "VoCoKernels"], swiftSettings: optimize),
        .target(name: "VoCoJSON"),
        .target(name: "VoCoModel", dependencies: ["SafeTensors", "VoCoCompute", "VoCoJSON"], swiftSettings: optimize),
        .target(
            name: "VoCoStore",
            dependencies: ["CZstd", "SafeTensors", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimize
        ),
        .target(name: "VoCoStoreLMDB", dependencies: ["VoCoStore", "CLMDB"], swiftSettings: optimize),
        .target(name: "VoCoStoreRedis", dependencies: ["VoCoStore", "CHiredis"], swiftSettings: optimize),
        .target(name: "VoCoTokenizer", swiftSettings: optimize),
        .target(
            name: "CImageShims",
            dependencies: ["CJPEG", "CPNG"],
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]
        ),
        .target(
            name: "VoCoImage",
            dependencies: ["CImageShims", "VoCoJSON", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimize
        ),

        // The model side and the storage side meet here: images -> caches -> answers.
        .target(name: "VoCoPipeline", dependencies: ["SafeTensors", "VoCoModel", "VoCoTokenizer", "VoCoImage", "VoCoStore"]),

        // The HTTP servers: their shared foundation (options, auth, problem details, metrics,
        // health, shutdown) and the ingest daemon. Takes a CacheStore; never knows the backend.
        .target(
            name: "VoCoServer",
            dependencies: [
                "VoCoPipeline",
                "VoCoStore",
                "VoCoImage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // MARK: - Executables
        .target(
            name: "VoCoCommands",
            dependencies: [
                "SafeTensors",
                "VoCoCompute",
                "VoCoPipeline",
                "VoCoServer",
                "VoCoModel",
                "VoCoStore",
                "VoCoStoreLMDB",
                "VoCoStoreRedis",
                "VoCoTokenizer",
                "VoCoImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "voco", dependencies: ["VoCoCommands"]),
        .executableTarget(
            name: "voco-bench",
            dependencies: [
                "VoCoCommands",  // OptionCheck: the same checks of user numbers as voco's
                "SafeTensors",
                "VoCoCompute",
                "VoCoModel",
                "VoCoPipeline",
                "VoCoStore",
                "VoCoStoreLMDB",
                "VoCoStoreRedis",
                "VoCoServer",
                "VoCoTokenizer",
                "VoCoImage",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimize
        ),

        // MARK: - Tests
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "VoCoJSONTests", dependencies: ["VoCoJSON"]),
        .testTarget(name: "VoCoKernelsTests", dependencies: ["VoCoKernels", "COpenBLAS", "SafeTensors"]),
        .testTarget(name: "VoCoComputeTests", dependencies: ["VoCoCompute", "SafeTensors"]),
        .testTarget(
            name: "VoCoModelTests",
            dependencies: ["VoCoModel", "VoCoCompute", "SafeTensors", "VoCoCommands", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            exclude: ["Fixtures"]
        ),
        // `voco` is a dependency so that the cross-process and CLI tests find it built.
        .testTarget(name: "VoCoStoreTests", dependencies: ["VoCoStore", "VoCoStoreLMDB", "VoCoStoreRedis", "SafeTensors", "voco"]),
        .testTarget(
            name: "VoCoStoreRedisTests",
            dependencies: ["VoCoStoreRedis", "VoCoStore", "VoCoStoreLMDB", "VoCoPipeline", "VoCoModel", "voco"],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "VoCoTokenizerTests", dependencies: ["VoCoTokenizer"], exclude: ["Fixtures"]),
        .testTarget(name: "VoCoImageTests", dependencies: ["VoCoImage", "SafeTensors"], exclude: ["Fixtures"]),
        // Child processes, paths and generated images for the ingest and server tests.
        .target(name: "VoCoTestSupport", dependencies: ["VoCoImage", "VoCoStore"], path: "Tests/VoCoTestSupport"),
        // `voco` is a dependency so that the ingest tests can run it as a child process and kill it.
        .testTarget(name: "VoCoPipelineTests", dependencies: ["VoCoPipeline", "VoCoModel", "VoCoTokenizer", "VoCoStore", "VoCoStoreLMDB",
                                                         "VoCoImage", "VoCoTestSupport", "voco"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "VoCoServerTests", dependencies: ["VoCoServer", "VoCoPipeline", "VoCoStore", "VoCoStoreLMDB", "VoCoStoreRedis",
                                                       "VoCoImage", "VoCoTestSupport", "voco"]),
        // The built executables are dependencies so that the hostile-number harness runs them as a user does.
        .testTarget(name: "VoCoCommandsTests", dependencies: ["VoCoCommands", "voco", "voco-bench"]),
    ],
    swiftLanguageModes: [.v5]
)
