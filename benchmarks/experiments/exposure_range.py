"""Does brightening training faces further fix over-exposure?

The camera augmentation (train/augment.py, ``DegradeConfig.gain``) scales a degraded face's linear light by a
log-uniform factor in 0.2-2.2x; the corruption catalogue's middle over-exposure is 3x, and it was the corruption
furthest over issue 17's 1.12x floor. This runs ``edgeag train`` with the factor's upper end at ``--max-gain``
and every other argument as given, for a comparison on val (clean and corrupted):

    python benchmarks/experiments/exposure_range.py --max-gain 4.0 -- --data ../shared/data/UTKFace.tar \\
        --split-file ../shared/data/utkface_split.csv --out runs/cam112c9 --seed 15 --arch mobilenet \\
        --width 0.75 --expansion 3 --margin 0.1 --age-loss distribution --gender-weight 2 --input-size 112 \\
        --epochs 12 --patience 12 --lr 0.0002 --gender-smoothing 0.1 --init-from runs/cam112c8
    edgeag quantize runs/cam112c9 --data ... --split-file ... --out runs/c9prior3/edgeag_default.tflite \
        --samples 300 --tta --per-tensor --age-prior 0.3          # as train/make_default.sh's last step

Result: MODEL_CARD.md, "What moved the needle" (an eighth cycle with brightening up to 4x).
"""

from __future__ import annotations

import dataclasses
import sys


def widen_exposure(top: float):
    """Make the camera augmentation brighten up to ``top`` x (in this process); returns the config it uses."""
    from edgeag.train import augment

    base = augment.DegradeConfig()
    wider = dataclasses.replace(base, gain=(base.gain[0], top))
    augment.DegradeConfig = lambda: wider  # batch_augmentation("camera", ...) builds its config from this name
    return wider


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] != "--max-gain" or argv[2] != "--":
        sys.exit("usage: exposure_range.py --max-gain G -- EDGEAG_TRAIN_ARGS...")
    try:
        top = float(argv[1])
    except ValueError:
        sys.exit(f"--max-gain must be a number, got {argv[1]!r}")
    from edgeag.cli import app

    wider = widen_exposure(top)
    print(f"training with exposure gain {wider.gain[0]:g}-{top:g}x")
    app(["train", *argv[3:]], prog_name="edgeag")


if __name__ == "__main__":
    main(sys.argv[1:])
