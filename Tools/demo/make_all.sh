#!/usr/bin/env bash
# The whole demo-model recipe, from nothing to the bundled model and the table in
# docs/demo-model.md. Every step is deterministic by seed; each one is skipped when its output
# exists, so a stopped run picks up where it was. Work goes to out/ (git-ignored).
#
#   Tools/demo/make_all.sh            # data, tokenizer, tower, all six variants, exports, evaluation
#   STEPS=3000 Tools/demo/make_all.sh # longer training of the full model
#   SHIP=1 Tools/demo/make_all.sh      # also copy voco-k4 into Models/voco-shapes and refresh the sample fixture
#
# Stages (docs/demo-model.md explains the choices):
#   0. shapes world: train / val / test splits and Samples/; the BPE tokenizer
#   1. the vision tower, pretrained on per-cell labels (LLaVA starts from a pretrained CLIP)
#   2. `full` (LLaVA: text sees every vision token), tower frozen
#   3. voco k=1,2,4, avgpool and text-only, each fine-tuned from the full model for the same steps
#   4. export as model directories (F16), PyTorch predictions on the test split
# `voco eval` (Swift) then scores the exports and compares with the PyTorch predictions.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python3}
STEPS=${STEPS:-2600}
VARIANT_STEPS=${VARIANT_STEPS:-800}
run() { echo "+ $*" >&2; "$@"; }

for split in test val train; do
  [ -f out/data/$split/questions.jsonl ] || run $PY Tools/demo/shapes.py --split $split
done
[ -f Samples/questions.jsonl ] || run $PY Tools/demo/shapes.py --split samples --out Samples --flat

[ -f out/runs/vision/tower.pt ] || run $PY Tools/demo/pretrain_vision.py --out out/runs/vision
TOWER=out/runs/vision/tower.pt

train() {  # name, then train.py arguments
  local name=$1; shift
  [ -f out/runs/$name/done ] && return
  run $PY Tools/demo/train.py --vision $TOWER --out out/runs/$name --eval-questions 500 "$@"
  touch out/runs/$name/done
}
train full --mode full --steps "$STEPS" --lr 1.5e-3 --eval-every 400 --describe 0.25
for variant in "voco-k1 --mode voco --k 1" "voco-k2 --mode voco --k 2" "voco-k4 --mode voco --k 4" \
               "avgpool --mode avgpool" "text-only --mode text-only"; do
  set -- $variant
  name=$1; shift
  train "$name" "$@" --init out/runs/full/checkpoint.pt --steps "$VARIANT_STEPS" --lr 1e-3 --warmup 50 \
    --single-only 0 --eval-every 400 --describe 0.25
done

# 800 more steps of voco-k1 and avgpool (the -long rows: where the two go with more training)
for variant in "voco-k1-long voco-k1 --mode voco --k 1" "avgpool-long avgpool --mode avgpool"; do
  set -- $variant
  name=$1 from=$2; shift 2
  train "$name" "$@" --init out/runs/$from/checkpoint.pt --steps "$VARIANT_STEPS" --lr 1e-3 --warmup 50 \
    --single-only 0 --eval-every 400 --describe 0.25
done

for name in full voco-k1 voco-k2 voco-k4 avgpool text-only voco-k1-long avgpool-long; do
  [ -f out/models/$name/config.json ] || run $PY Tools/demo/export.py out/runs/$name/checkpoint.pt out/models/$name --dtype F16
  [ -f out/models/$name/predictions-test.json ] || run $PY Tools/demo/evaluate.py out/models/$name --split out/data/test
done
run $PY Tools/demo/evaluate.py --table out/models/{full,voco-k1,voco-k2,voco-k4,avgpool,text-only,voco-k1-long,avgpool-long}

# The bundled model (the best VoCo variant, docs/demo-model.md) and its PyTorch answers to the samples,
# which Tests/VoCoPipelineTests compares with the Swift engine's.
if [ "${SHIP:-0}" = 1 ]; then
  mkdir -p Models/voco-shapes
  cp out/models/voco-k4/{config.json,model.safetensors,preprocessor_config.json,tokenizer.json,tokenizer_config.json} Models/voco-shapes/
  run $PY Tools/demo/evaluate.py Models/voco-shapes --split Samples
  mv Models/voco-shapes/predictions-Samples.json Tests/VoCoPipelineTests/Fixtures/samples-pytorch.json
fi
