"""Evaluation through the runtime's own path, on clean and corrupted full images, and on FG-NET.

Each image goes: corruption (``train/corruptions.py``) -> BlazeFace -> the largest face (``pick_face``) ->
``crop_face`` -> the model; the clean image is the reference pass. Unlike ``evaluate_model`` (cached crops, the
whole image when no face is found), nothing is cached and an image without a detected face counts as a face
not found: the figures are those of the faces the runtime would report. Every pass detects afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeag.train.corruptions import CATALOGUE, corrupt, describe, image_rng
from edgeag.train.evaluate import AGE_BUCKETS, bucket_name, compute_metrics, load_predictor, predict_all

CLEAN = ("clean", 0)
FLOOR_GROUPS = {"0-8": (0, 8), "61+": (61, 200)}  # the bias floors: children and the old
MIN_BUCKET = 5  # faces a bucket needs before its bias can be the "worst"
BATCH = 256  # crops per model call


@dataclass
class PassResult:
    """Predictions of one pass over the images; NaN age where no face was found."""

    age: np.ndarray
    p_female: np.ndarray
    ethnicity: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "PassResult":
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full((n, 5), np.nan))

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.age)


@dataclass
class Labels:
    ids: list[str] = field(default_factory=list)
    age: list[int] = field(default_factory=list)
    gender: list[int] = field(default_factory=list)
    ethnicity: list[int] = field(default_factory=list)


def _select_ids(dataset, split: str, limit: int | None, seed: int) -> set[str] | None:
    """A seeded random sample of ``limit`` ids of ``split`` (None: all of them)."""
    if not limit:
        return None
    ids = dataset.ids(split)
    if limit >= len(ids):
        return None
    return set(np.random.default_rng(seed).choice(ids, size=limit, replace=False).tolist())


def run_passes(predictor, spec, records, passes: list[tuple[str, int]], *, seed: int = 0, tta_flip: bool = False,
               total: int | None = None, progress: bool = True, chips: bool = True) -> tuple[Labels, dict]:
    """Labels of the images and a ``PassResult`` per pass; one detector, the model batched over a chunk of
    images times all passes (about three batches of crops: little padding)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from edgeag.edge.detector import FaceDetector

    labels, parts = Labels(), {p: [] for p in passes}
    batch: list = []
    with FaceDetector(min_confidence=0.5) as detector, Progress(
            TextColumn(f"[bold]evaluating[/] {len(passes)} passes"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task("", total=total)
        for rec in records:
            labels.ids.append(rec.id); labels.age.append(rec.age)
            labels.gender.append(rec.gender); labels.ethnicity.append(rec.ethnicity)
            batch.append(_crop_passes(detector, spec, rec, passes, seed, chips))
            if len(batch) * len(passes) >= 3 * BATCH:
                _classify(predictor, batch, passes, parts, tta_flip)
                bar.advance(task, len(batch))
                batch = []
        if batch:
            _classify(predictor, batch, passes, parts, tta_flip)
            bar.advance(task, len(batch))
    results = {p: PassResult(*(np.concatenate([r[i] for r in parts[p]]) for i in range(3))) for p in passes}
    return labels, results


def _crop_passes(detector, spec, rec, passes, seed, chips: bool) -> dict:
    """{pass: crop or None} for one image. The clean detection gives the face width the corruptions scale to.

    ``chips``: the images are pre-cropped face chips (UTKFace), which are set in a frame of their own
    reflection first, as the crop cache does for training (``train/cache.frame_chip``), so that the detector
    sees a face with surroundings and the corruptions act on a whole frame."""
    from edgeag.edge.crop import crop_face
    from edgeag.train.cache import central_face, frame_chip, pick_face

    image = rec.image if rec.image.ndim == 3 else np.repeat(rec.image[:, :, None], 3, axis=2)
    if chips:
        image = frame_chip(image)[0]
    subject = (lambda dets: central_face(dets, image.shape)) if chips else pick_face
    clean_det = subject(detector.detect(image))
    face_width = clean_det.box[2] if clean_det is not None else None
    out = {}
    for kind, severity in passes:
        if (kind, severity) == CLEAN:
            img, det = image, clean_det
        else:
            img = corrupt(image, kind, severity, image_rng(seed, rec.id, kind, severity), face_width)
            det = subject(detector.detect(img))
        out[(kind, severity)] = None if det is None else crop_face(img, det, spec)
    return out


def _classify(predictor, batch: list[dict], passes, parts: dict, tta_flip: bool) -> None:
    """The model over every face found in a chunk of images and all passes, in batches of one size (padded):
    LiteRT re-allocates its tensors for every new batch size."""
    crops = [item[p] for p in passes for item in batch if item[p] is not None]  # the order read back below
    pred = None
    if crops:
        x = np.stack(crops)
        padded = np.concatenate([x, np.zeros((-len(x) % BATCH, *x.shape[1:]), x.dtype)])
        pred = predict_all(predictor, padded, tta_flip=tta_flip, batch=BATCH)
    k = 0
    for p in passes:
        res = PassResult.empty(len(batch))
        for i, item in enumerate(batch):
            if item[p] is not None:
                res.age[i], res.p_female[i], res.ethnicity[i] = pred["age"][k], pred["p_female"][k], \
                    pred["ethnicity"][k]
                k += 1
        parts[p].append((res.age, res.p_female, res.ethnicity))


def pass_metrics(labels: Labels, res: PassResult, clean: PassResult, has_gender: bool) -> dict:
    """Faces found and the figures on them, the issue's bias groups, the worst bucket's bias and the ratios
    to the clean pass (overall, and on the faces found in both passes)."""
    from edgeag.train.evaluate import bootstrap_mean_interval

    found, age_t = res.found, np.asarray(labels.age, np.float64)
    out = {"images": len(found), "faces_found": int(found.sum()), "face_rate": float(found.mean())}
    if not found.any():
        return {**out, "metrics": None}
    gender = np.asarray(labels.gender)[found] if has_gender else None
    eth = np.asarray(labels.ethnicity)[found] if has_gender else None
    pred = {"age": res.age[found], "p_female": res.p_female[found], "ethnicity": res.ethnicity[found]}
    m = compute_metrics(age_t[found], gender, eth, pred)
    err = res.age - age_t
    for lo, hi in AGE_BUCKETS:  # an interval for the bias too: the floors are on it
        g, in_bucket = m["by_age"][bucket_name(lo, hi)], found & (age_t >= lo) & (age_t <= hi)
        if g["n"]:
            g["interval95"]["age_mean_signed_error"] = bootstrap_mean_interval(err[in_bucket])
    out["metrics"] = m
    out["signed_error"] = {}
    for name, (lo, hi) in FLOOR_GROUPS.items():
        e = err[found & (age_t >= lo) & (age_t <= hi)]
        out["signed_error"][name] = {"n": len(e), "mean": float(e.mean()) if len(e) else None,
                                     "interval95": bootstrap_mean_interval(e)}
    sized = {k: g for k, g in m["by_age"].items() if g["n"]}
    big = {k: g for k, g in sized.items() if g["n"] >= MIN_BUCKET} or sized
    worst = max(big, key=lambda k: abs(big[k]["age_mean_signed_error"]))
    out["worst_bucket_bias"] = [worst, big[worst]["age_mean_signed_error"]]
    both = found & clean.found
    if both.any():
        mae, mae_clean = float(np.abs(err[both]).mean()), float(np.abs(clean.age[both] - age_t[both]).mean())
        out["same_faces"] = {"n": int(both.sum()), "age_mae": mae, "clean_age_mae": mae_clean,
                             "ratio": mae / max(mae_clean, 1e-9)}
    return out


def _ratios(row: dict, clean: dict) -> None:
    m, c = row.get("metrics"), clean.get("metrics")
    if not m or not c:
        return
    row["age_mae_ratio"] = m["overall"]["age_mae"] / max(c["overall"]["age_mae"], 1e-9)
    row["face_rate_ratio"] = row["face_rate"] / max(clean["face_rate"], 1e-9)
    if "gender_accuracy" in m["overall"]:
        row["gender_accuracy_delta"] = m["overall"]["gender_accuracy"] - c["overall"]["gender_accuracy"]


def evaluate_robustness(model: str | Path, data: str | Path, *, split: str = "test",
                        split_file: str | Path | None = None, corruptions: list[tuple[str, int]] = (),
                        limit: int | None = None, seed: int = 0, out: str | Path | None = None,
                        tta_flip: bool = False, progress: bool = True) -> dict:
    """Clean and corrupted passes of a Keras folder or TFLite file over one split (FG-NET: all of it).

    ``limit`` evaluates a seeded random sample of that many images; ``seed`` also seeds the corruptions
    (per image, with a stable hash of its id). Writes metrics.json, report.md and robustness.png to ``out``.
    """
    from edgeag.train.datasets import Dataset

    predictor, spec, desc = load_predictor(model)
    dataset = Dataset(data, split_file, seed=seed)
    only = _select_ids(dataset, split, limit, seed)
    total = len(only) if only is not None else len(dataset.ids(split))
    passes = [CLEAN] + [p for p in corruptions if p != CLEAN]
    has_gender = dataset.format != "fgnet"  # FG-NET: whole photographs; the rest: pre-cropped face chips
    labels, results = run_passes(predictor, spec, dataset.records(split, only), passes, seed=seed,
                                 tta_flip=tta_flip, total=total, progress=progress, chips=has_gender)
    rows = []
    for kind, severity in passes:
        row = {"pass": "clean" if (kind, severity) == CLEAN else describe(kind, severity), "kind": kind,
               "severity": severity,
               "middle": (kind, severity) == CLEAN or severity == CATALOGUE[kind]["middle"]}
        row.update(pass_metrics(labels, results[(kind, severity)], results[CLEAN], has_gender))
        _ratios(row, rows[0] if rows else row)
        rows.append(row)
    m = {"model": desc, "split": split, "seed": seed, "tta_flip": tta_flip,
         "data": {"path": Path(data).name, "format": dataset.format,
                  "split_file": Path(split_file).name if split_file else None, "images": len(labels.ids),
                  "limit": limit, "skipped": dict(dataset.skipped.counts),
                  "skipped_examples": dataset.skipped.examples},
         "catalogue": CATALOGUE, "passes": rows}
    if out:
        from edgeag.train.robustness_report import write_robustness_report

        write_robustness_report(m, out)
    return m
