"""``edgeag soup``: average the weights of fine-tuned runs that share one ancestor (a "model soup").

Runs fine-tuned from the same finished run stay in one basin of the loss, so the mean of their weights
is itself a good model, often better than each of them, at the cost of one (Wortsman et al., 2022,
"Model soups"). The averaged batch-norm statistics do not describe the averaged network, so they are
re-estimated on clean training crops, as after every training run.

The soup is written as a model folder like ``edgeag train``'s (``model.keras``, ``config.json``,
``metrics.json`` on val), so ``quantize`` and ``evaluate`` take it unchanged.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeag._version import __version__
from edgeag.edge.crop import CropSpec
from edgeag.errors import BadInputError
from edgeag.train.cache import load_crops
from edgeag.train.config import TrainConfig
from edgeag.train.datasets import Dataset
from edgeag.train.augment import batch_augmentation
from edgeag.train.fit import check_compatible, load_weights, recalibrate_batchnorm
from edgeag.train.model import ModelConfig


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Element-wise mean of several models' ``get_weights()`` (same architecture, same order)."""
    n = len(weight_lists[0])
    if any(len(w) != n for w in weight_lists):
        raise BadInputError("the runs have different numbers of weight tensors: not the same architecture")
    out = []
    for i in range(n):
        ws = [w[i] for w in weight_lists]
        if any(w.shape != ws[0].shape for w in ws):
            raise BadInputError(f"weight {i} differs in shape ({', '.join(str(w.shape) for w in ws)})")
        out.append(np.mean(np.stack(ws).astype(np.float64), axis=0).astype(ws[0].dtype))
    return out


def soup(runs: list[str | Path], data: str | Path, out: str | Path, *, split_file: str | Path | None = None,
         seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Average ``runs`` into a model at the first run's input size, recalibrate batch norm, evaluate on val.

    Returns the validation metrics, with each ingredient's own val metrics (from its metrics.json)
    under ``"ingredients"``.
    """
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise BadInputError("a soup needs at least two runs")
    first = runs[0]
    if not (first / "config.json").is_file():
        raise BadInputError(f"{first}: not a folder written by `edgeag train` (no config.json); "
                            "the first ingredient gives the soup its settings")
    config = json.loads((first / "config.json").read_text())
    mcfg = ModelConfig.from_dict(config["model"])
    spec = CropSpec.from_dict(config["crop"])
    for r in runs:
        # Weight averaging needs one architecture: only the input size may differ (a gender branch may not).
        check_compatible(r, mcfg, spec, what="soup ingredient", may_differ=("input_size", "size"))

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeag.train.evaluate import KerasPredictor, evaluate_crops, write_report
    from edgeag.train.model import build_model

    crops, _ = load_crops(Dataset(data, split_file, seed=seed), spec, None, cache_dir=cache_dir, progress=progress)
    tr, va = crops.subset("train"), crops.subset("val")
    if len(tr) == 0 or len(va) == 0:
        raise BadInputError(f"{data}: need train and val records, found {len(tr)} train and {len(va)} val")
    model = build_model(mcfg)
    weights = []
    for r in runs:  # a run folder's model.keras, or a .tflite written by `edgeag quantize`
        load_weights(model, r, tr, seed)
        weights.append(model.get_weights())
    model.set_weights(average_weights(weights))
    t0 = time.time()
    # On the ingredients' training stream (the first one's --augment), as `edgeag train` does at its end.
    transform = batch_augmentation(config["train"].get("augment", "none"), spec.margin,
                                   config["train"].get("max_brightening", TrainConfig.max_brightening))
    recalibrate_batchnorm(model, tr.x, seed=seed, progress=progress, transform=transform)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")

    def val_of(r: Path) -> dict | None:
        f = r / "metrics.json"
        return json.loads(f.read_text()).get("overall") if f.is_file() else None

    config.update(
        edgeag_version=__version__,
        soup={"runs": [str(r) for r in runs], "bn_recalibration_seconds": round(time.time() - t0, 1)},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        bn_recalibrated=True,
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    metrics = evaluate_crops(KerasPredictor(model), va, split="val", progress=progress)
    metrics["ingredients"] = {str(r): val_of(r) for r in runs}
    write_report(metrics, out, va.age, title=f"validation: soup of {len(runs)} runs")
    return metrics
