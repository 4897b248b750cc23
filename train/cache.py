"""Detect, crop and cache a whole data set once, so epochs and later runs never decode JPEGs again.

Crops go through the runtime's own detector and ``crop_face``; images where the detector finds no face
fall back to the whole image (counted). A data set's images are pre-cropped face chips (UTKFace, Kaggle 48x48),
but the runtime detects faces in whole frames: each chip is first set in a frame of its own reflection
(``frame_chip``), so that the detector sees a face with surroundings, as at run time, and the crop's margin
and rotation fill with image content instead of black corners. Measured with
``benchmarks/experiments/crop_jitter.py``: on bare chips BlazeFace's boxes came out 5-8% smaller, 4-7% lower and
tilted 3 degrees against the same faces in a frame, a skew between training and run-time crops. The cache is keyed by the data's fingerprint, the split and the
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

CACHE_FORMAT = 2  # 2: chips framed by their reflection before detection


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


def frame_chip(chip: np.ndarray) -> tuple[np.ndarray, int]:
    """A pre-cropped face chip inside a frame of its own reflection, half the chip wide on every side;
    returns the framed image and that border width (chip pixel (x, y) is (x + pad, y + pad) in it)."""
    import cv2

    pad = max(chip.shape[:2]) // 2
    return cv2.copyMakeBorder(chip, pad, pad, pad, pad, cv2.BORDER_REFLECT_101), pad


def central_face(dets: list[Detection], shape: tuple[int, ...]) -> Detection | None:
    """The subject of a framed chip: the largest face whose box holds the image centre (mirrored faces in
    the frame never do); None when there is none."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return pick_face([d for d in dets
                      if d.box[0] <= cx <= d.box[0] + d.box[2] and d.box[1] <= cy <= d.box[1] + d.box[3]])


def chip_face(chip: np.ndarray, detector) -> tuple[np.ndarray, Detection | None]:
    """The framed chip and its subject's detection (None when the detector misses it)."""
    image, _ = frame_chip(chip)
    return image, central_face(detector.detect(image), image.shape)


def chip_crop(chip: np.ndarray, detector, spec: CropSpec) -> tuple[np.ndarray, bool]:
    """Model input for one pre-cropped face chip, and whether the detector missed it (the chip is then
    used whole)."""
    image, det = chip_face(chip, detector)
    if det is not None:
        return crop_face(image, det, spec), False
    pad = (image.shape[0] - chip.shape[0]) // 2
    x, y, w, h = whole_image_detection(chip.shape[0], chip.shape[1], spec).box
    return crop_face(image, Detection(box=(x + pad, y + pad, w, h), score=0.0), spec), True


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
            x, missed = chip_crop(rec.image, detector, spec)
            xs.append(x)
            fallbacks.append(missed)
            ages.append(rec.age); genders.append(rec.gender); eths.append(rec.ethnicity)
            ids.append(rec.id); splits.append(rec.split)
            bar.advance(task)
            if limit and len(xs) >= limit:
                break
    crops = CropSet(np.stack(xs), np.array(ages, np.float32), np.array(genders, np.int8),
                    np.array(eths, np.int8), np.array(ids), np.array(splits), np.array(fallbacks))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # per process: two trainings may build the same cache
    np.savez(tmp, x=crops.x, age=crops.age, gender=crops.gender, ethnicity=crops.ethnicity, ids=crops.ids,
             split=crops.split, fallback=crops.fallback, skipped=json.dumps(dict(dataset.skipped.counts)))
    os.replace(tmp, path)  # atomic: an interrupted build never leaves a half cache behind
    return crops, dataset.skipped
