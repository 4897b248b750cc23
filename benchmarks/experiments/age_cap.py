"""How old can an int8 file's age output go, and how many faces reach that cap?

    python benchmarks/experiments/age_cap.py edge/models/edgeag_default.tflite \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

An int8 age output's largest value is the oldest age the file can say. Files converted before 2026-12-03 took
it from the calibration samples (the bundled one then: 88.3 years); `edgeag quantize` now fixes it at 116
(quantize/output_range.py). Prints that cap, and per split the faces (the crop cache, as `edgeag evaluate`)
whose predicted age is within 0.5 years of it, the faces truly older than it, and the oldest prediction.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeag.edge.classifier import AgeGenderClassifier
from edgeag.train.cache import load_crops
from edgeag.train.datasets import Dataset
from edgeag.train.evaluate import predict_all


def main(model: Path, data: Path = typer.Option(..., "--data"),
         split_file: Path = typer.Option(None, "--split-file")) -> None:
    clf = AgeGenderClassifier(model)
    low, cap = clf.output_range("age")
    print(f"{model}: the age output can say {low:.2f} to {cap:.2f} years")
    crops, _ = load_crops(Dataset(data, split_file), clf.crop_spec, None, progress=False)
    for split in ("val", "test"):
        s = crops.subset(split)
        age = predict_all(clf, s.x)["age"]
        print(f"{split}: {len(age)} faces, {int((age >= cap - 0.5).sum())} within 0.5 years of the cap, "
              f"{int((s.age > cap).sum())} truly older than it; oldest prediction {age.max():.1f} years, "
              f"{int((age > 88.3).sum())} over the old cap of 88.3")


if __name__ == "__main__":
    typer.run(main)
