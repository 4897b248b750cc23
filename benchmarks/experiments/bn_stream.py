"""Which images should batch norm's statistics be re-estimated on after training with camera degradations?

    python benchmarks/experiments/bn_stream.py runs/cam112 --stream camera --out runs/cam112_bn_camera \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv
    edgeag evaluate runs/cam112_bn_camera --data ... --split val --corruptions middle --limit 800

`edgeag train` re-estimates every BatchNorm layer's moving statistics at the end (train/fit.py,
``recalibrate_batchnorm``). On models trained on clean crops this helped (the card: 7.18 -> 6.31 years); a model
trained with ``--augment camera`` saw half its crops degraded, and re-estimating on clean crops only may shift
its statistics away from what it learned. This writes a copy of RUN whose statistics are re-estimated on
``--stream clean`` (the training crops as they are, what train does) or ``camera`` (the same crops through
the training augmentation, as in an epoch), to be scored by ``edgeag evaluate`` clean and corrupted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

app = typer.Typer(add_completion=False)


@app.command()
def main(run: Path, out: Path = typer.Option(...), data: Path = typer.Option(...),
         split_file: Path = typer.Option(None), stream: str = typer.Option("camera", help="clean or camera"),
         seed: int = 0) -> None:
    from edgeag.edge.crop import CropSpec
    from edgeag.train.augment import batch_augmentation
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.fit import recalibrate_batchnorm
    from edgeag.train.run_folder import load_model_dir

    model, config = load_model_dir(run)
    spec = CropSpec.from_dict(config["crop"])
    crops, _ = load_crops(Dataset(data, split_file), spec, None)
    x = crops.subset("train").x
    if stream not in ("clean", "camera"):
        raise typer.BadParameter("--stream is clean or camera")
    # camera: what `edgeag train --augment camera` now does at its end (each batch through the augmentation)
    transform = batch_augmentation("camera", spec.margin) if stream == "camera" else None
    recalibrate_batchnorm(model, x, seed=seed, transform=transform)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    shutil.copy(run / "config.json", out / "config.json")
    print(f"wrote {out} (batch norm on {len(x)} {stream} training crops)")


if __name__ == "__main__":
    app()
