"""``edgeag audit-labels``: list the faces whose gender label a trained model confidently contradicts.

UTKFace labels come from file names and some are wrong: among the bundled model's most confident
"errors" on adults, most are faces whose label is the mistake (see MODEL_CARD.md). This command
writes them out (``suspects.csv`` and a contact sheet ``suspects.png``) so that a person can look, and
so that ``edgeag train --exclude suspects.csv`` can leave them out of training. It never changes
evaluation data: the test split is scored against its labels as they are.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgeag.errors import BadInputError

COLUMNS = ("id", "split", "age", "gender_label", "p_female", "confidence", "predicted_age", "ethnicity")


def find_suspects(p_female: np.ndarray, gender: np.ndarray, age: np.ndarray, *, min_confidence: float = 0.8,
                  min_age: float = 13) -> np.ndarray:
    """Indices where the predicted gender contradicts the label with confidence above ``min_confidence``
    (``|2 p - 1|``), for labelled ages of at least ``min_age``; most confident first.

    Children are left out by default: their faces carry little gender signal, so a confident
    contradiction there says more about the model than about the label.
    """
    conf = np.abs(2 * p_female - 1)
    wrong = (p_female >= 0.5).astype(int) != gender.astype(int)
    idx = np.flatnonzero(wrong & (conf > min_confidence) & (age >= min_age))
    return idx[np.argsort(-conf[idx], kind="stable")]


def read_id_list(path: str | Path) -> set[str]:
    """Ids from a CSV with an ``id`` column (as ``suspects.csv``) or a plain list, one per line."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"id list not found: {p}")
    lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(lines))
        if not rows or "id" not in rows[0]:
            raise BadInputError(f"{p}: a CSV id list needs an 'id' column (as written by `edgeag audit-labels`)")
        return {r["id"] for r in rows}
    return set(lines[1:] if lines and lines[0] == "id" else lines)


def _contact_sheet(x: np.ndarray, titles: list[str], out_png: Path, cols: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, int(np.ceil(len(x) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, x, titles):
        ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(t, fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def audit_labels(model: str | Path, data: str | Path, out: str | Path, *, split: str = "train",
                 split_file: str | Path | None = None, min_confidence: float = 0.8, min_age: float = 13,
                 seed: int = 0, sheet: int = 64, progress: bool = True) -> dict:
    """Write ``suspects.csv`` and ``suspects.png`` (the ``sheet`` most confident) to ``out``; return a summary."""
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import ETHNICITIES, GENDERS, Dataset
    from edgeag.train.evaluate import load_predictor, predict_all

    if not 0 <= min_confidence < 1:
        raise BadInputError(f"--min-confidence must be in [0, 1), got {min_confidence}")
    predictor, spec, desc = load_predictor(model)
    crops, _ = load_crops(Dataset(data, split_file, seed=seed), spec, None, progress=progress)
    sub = crops.subset(None if split == "all" else split)
    if len(sub) == 0:
        raise BadInputError(f"no records of split {split!r} in {data}")
    # Mirror-averaged predictions are steadier; a file with the flip in its graph already gives them.
    flip_inside = getattr(predictor, "metadata", {}).get("tta") == "flip"
    pred = predict_all(predictor, sub.x, tta_flip=not flip_inside, progress=progress)
    idx = find_suspects(pred["p_female"], sub.gender, sub.age, min_confidence=min_confidence, min_age=min_age)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    conf = np.abs(2 * pred["p_female"] - 1)
    with open(out / "suspects.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in idx:
            w.writerow([sub.ids[i], sub.split[i], f"{sub.age[i]:.0f}", GENDERS[int(sub.gender[i])],
                        f"{pred['p_female'][i]:.3f}", f"{conf[i]:.3f}", f"{pred['age'][i]:.1f}",
                        ETHNICITIES[int(sub.ethnicity[i])]])
    shown = idx[:sheet]
    titles = [f"label {GENDERS[int(sub.gender[i])][0].upper()} {sub.age[i]:.0f}, p(F) {pred['p_female'][i]:.2f}"
              for i in shown]
    if len(shown):
        _contact_sheet(sub.x[shown], titles, out / "suspects.png")
    adults = sub.age >= min_age
    return {"model": desc, "split": split, "checked": int(adults.sum()), "suspects": int(len(idx)),
            "min_confidence": min_confidence, "min_age": min_age, "out": str(out)}
