"""Readers for UTKFace and FG-NET (folder, .tar, .tar.gz, .zip) and the Kaggle 48x48 CSV, behind one interface.

Every reader yields ``Record``s and never crashes on a bad entry: badly named files, short pixel rows,
non-numeric fields and undecodable images are skipped and counted in a ``SkipReport``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edgeag.errors import BadInputError

SPLITS = ("train", "val", "test")
ETHNICITIES = ("White", "Black", "Asian", "Indian", "Others")
GENDERS = ("male", "female")
# AGE_GENDER_RACE_DATETIME.jpg.chip.jpg; the date part and the suffixes vary, the three labels do not.
_UTK_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_[^/\\]*\.(jpe?g|png)$", re.IGNORECASE)
# FG-NET: SSSAaa[x].JPG, subject SSS, age aa, an optional letter telling two photos at one age apart.
_FGNET_NAME = re.compile(r"^(\d{3})A(\d{2})([a-z]?)\.(jpe?g|png)$", re.IGNORECASE)
_IMAGE_EXT = (".jpg", ".jpeg", ".png")
UNKNOWN = -1  # gender / ethnicity of a data set without those labels (FG-NET)
KAGGLE_SIDE = 48  # the Kaggle CSV's images are 48x48 grayscale


@dataclass
class Record:
    """One labelled face image. ``image`` is uint8 RGB (H, W, 3) or grayscale (H, W)."""

    image: np.ndarray
    age: int
    gender: int  # 0 = male, 1 = female, UNKNOWN (-1) when the data set has no such label
    ethnicity: int  # 0..4, see ETHNICITIES, or UNKNOWN
    id: str
    split: str = ""


@dataclass
class SkipReport:
    """Entries left out, counted by reason, with a few examples of each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.total:
            return "skipped 0 entries"
        parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.items()]
        return f"skipped {self.total} entries: " + "; ".join(parts)


