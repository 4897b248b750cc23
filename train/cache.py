"""Detect, crop and cache a whole data set once, so epochs and later runs never decode JPEGs again.

Crops go through the runtime's own detector and ``crop_face``; images where the detector finds no face
fall back to the whole image (counted). The cache is keyed by the data's fingerprint, the split and the
crop spec, so changing any of them makes a new cache instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeag.edge.crop import CropSpec, Detection, crop_face, whole_image_detection
from edgeag.train.datasets import Dataset, SkipReport

CACHE_FORMAT = 1


@dataclass
class CropSet:
    """Model-ready crops with labels. ``x`` is uint8 (N, size, size, channels)."""

    x: np.ndarray
    age: np.ndarray  # float32 years
    gender: np.ndarray  # int8, 0 male / 1 female
    ethnicity: np.ndarray  # int8, 0..4
    ids: np.ndarray  # str
    split: np.ndarray  # str
    fallback: np.ndarray  # bool: no face detected, whole image used

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, split: str | None) -> "CropSet":
        """The crops of one split (or all of them for None)."""
        return self if split is None else self.select(self.split == split)

    def select(self, index: np.ndarray) -> "CropSet":
        """The crops picked by a boolean mask or an index array, all fields alike."""
        return CropSet(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def sample(self, n: int, seed: int = 0) -> "CropSet":
        """A seeded random subset of n crops, in storage order (archives are name-sorted, i.e. by age:
        the first n would all be of a few ages)."""
        if n >= len(self):
            return self
        return self.select(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGEAG_CACHE", Path.home() / ".cache" / "edgeag"))


def pick_face(dets: list[Detection]) -> Detection | None:
    """In a pre-cropped face photo the subject is the largest face (others are background people)."""
    if not dets:
        return None
    return max(dets, key=lambda d: d.box[2] * d.box[3])


def cache_key(dataset: Dataset, spec: CropSpec, split: str | None, min_confidence: float) -> str:
    blob = json.dumps({"fmt": CACHE_FORMAT, "data": dataset.fingerprint(), "split": split,
                       "crop": spec.to_dict(), "det_conf": min_confidence}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_crops(dataset: Dataset, spec: CropSpec, split: str | None = None, *,
               cache_dir: str | Path | None = None, min_confidence: float = 0.5,
               limit: int | None = None, progress: bool = True) -> tuple[CropSet, SkipReport]:
    """Crops of ``dataset`` (one split or all), from the cache when present, else built and cached.

    Returns the crops and the report of skipped entries from when they were built.
    ``limit`` keeps the first N records (for quick experiments and tests); it is part of the key.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = cache_key(dataset, spec, split, min_confidence) + (f"-n{limit}" if limit else "")
    path = cache / "crops" / f"{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        skipped = SkipReport()
        for reason, n in json.loads(str(z["skipped"])).items():
            skipped.counts[reason] = n
            skipped.examples[reason] = ["see first build"]
        return CropSet(z["x"], z["age"], z["gender"], z["ethnicity"], z["ids"], z["split"], z["fallback"]), skipped

    from edgeag.edge.detector import FaceDetector
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    xs, ages, genders, eths, ids, splits, fallbacks = [], [], [], [], [], [], []
    # Short range: UTKFace images are close-ups (the face fills the 200x200 chip), and the bundled model and
    # the cached crops (whose key does not name the detector) were made with it.
    with FaceDetector("short", min_confidence=min_confidence) as detector, Progress(
            TextColumn("[bold]cropping[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{dataset.path.name} ({split or 'all'})", total=limit)
        for rec in dataset.records(split):
            h, w = rec.image.shape[:2]
            det = pick_face(detector.detect(rec.image))
            fallbacks.append(det is None)
            if det is None:
                det = whole_image_detection(h, w, spec)
            xs.append(crop_face(rec.image, det, spec))
            ages.append(rec.age); genders.append(rec.gender); eths.append(rec.ethnicity)
            ids.append(rec.id); splits.append(rec.split)
            bar.advance(task)
            if limit and len(xs) >= limit:
                break
    crops = CropSet(np.stack(xs), np.array(ages, np.float32), np.array(genders, np.int8),
                    np.array(eths, np.int8), np.array(ids), np.array(splits), np.array(fallbacks))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=crops.x, age=crops.age, gender=crops.gender, ethnicity=crops.ethnicity, ids=crops.ids,
             split=crops.split, fallback=crops.fallback, skipped=json.dumps(dict(dataset.skipped.counts)))
    os.replace(tmp, path)  # atomic: an interrupted build never leaves a half cache behind
    return crops, dataset.skipped
