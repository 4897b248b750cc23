#!/usr/bin/env bash
# Retrain, quantize, evaluate the bundled default model from ../shared/data (UTKFace). See MODEL_CARD.md.
# Usage: bash train/make_default.sh        (about 4 h 30 min on a 2-core x86 CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/default}
SEED=${SEED:-0}
S=(--split-file "$DATA/utkface_split.csv")
T=(--data "$DATA/UTKFace.tar" "${S[@]}")

start=$(date +%s)
MODEL=(--arch mobilenet --width 0.75 --expansion 3 --margin 0.1 --age-loss distribution --gender-weight 2)
# 1. Progressive resizing: 48 epochs at 96 px, then 16 more at 112 px from those weights (a new warm-up and
#    cosine cycle at a third of the learning rate). Cheaper than 112 px from the start, and it is what was measured.
edgeag train "${T[@]}" --out "$OUT/stage96" --seed "$SEED" "${MODEL[@]}" --input-size 96 --epochs 48 --patience 20
edgeag train "${T[@]}" --out "$OUT/ft112" --seed "$((SEED + 2))" "${MODEL[@]}" \
    --input-size 112 --epochs 16 --patience 16 --lr 0.001 --init-from "$OUT/stage96"
# 2. Three more fine-tunes of that model (the soup's ingredients): 12 epochs at 128 px; and, after leaving out
#    the training faces whose gender label the 112 px model confidently contradicts (mostly label errors),
#    16 epochs at 112 px and 10 at 128 px with gender label smoothing.
edgeag quantize "$OUT/ft112" "${T[@]}" --out "$OUT/ft112/edgeag_default.tflite" --samples 300 --tta
edgeag audit-labels "$OUT/ft112/edgeag_default.tflite" "${T[@]}" --split train --out "$OUT/audit_train"
edgeag train "${T[@]}" --out "$OUT/ft128" --seed "$((SEED + 3))" "${MODEL[@]}" \
    --input-size 128 --epochs 12 --patience 12 --lr 0.001 --init-from "$OUT/ft112"
edgeag train "${T[@]}" --out "$OUT/clean112" --seed "$((SEED + 5))" "${MODEL[@]}" \
    --input-size 112 --epochs 16 --patience 16 --lr 0.001 --init-from "$OUT/ft112" \
    --exclude "$OUT/audit_train/suspects.csv"
edgeag train "${T[@]}" --out "$OUT/clean128" --seed "$((SEED + 6))" "${MODEL[@]}" \
    --input-size 128 --epochs 10 --patience 10 --lr 0.001 --init-from "$OUT/ft112" \
    --exclude "$OUT/audit_train/suspects.csv" --gender-smoothing 0.1
# 3. The bundled model: the average of the four (at 112 px), batch norm re-estimated; chosen on val.
edgeag soup "$OUT/ft112" "$OUT/ft128" "$OUT/clean112" "$OUT/clean128" "${T[@]}" --out "$OUT"
# One int8 weight scale per tensor instead of per output channel: 436 instead of 571 KB at the same accuracy.
edgeag quantize "$OUT" "${T[@]}" --out "$OUT/int8.tflite" --samples 300 --per-tensor
edgeag quantize "$OUT" "${T[@]}" --out "$OUT/edgeag_default.tflite" --samples 300 --tta --per-tensor
edgeag evaluate "$OUT" "${T[@]}" --split test --out "$OUT/eval_float"
edgeag evaluate "$OUT/int8.tflite" "${T[@]}" --split test --out "$OUT/eval_int8"
edgeag evaluate "$OUT/edgeag_default.tflite" "${T[@]}" --split test --out "$OUT/eval_int8_flip"
edgeag evaluate "$OUT" --tta "${T[@]}" --split test --out "$OUT/eval_float_flip"
echo "wall time: $(( $(date +%s) - start )) s"
echo "to bundle: cp $OUT/edgeag_default.tflite edge/models/edgeag_default.tflite"
