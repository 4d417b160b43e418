#!/usr/bin/env bash
# The engine against llama.cpp and PyTorch on one random model of the TinyLlama-1.1B shape
# (hidden 2048, 22 layers, 32 heads over 4 KV heads, MLP 5632, vocab 32000) with a CLIP-L/336
# tower (24 layers, 1024 wide, 576 patches), side by side in one run, 2 threads:
#   ours F16 mapped, ours BF16 mapped (voco-bench engine: compression images/s, 512-token prefill
#   after one image cache, 32 decoded tokens, peak RSS, and the floors measured in the same
#   process: cblas_sgemm GFLOP/s, a plain read of the weights a token streams in GB/s),
#   llama.cpp F16 (llama-cpp-python from PyPI, the same weights as GGUF F16), PyTorch F32.
# Then the same with every peer held to AVX2 (VOCO_ISA=avx2, OPENBLAS_CORETYPE=Haswell, an
# AVX2-only llama.cpp build, ATEN_CPU_CAPABILITY=avx2), as on an AVX2 + F16C + FMA machine.
# Prints one table (Tools/bench/peers.py table). Usage: Tools/bench/engine.sh [native|avx2|both]
# Work files (4.4 GB of weights + 2.2 GB GGUF) go to $VOCO_BENCH_DIR (default /tmp/voco-bench-engine).
set -euo pipefail
cd "$(dirname "$0")/../.."
levels=${1:-both}
work=${VOCO_BENCH_DIR:-/tmp/voco-bench-engine}
threads=${VOCO_BENCH_THREADS:-2}
venv=Tools/bench/.venv
mkdir -p "$work/results"

# MARK: - Build and environments
Tools/deps.sh
swift build -c release --product voco-bench >&2
bench=.build/release/voco-bench
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" >&2; "$venv/bin/pip" install -q --upgrade pip >&2; fi
torch_pin=$(grep '^torch==' Tools/requirements.txt); transformers_pin=$(grep '^transformers==' Tools/requirements.txt)
"$venv/bin/pip" install -q "$torch_pin" "$transformers_pin" numpy==2.4.6 safetensors==0.8.0 gguf==0.19.0 >&2
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python (native; about 5 minutes on 2 cores)" >&2
  "$venv/bin/pip" install -q llama-cpp-python==0.3.36 >&2
fi
avx2_llama="$venv/llama-avx2"
if [ "$levels" != native ] && [ ! -d "$avx2_llama/llama_cpp" ]; then
  echo "building llama-cpp-python held to AVX2 + F16C + FMA (about 5 minutes)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF" \
    "$venv/bin/pip" install -q --no-deps --no-cache-dir --no-binary llama-cpp-python --target "$avx2_llama" llama-cpp-python==0.3.36 >&2
fi
py="$venv/bin/python"

# MARK: - The model, once
shape=(--hidden 2048 --layers 22 --heads 32 --kv-heads 4 --intermediate 5632 --vocab 32000
       --vision-hidden 1024 --vision-layers 24 --image 336 --patch 14)
for dtype in F16 BF16; do
  [ -f "$work/$dtype/model.safetensors" ] || "$bench" checkpoint --out "$work/$dtype" "${shape[@]}" --dtype "$dtype" >&2
done
[ -f "$work/model-f16.gguf" ] || "$py" Tools/bench/peers.py gguf "$work/F16" "$work/model-f16.gguf" >&2

# MARK: - The runs
run_level() {
  local level=$1; shift
  local llama_path=()
  if [ "$level" = avx2 ]; then
    export VOCO_ISA=avx2 OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
    llama_path=(--llama-path "$avx2_llama")
  else
    unset VOCO_ISA OPENBLAS_CORETYPE ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA MKL_ENABLE_INSTRUCTIONS
  fi
  local q=(--prompt 512 --decode 32 --threads "$threads")
  echo "== $level: ours F16 mapped" >&2
  "$bench" engine --model "$work/F16" --batch 1 "${q[@]}" --repeats 2 --json "$work/results/$level-1-ours-f16-mapped.json" >&2
  echo "== $level: ours BF16 mapped" >&2
  "$bench" engine --model "$work/BF16" --batch 1 "${q[@]}" --repeats 2 --no-baselines --json "$work/results/$level-2-ours-bf16-mapped.json" >&2
  echo "== $level: llama.cpp F16" >&2
  "$py" Tools/bench/peers.py llama "$work/model-f16.gguf" "${q[@]}" "${llama_path[@]}" --json "$work/results/$level-3-llama.cpp-f16.json" >&2
  echo "== $level: PyTorch F32" >&2
  "$py" Tools/bench/peers.py torch "$work/F16" "${q[@]}" --json "$work/results/$level-4-pytorch-f32.json" >&2
}
rm -f "$work"/results/*.json
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
case "$levels" in
  native) run_level native ;;
  avx2) run_level avx2 ;;
  both) run_level native; run_level avx2 ;;
  *) echo "usage: $0 [native|avx2|both]" >&2; exit 2 ;;
esac
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" Tools/bench/peers.py table "$work/results"
