"""How far can an int8 file's age and P(female) outputs go, and how many faces reach those caps?

    python benchmarks/experiments/output_caps.py edge/models/edgeag_default.tflite \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

An int8 output's largest value is the most it can say. Files converted before 2026-12-03 took it from the
calibration samples (the bundled one then, `git show 80652b7:edge/models/edgeag_default.tflite`: 88.3 years,
P(female) 0.974); `edgeag quantize` now fixes them at 116 years and 1 (quantize/output_range.py). Prints both
caps, and per split (the crop cache, as `edgeag evaluate`): the faces whose age is within 0.5 years of its cap,
the faces truly older, the oldest prediction and the faces over the old 88.3; the faces whose P(female) is
within 0.005 of its cap, and those with a female gender confidence of 0.95 or more (P(female) >= 0.975).
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
    (low, cap), (_, p_cap) = clf.output_range("age"), clf.output_range("gender")
    print(f"{model}: the age output can say {low:.2f} to {cap:.2f} years, P(female) up to {p_cap:.3f}")
    crops, _ = load_crops(Dataset(data, split_file), clf.crop_spec, None, progress=False)
    for split in ("val", "test"):
        s = crops.subset(split)
        pred = predict_all(clf, s.x)
        age, p = pred["age"], pred["p_female"]
        print(f"{split}: {len(age)} faces, {int((age >= cap - 0.5).sum())} within 0.5 years of the cap, "
              f"{int((s.age > cap).sum())} truly older than it; oldest prediction {age.max():.1f} years, "
              f"{int((age > 88.3).sum())} over the old cap of 88.3; P(female) within 0.005 of its cap "
              f"{int((p >= p_cap - 0.005).sum())}, >= 0.975 {int((p >= 0.975).sum())}")


if __name__ == "__main__":
    typer.run(main)
