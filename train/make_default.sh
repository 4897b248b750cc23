#!/usr/bin/env bash
# Retrain, quantize, evaluate the bundled default model from ../shared/data (UTKFace). See MODEL_CARD.md.
# Usage: bash train/make_default.sh        (about 1 h 40 min on a 2-core x86 CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/default}
SEED=${SEED:-0}
S=(--split-file "$DATA/utkface_split.csv")

start=$(date +%s)
edgeag train --data "$DATA/UTKFace.tar" "${S[@]}" --out "$OUT" --seed "$SEED" \
    --arch mobilenet --input-size 96 --width 0.75 --expansion 3 --epochs 48 --patience 20 --margin 0.1 \
    --age-loss distribution --gender-weight 2
edgeag quantize "$OUT" --data "$DATA/UTKFace.tar" "${S[@]}" --out "$OUT/int8.tflite" --samples 300
edgeag quantize "$OUT" --data "$DATA/UTKFace.tar" "${S[@]}" --out "$OUT/edgeag_default.tflite" --samples 300 --flip-tta
edgeag evaluate "$OUT" --data "$DATA/UTKFace.tar" "${S[@]}" --split test --out "$OUT/eval_float"
edgeag evaluate "$OUT/int8.tflite" --data "$DATA/UTKFace.tar" "${S[@]}" --split test --out "$OUT/eval_int8"
edgeag evaluate "$OUT/edgeag_default.tflite" --data "$DATA/UTKFace.tar" "${S[@]}" --split test --out "$OUT/eval_int8_flip"
edgeag evaluate "$OUT" --tta --data "$DATA/UTKFace.tar" "${S[@]}" --split test --out "$OUT/eval_float_flip"
echo "wall time: $(( $(date +%s) - start )) s"
echo "to bundle: cp $OUT/edgeag_default.tflite edge/models/edgeag_default.tflite"
