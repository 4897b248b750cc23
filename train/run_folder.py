"""The folder ``edgeag train`` writes (``model.keras`` + ``config.json``), read back in one place."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgeag.errors import ModelError


def load_model_dir(model_dir: str | Path) -> tuple[object, dict]:
    """(Keras model, config.json) of a folder written by ``edgeag train``."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelError(f"not a model folder: {d} (expected the --out folder of `edgeag train`)")
    if not (d / "model.keras").is_file() or not (d / "config.json").is_file():
        raise ModelError(f"{d} lacks model.keras or config.json: is it a folder written by `edgeag train`?")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from edgeag.train import model as _registers_custom_layers  # noqa: F401  (ExposureNorm, the age loss)

    try:
        config = json.loads((d / "config.json").read_text())
        # compile=False: inference needs no loss, and a custom one (age_distribution_loss) need not be imported.
        model = keras.models.load_model(d / "model.keras", compile=False)
    except Exception as exc:
        raise ModelError(f"cannot load model from {d}: {exc}") from None
    return model, config
