#!/usr/bin/env bash
# Decode (and prefill) of ours, F16 mapped, against llama.cpp F16 in alternating runs: on a
# machine whose memory bandwidth drifts (a shared VM: the plain-read floor moved between 30 and
# 57 GB/s within minutes here), one run of each is not a ratio. Each pair runs ours, then
# llama.cpp, on the same model and prompt; the table gives every pair's tokens/s and ratio and
# the median ratio. Needs what Tools/bench/engine.sh builds (voco-bench, the venv, the model
# and its GGUF in $VOCO_BENCH_DIR); run that once first.
# Usage: Tools/bench/decode-pairs.sh [avx2|native] [pairs] [prompt] [decode]   (default avx2 8 512 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
level=${1:-avx2}; pairs=${2:-8}; prompt=${3:-512}; decode=${4:-32}
for count in "$pairs" "$prompt" "$decode"; do
  [[ "$count" =~ ^[1-9][0-9]{0,5}$ ]] || { echo "usage: $0 [avx2|native] [pairs] [prompt] [decode]: counts are 1 to 999999, not '$count'" >&2; exit 2; }
done
[ "$level" = avx2 ] || [ "$level" = native ] || { echo "usage: $0 [avx2|native] ...: not '$level'" >&2; exit 2; }
work=${VOCO_BENCH_DIR:-/tmp/voco-bench-engine}
threads=${VOCO_BENCH_THREADS:-2}
venv=Tools/bench/.venv
bench=.build/release/voco-bench
for need in "$bench" "$venv/bin/python" "$work/F16/model.safetensors" "$work/model-f16.gguf"; do
  [ -e "$need" ] || { echo "missing $need: run Tools/bench/engine.sh $level first" >&2; exit 1; }
done
llama_path=()
if [ "$level" = avx2 ]; then
  export VOCO_ISA=avx2 OPENBLAS_CORETYPE=Haswell
  llama_path=(--llama-path "$venv/llama-avx2")
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores, $threads threads, level $level; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$pairs"); do
  "$bench" engine --model "$work/F16" --batch 0 --prompt "$prompt" --decode "$decode" --repeats 1 --threads "$threads" \
    --no-baselines --json "$out/ours-$i.json" >/dev/null
  "$venv/bin/python" Tools/bench/peers.py llama "$work/model-f16.gguf" --prompt "$prompt" --decode "$decode" --repeats 1 \
    --threads "$threads" "${llama_path[@]}" --json "$out/llama-$i.json" >/dev/null 2>&1
done
"$venv/bin/python" - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, pairs + 1):
    ours = json.load(open(f"{out}/ours-{i}.json")); llama = json.load(open(f"{out}/llama-{i}.json"))
    rows.append((ours["prefill_tokens_per_s"], llama["prefill_tokens_per_s"], ours["decode_tokens_per_s"], llama["decode_tokens_per_s"]))
print("| pair | prefill ours | prefill llama.cpp | ratio | decode ours | decode llama.cpp | ratio |")
print("|---|---|---|---|---|---|---|")
for i, (po, pl, do, dl) in enumerate(rows, 1):
    print(f"| {i} | {po:.1f} | {pl:.1f} | {po / pl:.2f} | {do:.2f} | {dl:.2f} | {do / dl:.2f} |")
med = lambda f: statistics.median(f(r) for r in rows)
print(f"| median | {med(lambda r: r[0]):.1f} | {med(lambda r: r[1]):.1f} | {med(lambda r: r[0] / r[1]):.2f} | "
      f"{med(lambda r: r[2]):.2f} | {med(lambda r: r[3]):.2f} | {med(lambda r: r[2] / r[3]):.2f} |")
PY
