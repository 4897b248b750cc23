"""Does test-time augmentation beyond the flip help? Zoomed crops averaged with the plain and mirrored one.

    python benchmarks/experiments/tta_scales.py runs/default \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

Each variant is made from the model's own cached crop (``crop_face``), so only the test-time change differs:
``z0.9`` keeps the central 90% of the crop and scales it back up (a tighter face box); ``z1.1`` shrinks
the crop into a black border (a looser one, as UTKFace chips are padded). Every variant is also mirrored.
Give a Keras folder or a ``.tflite`` quantized without ``--tta``. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False)


def zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """uint8 crops (N, S, S, C) zoomed about their centre: < 1 crops in, > 1 pads with black."""
    import cv2

    n, s = x.shape[0], x.shape[1]
    out = np.zeros_like(x)
    for i in range(n):
        if factor < 1:
            c = int(round(s * factor))
            o = (s - c) // 2
            img = cv2.resize(x[i, o:o + c, o:o + c], (s, s), interpolation=cv2.INTER_LINEAR)
            out[i] = img.reshape(out[i].shape)
        else:
            c = int(round(s / factor))
            o = (s - c) // 2
            out[i, o:o + c, o:o + c] = cv2.resize(x[i], (c, c), interpolation=cv2.INTER_AREA).reshape(c, c, -1)
    return out


@app.command()
def main(
    model: Path = typer.Argument(..., help="An `edgeag train` folder or a .tflite file without --tta."),
    data: Path = typer.Option(..., "--data"),
    split_file: Path = typer.Option(None, "--split-file"),
    zooms: str = typer.Option("0.9,0.8,1.1", help="Zoom factors to try, each with its mirror."),
    out: Path = typer.Option(Path("benchmarks/results/tta_scales.json"), "--out"),
) -> None:
    """Age MAE and gender accuracy on val and test for plain, flip, and flip + each zoom (and all together)."""
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from ensembles import score  # this folder is on sys.path when run as a script
    from edgeag.train.evaluate import load_predictor, predict_all

    predictor, spec, desc = load_predictor(model)
    crops, _ = load_crops(Dataset(data, split_file), spec, None)
    factors = [float(z) for z in zooms.split(",")]
    res: dict = {"model": desc, "splits": {}}
    for split in ("val", "test"):
        sub = crops.subset(split)
        views = {"plain": sub.x, **{f"z{f:g}": zoom(sub.x, f) for f in factors}}
        # Each view alone and averaged with its mirror (the evaluation's own flip); equal-weight means of those
        # pairs are the multi-view averages.
        alone = {name: predict_all(predictor, x) for name, x in views.items()}
        mirrored = {name: predict_all(predictor, x, tta_flip=True) for name, x in views.items()}

        combos = {"plain": [alone["plain"]], "flip": [mirrored["plain"]]}
        for f in factors:
            combos[f"z{f:g} alone"] = [alone[f"z{f:g}"]]
            combos[f"flip + z{f:g}"] = [mirrored["plain"], mirrored[f"z{f:g}"]]
        combos["flip + all zooms"] = list(mirrored.values())
        res["splits"][split] = {name: score(preds, sub.age, sub.gender, sub.ethnicity)
                                for name, preds in combos.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"{desc} (age MAE / gender accuracy)")
    for name in res["splits"]["val"]:
        v, t = res["splits"]["val"][name], res["splits"]["test"][name]
        print(f"  {name:18s} val {v['age_mae']:.3f} / {100 * v['gender_accuracy']:.2f}%   "
              f"test {t['age_mae']:.3f} / {100 * t['gender_accuracy']:.2f}%")
    print(f"-> {out}")


if __name__ == "__main__":
    app()
