"""How far can the models we have go on gender? Every run alone and averaged with others, on val and test.

    python benchmarks/experiments/ensembles.py RUN RUN ... \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

Each run (an ``edgeag train``/``edgeag soup`` folder, or a ``.tflite`` quantized without ``--tta``) predicts
val and test once, averaged with the mirrored crop (the bundled model's flip); ensembles average those
predictions (age in years, P(female), ethnicity probabilities) over 2..``--max-size`` runs. Ensembles are ranked
by val gender accuracy, as a choice would be made; test is only reported. Averaging models is the upper end of
what weight averaging (``edgeag soup``) or distillation into one file could reach with these runs.
Writes ``--out`` (JSON).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False)


def score(preds: list[dict[str, np.ndarray]], age: np.ndarray, gender: np.ndarray,
          ethnicity: np.ndarray) -> dict[str, float]:
    """Age MAE, gender and ethnicity accuracy of the mean of ``preds`` (each as from ``predict_all``)."""
    a = np.mean([p["age"] for p in preds], axis=0)
    f = np.mean([p["p_female"] for p in preds], axis=0)
    e = np.mean([p["ethnicity"] for p in preds], axis=0)
    return {"age_mae": float(np.abs(a - age).mean()),
            "gender_accuracy": float(((f >= 0.5) == (gender == 1)).mean()),
            "ethnicity_accuracy": float((e.argmax(axis=1) == ethnicity).mean())}


@app.command()
def main(
    runs: list[Path] = typer.Argument(..., help="Model folders or .tflite files (without --tta)."),
    data: Path = typer.Option(..., "--data"),
    split_file: Path = typer.Option(None, "--split-file"),
    max_size: int = typer.Option(4, help="Largest ensemble tried (every combination up to it)."),
    top: int = typer.Option(10, help="Ensembles printed and kept in the JSON (best val gender accuracy first)."),
    out: Path = typer.Option(Path("benchmarks/results/ensembles.json"), "--out"),
) -> None:
    """Score each run and every ensemble of up to --max-size runs on val and test (flip on)."""
    from rich.progress import track

    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.evaluate import load_predictor, predict_all

    names = [r.name if r.is_dir() else r.stem for r in runs]
    if len(set(names)) != len(names):
        names = [str(r) for r in runs]
    preds: dict[str, dict[str, dict]] = {"val": {}, "test": {}}
    truth: dict[str, tuple] = {}
    dataset = Dataset(data, split_file)
    for name, run in track(list(zip(names, runs)), description="predicting", transient=True):
        predictor, spec, _ = load_predictor(run)
        crops, _ = load_crops(dataset, spec, None)
        for split in preds:
            sub = crops.subset(split)
            # Every crop size comes from the same detections of the same files, in the same order.
            truth.setdefault(split, (sub.ids, sub.age, sub.gender, sub.ethnicity))
            if not np.array_equal(truth[split][0], sub.ids):
                print(f"error: {run} was not made from the same {split} faces as {names[0]}", file=sys.stderr)
                raise typer.Exit(2)
            preds[split][name] = predict_all(predictor, sub.x, tta_flip=True)

    def both(combo: tuple[str, ...]) -> dict:
        return {split: score([preds[split][n] for n in combo], *truth[split][1:]) for split in preds}

    singles = {n: both((n,)) for n in names}
    ensembles = [{"runs": list(c), **both(c)} for k in range(2, max_size + 1)
                 for c in itertools.combinations(names, k)]
    ensembles.sort(key=lambda r: (-r["val"]["gender_accuracy"], r["val"]["age_mae"]))
    everything = both(tuple(names))
    test_g = [r["test"]["gender_accuracy"] for r in ensembles]
    summary = {"ensembles_tried": len(ensembles),
               "test_gender_range": [min(test_g), max(test_g)] if test_g else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    # The best --top by val, not all of them (thousands): the summary keeps the range over all.
    out.write_text(json.dumps({"singles": singles, "all": everything, "summary": summary,
                               "best_by_val": ensembles[:top]}, indent=2))

    def line(label: str, r: dict) -> str:
        v, t = r["val"], r["test"]
        return (f"  {label:40s} val {v['age_mae']:.3f} / {100 * v['gender_accuracy']:.2f}%   "
                f"test {t['age_mae']:.3f} / {100 * t['gender_accuracy']:.2f}%")

    print("age MAE / gender accuracy, float with flip")
    for n in names:
        print(line(n, singles[n]))
    print(f"best {top} of {len(ensembles)} ensembles by val gender:")
    for r in ensembles[:top]:
        print(line("+".join(r["runs"]), r))
    print(line(f"all {len(names)}", everything))
    if test_g:
        print(f"test gender over all {len(ensembles)} ensembles: {100 * min(test_g):.2f}-{100 * max(test_g):.2f}%")
    print(f"-> {out}")


if __name__ == "__main__":
    app()
