"""The gender decision threshold, chosen on the validation split and stored in the model's metadata.

A model trained with binary cross-entropy puts its decision point at P(female) = 0.5 only if its
probabilities are well calibrated; class balance, augmentation and quantization shift them. Picking the
threshold that maximises validation accuracy is a one-number fit (no test data involved), and the runtime
applies it as a logit shift inside ``AgeGenderClassifier`` so every consumer keeps using 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeag.edge.metadata import read_metadata, write_metadata

THRESHOLDS = np.round(np.arange(0.30, 0.701, 0.025), 3)


def choose_gender_threshold(p_female: np.ndarray, gender: np.ndarray) -> tuple[float, float, float]:
    """(threshold, val accuracy at it, val accuracy at 0.5) over a grid from 0.30 to 0.70.

    Ties go to the threshold nearest 0.5, so a model with nothing to gain keeps 0.5.
    """
    acc = np.array([((p_female >= t) == (gender == 1)).mean() for t in THRESHOLDS])
    best = acc.max()
    candidates = THRESHOLDS[acc >= best - 1e-12]
    t = float(candidates[np.argmin(np.abs(candidates - 0.5))])
    return t, float(best), float(((p_female >= 0.5) == (gender == 1)).mean())


def accuracy_by_sex(p_female: np.ndarray, gender: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy on men and on women at ``threshold``: a shifted threshold trades one for the other."""
    said_female = p_female >= threshold
    return {name: float((said_female[gender == g] == bool(g)).mean()) if (gender == g).any() else float("nan")
            for name, g in (("male", 0), ("female", 1))}


def set_gender_threshold(model_path: str | Path, threshold: float) -> None:
    """Rewrite the model file with ``gender_threshold`` in its metadata."""
    if not 0.0 < threshold < 1.0:
        from edgeag.errors import BadInputError

        raise BadInputError(f"gender threshold must be inside (0, 1), got {threshold}")
    path = Path(model_path)
    blob = path.read_bytes()
    meta = read_metadata(blob, name=str(path))
    meta["gender_threshold"] = float(threshold)
    path.write_bytes(write_metadata(blob, meta))
