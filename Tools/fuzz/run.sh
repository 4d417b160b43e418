#!/usr/bin/env bash
# Fuzzes VoCoImage's decoder with libFuzzer + AddressSanitizer.
#   Tools/fuzz/run.sh [seconds]   (default 600)
# The seed corpus is every committed image fixture, good and broken; new inputs libFuzzer finds
# go to Tools/fuzz/corpus (not committed), crashes to Tools/fuzz/artifacts/. Reproduce a crash
# with: Tools/fuzz/.build/debug/fuzz-image-decode Tools/fuzz/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
# swiftc keeps only the last -sanitize= flag it is given, and SwiftPM passes one per --sanitize:
# the -Xswiftc flag (last) gives Swift code both coverage and ASan; C code gets both from clang.
swift build --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
mkdir -p corpus artifacts
cp -n ../../Tests/VoCoImageTests/Fixtures/images/* ../../Tests/VoCoImageTests/Fixtures/broken/* corpus/ 2>/dev/null || true
exec .build/debug/fuzz-image-decode corpus -artifact_prefix=artifacts/ \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=131072 -print_final_stats=1