def parse_utk_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, ethnicity) from a UTKFace file name, or None if the name is malformed."""
    m = _UTK_NAME.match(os.path.basename(name))
    if not m:
        return None
    age = int(m.group(1))
    if not 0 <= age <= 120:
        return None
    return age, int(m.group(2)), int(m.group(3))


def parse_fgnet_name(name: str) -> tuple[int, int] | None:
    """(subject, age) from an FG-NET file name such as ``001A02.JPG`` or ``001A43a.JPG``, or None."""
    m = _FGNET_NAME.match(os.path.basename(name))
    return (int(m.group(1)), int(m.group(2))) if m else None


def decode_image(data: bytes) -> np.ndarray | None:
    """JPEG/PNG bytes to RGB uint8, or None when they do not decode."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None or arr.size == 0:
        return None
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def read_split_file(path: str | Path) -> dict[str, str]:
    """``file,split`` CSV to {file name: split}."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"split file not found: {p}")
    out: dict[str, str] = {}
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"file", "split"} <= set(reader.fieldnames):
            raise BadInputError(f"split file {p} needs the columns file,split (has {reader.fieldnames})")
        for row in reader:
            if row["split"] in SPLITS:
                out[os.path.basename(row["file"])] = row["split"]
    if not out:
        raise BadInputError(f"split file {p} names no train/val/test entries")
    return out


def hash_split(item_id: str, seed: int = 0, fractions: tuple[float, float] = (0.8, 0.9)) -> str:
    """A deterministic 80/10/10 split from a stable hash of the id: no order or platform dependence."""
    u = (zlib.crc32(f"{seed}:{item_id}".encode()) & 0xFFFFFFFF) / 2**32
    return "train" if u < fractions[0] else "val" if u < fractions[1] else "test"


def channel_warning(dataset: "Dataset", channels: int, who: str) -> str | None:
    """A warning when 48x48 grayscale data (the Kaggle CSV) meets an RGB (3-channel) ``who``, else None."""
    if dataset.kind == "kaggle-csv" and channels == 3:
        return (f"{dataset.path.name} holds 48x48 grayscale faces but {who} is RGB (3 channels): it sees grey, "
                "upscaled copies, unlike the colour photos it is meant for (--channels 1 suits this data)")
    return None


class Dataset:
    """A labelled face data set on disk.

    Args:
        path: UTKFace or FG-NET folder, ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archive of one, or a Kaggle CSV.
        split_file: optional ``file,split`` CSV; without it a seeded hash split is used.
        seed: seed of the hash split.

    ``kind`` is ``FORMAT-CONTAINER`` (e.g. ``utkface-tar``, ``fgnet-tar``, ``kaggle-csv``). A folder or archive
    is FG-NET when most of its first image names read as FG-NET names (``001A02.JPG``). FG-NET is an evaluation
    set only (``evaluation_only``): all of it is the ``test`` split, and it has no gender or ethnicity labels.
    """

    def __init__(self, path: str | Path, split_file: str | Path | None = None, seed: int = 0) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BadInputError(f"data path does not exist: {self.path}")
        name = self.path.name.lower()
        if self.path.is_dir():
            self.container = "dir"
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            self.container = "tar"
        elif name.endswith(".zip"):
            self.container = "zip"
        elif name.endswith(".csv"):
            self.container = "csv"
        else:
            raise BadInputError(f"unknown data format: {self.path} (expected a UTKFace or FG-NET folder, .tar, "
                                ".tar.gz, .zip or a Kaggle .csv)")
        self.format = "kaggle" if self.container == "csv" else self._sniff_format()
        self.kind = f"{self.format}-{self.container}"
        self.evaluation_only = self.format == "fgnet"
        if self.evaluation_only and split_file:
            raise BadInputError(f"{self.path} is FG-NET, an evaluation set evaluated whole: drop --split-file")
        self.split_file = Path(split_file) if split_file else None
        self.seed = seed
        self._split_map = read_split_file(split_file) if split_file else None
        self.skipped = SkipReport()
        self.yielded = 0

    def fingerprint(self) -> dict:
        """What identifies this data for caching: path, size and mtime of the data and of the split file.

        The seed only matters where it draws the split (no split file); with a split file, runs with
        different seeds share one crop cache instead of re-cropping the data set for each seed.
        """
        def stat(p: Path | None) -> list | None:
            if p is None:
                return None
            st = p.stat()
            return [str(p.resolve()), st.st_size, int(st.st_mtime)]
        return {"data": stat(self.path), "split_file": stat(self.split_file),
                "seed": None if self.split_file is not None else self.seed}

    def _sniff_format(self, n: int = 50) -> str:
        """``fgnet`` when most of the first ``n`` image names are FG-NET names, else ``utkface``."""
        fgnet = utk = 0
        entries = self._entries()
        for i, (name, _) in enumerate(entries):
            fgnet += parse_fgnet_name(name) is not None
            utk += parse_utk_name(name) is not None
            if i + 1 >= n:
                break
        entries.close()
        return "fgnet" if fgnet > utk else "utkface"

    def split_of(self, item_id: str) -> str | None:
        if self.format == "fgnet":
            return "test"
        if self._split_map is not None:
            return self._split_map.get(item_id)
        return hash_split(item_id, self.seed)

    def records(self, split: str | None = None, only: set[str] | None = None) -> Iterator[Record]:
        """Decoded records, in storage order; ``split`` = None yields every split, ``only`` keeps those ids.

        Raises BadInputError at the end if nothing usable was found.
        """
        self._check_split(split)
        self.skipped = SkipReport()
        self.yielded = 0
        reader = self._read_csv(split, only) if self.format == "kaggle" else self._read_images(split, only)
        for rec in reader:
            self.yielded += 1
            yield rec
        if self.yielded == 0:
            what = f"split {split!r} of " if split else ""
            raise BadInputError(f"no usable records in {what}{self.path}; {self.skipped.summary()}")

    def ids(self, split: str | None = None) -> list[str]:
        """Ids of the well-named entries of ``split``, in storage order, without decoding any image."""
        self._check_split(split)
        if self.format == "kaggle":
            return [r.id for r in self._read_csv(split, None)]
        parse = parse_fgnet_name if self.format == "fgnet" else parse_utk_name
        return [name for name, _ in self._entries() if parse(name) and self._wanted(name, split)]

    def _check_split(self, split: str | None) -> None:
        if split is not None and split not in SPLITS:
            raise BadInputError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        if self.format == "fgnet" and split not in (None, "test"):
            raise BadInputError(f"{self.path.name} is FG-NET, an evaluation set with no {split} split: "
                                "it is evaluated whole (--split test)")

    def _wanted(self, item_id: str, split: str | None) -> str | None:
        """The entry's split if it is wanted, else None (counting entries the split file lacks)."""
        s = self.split_of(item_id)
        if s is None:
            self.skipped.add("not in split file", item_id)
            return None
        return s if split is None or s == split else None

    # -- UTKFace and FG-NET ----------------------------------------------------------------------
    def _entries(self) -> Iterator[tuple[str, callable]]:
        """(name, read-bytes callable) for every image-like entry, without unpacking to disk."""
        if self.container == "dir":
            for p in sorted(self.path.rglob("*")):
                if p.is_file() and p.suffix.lower() in _IMAGE_EXT:
                    yield p.name, p.read_bytes
        elif self.container == "tar":
            try:
                tf = tarfile.open(self.path, "r:*")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise BadInputError(f"cannot read archive {self.path}: {exc}") from None
            with tf:
                try:
                    for m in tf:
                        if m.isfile() and m.name.lower().endswith(_IMAGE_EXT):
                            f = tf.extractfile(m)
                            yield os.path.basename(m.name), f.read
                except (tarfile.TarError, OSError, EOFError) as exc:
                    self.skipped.add("truncated archive", f"{self.path.name}: {exc}")
        else:
            try:
                zf = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise BadInputError(f"cannot read archive {self.path}: {exc}") from None
            with zf:
                for info in zf.infolist():
                    if not info.is_dir() and info.filename.lower().endswith(_IMAGE_EXT):
                        yield os.path.basename(info.filename), (lambda i=info: zf.read(i))

    def _labels(self, name: str) -> tuple[int, int, int] | None:
        """(age, gender, ethnicity) from a file name of this data set's format; FG-NET has ages only."""
        if self.format == "fgnet":
            parsed = parse_fgnet_name(name)
            return None if parsed is None else (parsed[1], UNKNOWN, UNKNOWN)
        return parse_utk_name(name)

    def _read_images(self, split: str | None, only: set[str] | None) -> Iterator[Record]:
        for name, read in self._entries():
            labels = self._labels(name)
            if labels is None:
                self.skipped.add("badly named file", name)
                continue
            if only is not None and name not in only:
                continue
            s = self._wanted(name, split)
            if s is None:
                continue
            try:
                image = decode_image(read())
            except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
                self.skipped.add("unreadable entry", f"{name}: {exc}")
                continue
            if image is None:
                self.skipped.add("undecodable image", name)
                continue
            yield Record(image, *labels, id=name, split=s)

    # -- Kaggle CSV ------------------------------------------------------------------------------
    def _read_csv(self, split: str | None, only: set[str] | None) -> Iterator[Record]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            need = {"age", "ethnicity", "gender", "pixels"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise BadInputError(f"{self.path} is not in the Kaggle format: needs columns "
                                    f"age,ethnicity,gender,img_name,pixels (has {reader.fieldnames})")
            for i, row in enumerate(reader, start=2):
                row_id = (row.get("img_name") or "").strip() or f"row{i}"
                if only is not None and row_id not in only:
                    continue
                s = self._wanted(row_id, split)
                if s is None:
                    continue
                try:
                    age, eth, gender = int(row["age"]), int(row["ethnicity"]), int(row["gender"])
                    pixels = np.array(row["pixels"].split(), dtype=np.int32)
                except (ValueError, TypeError, AttributeError):
                    self.skipped.add("non-numeric field", f"line {i}")
                    continue
                side = KAGGLE_SIDE
                if len(pixels) != side * side:
                    self.skipped.add("wrong pixel count", f"line {i} ({len(pixels)} values)")
                    continue
                if not (0 <= age <= 120 and gender in (0, 1) and 0 <= eth <= 4) or pixels.min() < 0 \
                        or pixels.max() > 255:
                    self.skipped.add("value out of range", f"line {i}")
                    continue
                yield Record(pixels.astype(np.uint8).reshape(side, side), age, gender, eth, id=row_id, split=s)
