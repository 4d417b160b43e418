// swift-tools-version:6.0
// libFuzzer harness for VoCoImage's decode entry point (and the preprocessing behind it).
// Build and run with Tools/fuzz/run.sh; it is a separate package so that the sanitizer flags
// never touch the main build.
import PackageDescription

let package = Package(
    name: "VoCoImageFuzz",
    dependencies: [.package(name: "VoCoStore", path: "../..")],
    targets: [
        .executableTarget(
            name: "fuzz-image-decode",
            dependencies: [.product(name: "VoCoImage", package: "VoCoStore")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ],
    swiftLanguageModes: [.v5]
)
