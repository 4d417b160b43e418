#!/usr/bin/env bash
# oneDNN (Debian's libdnnl-dev) against VoCoKernels and OpenBLAS at the TinyLlama-1.1B linear
# layers, decode (1 row) and prefill (512 rows), F16 / BF16 / F32 weights: Tools/bench/onednn.c.
# Installs libdnnl-dev when missing (it is needed by this benchmark only, not by the product),
# compiles the benchmark with the kernels' C sources, runs it held to AVX2 and natively.
# Usage: Tools/bench/onednn.sh [native|avx2|both] [threads]   (default both, 2 threads)
set -euo pipefail
cd "$(dirname "$0")/../.."
levels=${1:-both}
threads=${2:-2}
Tools/deps.sh
if ! dpkg-query -W -f='${Status}' libdnnl-dev 2>/dev/null | grep -q "install ok installed"; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libdnnl-dev >&2
fi
out=${VOCO_BENCH_DIR:-/tmp/voco-bench-engine}/onednn
mkdir -p "$(dirname "$out")"
cc=$(command -v clang || command -v cc)
"$cc" -O2 -std=c11 -D_GNU_SOURCE -I Sources/VoCoKernels/include -I /usr/include/x86_64-linux-gnu \
  Tools/bench/onednn.c Sources/VoCoKernels/*.c -o "$out" -ldnnl -lopenblas -lpthread -lm
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  if [ "$1" = avx2 ]; then
    OMP_NUM_THREADS=$threads OPENBLAS_CORETYPE=Haswell VOCO_ISA=avx2 "$out" avx2 "$threads"
  else
    OMP_NUM_THREADS=$threads "$out" native "$threads"
  fi
  echo
}
case "$levels" in
  native|avx2) run "$levels" ;;
  both) run avx2; run native ;;
  *) echo "usage: $0 [native|avx2|both] [threads]" >&2; exit 2 ;;
esac
