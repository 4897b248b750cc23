"""Does dividing out the training set's age prior undo the regression to the mean? Measured on val and test.

    python benchmarks/experiments/age_prior.py RUN_FOLDER \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

A distribution age head learns p(age | face), which is proportional to p(face | age) x p_train(age): the
training set's ages (UTKFace: many 20-35 year olds and babies, few over 60) are baked into every prediction,
so an uncertain face (small, dim, blurred, or simply old) is pulled towards the crowded ages. Subtracting
``beta * log p_train(age)`` from the age logits (logit adjustment) removes that pull: beta = 1 assumes every
age equally likely, beta = 0 is the model as trained. It is a constant added to the last layer's bias, so it
costs nothing per face, and ``edgeag quantize --age-prior BETA`` bakes it into the file
(``edgeag.quantize.age_prior``; the prior is ``edgeag.train.model.train_log_prior``).

For each beta the script reports, on the cached crops (float Keras model, test-time flip as shipped), the age
MAE, the age MAE averaged over the age groups (what an age-balanced set such as the in-the-wild one would
see), and the mean signed error per group; expectation and median read-outs. Choose beta on val; the test
figures are printed for the record only. Writes ``--out`` (JSON) and a PNG beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edgeag.benchmarks.common import DataOpt, OutOpt, SplitFileOpt
from edgeag.train.evaluate import AGE_BUCKETS, bucket_name

app = typer.Typer(add_completion=False)


def age_logits(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Age logits of the crops and of their mirror images (float Keras model)."""
    import keras

    head = keras.Model(model.input, model.output["age_logits"])
    return tuple(head.predict(v.astype(np.float32), batch_size=256, verbose=0) for v in (x, x[:, :, ::-1]))


def readouts(logits: tuple[np.ndarray, np.ndarray], log_prior: np.ndarray, beta: float) -> dict[str, np.ndarray]:
    """Expectation and median of the prior-adjusted distribution, averaged over the crop and its mirror."""
    ages = np.arange(log_prior.size, dtype=np.float64)
    mean, median = [], []
    for lg in logits:
        z = lg - beta * log_prior
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mean.append(p @ ages)
        median.append((np.cumsum(p, axis=1) < 0.5).sum(axis=1).astype(np.float64))
    return {"expectation": np.mean(mean, axis=0), "median": np.mean(median, axis=0)}


def scores(age_true: np.ndarray, age_pred: np.ndarray) -> dict:
    err = age_pred - age_true
    groups = {bucket_name(lo, hi): (age_true >= lo) & (age_true <= hi) for lo, hi in AGE_BUCKETS}
    return {"mae": float(np.abs(err).mean()),
            "group_mae": float(np.mean([np.abs(err[m]).mean() for m in groups.values() if m.any()])),
            "bias": {k: float(err[m].mean()) for k, m in groups.items() if m.any()}}


@app.command()
def main(
    model_dir: Annotated[Path, typer.Argument(help="An `edgeag train` folder trained with --age-loss distribution.")],
    data: DataOpt,
    split_file: SplitFileOpt = None,
    betas: str = typer.Option("0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,1.0", help="Comma-separated betas."),
    out: OutOpt = Path("benchmarks/results/age_prior.json"),
) -> None:
    """Val and test age figures of a model with the training prior divided out at strength beta."""
    from rich.console import Console

    from edgeag.edge.crop import CropSpec
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.model import AGE_BINS, DLDL_SIGMA, train_log_prior
    from edgeag.train.run_folder import load_model_dir

    console = Console(stderr=True)
    model, config = load_model_dir(model_dir)
    crops = load_crops(Dataset(data, split_file), CropSpec.from_dict(config["crop"]), None)[0]
    log_prior = train_log_prior(crops.subset("train").age, AGE_BINS, DLDL_SIGMA)
    res = {"model": str(model_dir), "runs": []}
    for split in ("val", "test"):
        part = crops.subset(split)
        logits = age_logits(model, part.x)
        for beta in (float(b) for b in betas.split(",")):
            for readout, pred in readouts(logits, log_prior, beta).items():
                s = scores(part.age, pred)
                res["runs"].append({"split": split, "beta": beta, "readout": readout, **s})
                b = s["bias"]
                console.print(f"{split:4s} beta {beta:.1f} {readout:11s} MAE {s['mae']:.3f}  group MAE "
                              f"{s['group_mae']:.3f}  bias 0-3 {b['0-3']:+.2f} 9-18 {b['9-18']:+.2f} "
                              f"61-80 {b['61-80']:+.2f} 81+ {b['81+']:+.2f}", highlight=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    plot(res, out.with_suffix(".png"))


def plot(res: dict, path: Path) -> None:
    """Val MAE, group-averaged MAE and the oldest groups' bias against beta (expectation read-out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["runs"] if r["split"] == "val" and r["readout"] == "expectation"]
    beta = [r["beta"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(beta, [r["mae"] for r in rows], "o-", label="MAE")
    a.plot(beta, [r["group_mae"] for r in rows], "s-", label="MAE averaged over age groups")
    a.set_xlabel("beta (strength of the prior divided out)")
    a.set_ylabel("years (val)")
    a.legend()
    for g in ("0-3", "9-18", "41-60", "61-80", "81+"):
        b.plot(beta, [r["bias"][g] for r in rows], "o-", label=g)
    b.axhline(0, color="grey", lw=0.5)
    b.set_xlabel("beta")
    b.set_ylabel("mean signed error, years (val)")
    b.legend(title="age group")
    fig.suptitle(f"Training-prior adjustment of the age head: {res['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    app()
