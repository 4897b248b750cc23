"""How old can an int8 file's age output go, and how many faces reach that cap?

    python benchmarks/experiments/age_cap.py edge/models/edgeag_default.tflite \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

The int8 age output's scale and zero point come from the calibration samples, so its largest value is the
oldest age the file can say. Prints that cap, and per split the faces (crop cache, as `edgeag evaluate`)
whose predicted age is within 0.5 years of it and the faces truly older than it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from ai_edge_litert.interpreter import Interpreter

from edgeag.edge.classifier import AgeGenderClassifier
from edgeag.edge.crop import CropSpec
from edgeag.train.cache import load_crops
from edgeag.train.datasets import Dataset


def age_cap(model: Path) -> float:
    """The largest age the file's int8 age output can represent."""
    out = Interpreter(model_path=str(model)).get_output_details()
    age = next(d for d in out if d["name"].endswith(":0") and d["shape"][-1] == 1)
    scale, zero = age["quantization"]
    return scale * (127 - zero)


def main(model: Path, data: Path = typer.Option(..., "--data"), split_file: Path = typer.Option(None, "--split-file"),
         size: int = 112) -> None:
    cap = age_cap(model)
    print(f"{model}: int8 age output ends at {cap:.2f} years")
    crops, _ = load_crops(Dataset(data, split_file=split_file), CropSpec(size=size), None, progress=False)
    clf = AgeGenderClassifier(model)
    for split in ("val", "test"):
        s = crops.subset(split)
        pred = np.concatenate([clf.predict(s.x[i:i + 64])["age"] for i in range(0, len(s.x), 64)])
        print(f"{split}: {len(pred)} faces, {int((pred >= cap - 0.5).sum())} at the cap, "
              f"{int((np.asarray(s.age) > cap).sum())} truly older than it")


if __name__ == "__main__":
    typer.run(main)
