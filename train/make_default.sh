#!/usr/bin/env bash
# Retrain, quantize, evaluate and bundle the default model from ../shared/data (UTKFace).
# Usage: bash train/make_default.sh            (about 1.5 h on a 2-core x86 CPU; see MODEL_CARD.md)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/default}
SEED=${SEED:-0}
SPLIT=(--split-file "$DATA/utkface_split.csv")

start=$(date +%s)
edgeag train --data "$DATA/UTKFace.tar" "${SPLIT[@]}" --out "$OUT" --seed "$SEED" \
    --arch mobilenet --input-size 80 --width 0.75 --expansion 3 --epochs 20 --patience 8 --margin 0.1
edgeag quantize "$OUT" --data "$DATA/UTKFace.tar" "${SPLIT[@]}" --out "$OUT/edgeag_default.tflite" \
    --mode int8 --samples 300
edgeag evaluate "$OUT" --data "$DATA/UTKFace.tar" "${SPLIT[@]}" --split test --out "$OUT/eval_float"
edgeag evaluate "$OUT/edgeag_default.tflite" --data "$DATA/UTKFace.tar" "${SPLIT[@]}" --split test --out "$OUT/eval_int8"
edgeag evaluate "$OUT/edgeag_default.tflite" --data "$DATA/UTKFace.tar" "${SPLIT[@]}" --split test --tta \
    --out "$OUT/eval_int8_flip"
echo "wall time: $(( $(date +%s) - start )) s"
echo "to bundle: cp $OUT/edgeag_default.tflite edge/models/edgeag_default.tflite"
