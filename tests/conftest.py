"""Shared fixtures. Faces come from ../shared/data (never committed: non-commercial licence)."""

from __future__ import annotations

import io
import os
import signal
import tarfile
from pathlib import Path

import numpy as np
import pytest

from data_paths import DATA, KAGGLE_CSV, ROOT, SHARED, SPLIT_FILE, UTK_TAR, decode_rgb  # noqa: F401

needs_data = pytest.mark.skipif(not UTK_TAR.is_file(), reason=f"UTKFace not found at {DATA} (../shared/data)")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Crop caches of tests go to a per-session temp folder, never the user's ~/.cache."""
    monkeypatch.setenv("EDGEAG_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def utk_members(n: int, split: str | None = None, start: int = 0, every: int = 1) -> list[tuple[str, bytes]]:
    """n well-named UTKFace files (name, JPEG bytes), optionally of one split, taking every k-th.

    The tar is sorted by name, so age-ordered runs: ``every`` spreads a sample over all ages.
    """
    import csv

    splits = {}
    if split:
        with SPLIT_FILE.open() as f:
            splits = {r["file"]: r["split"] for r in csv.DictReader(f)}
    out = []
    skipped = seen = 0
    with tarfile.open(UTK_TAR) as tf:
        for m in tf:
            if not m.isfile():
                continue
            name = os.path.basename(m.name)
            if name.count("_") < 3 or (split and splits.get(name) != split):
                continue
            if skipped < start:
                skipped += 1
                continue
            seen += 1
            if (seen - 1) % every:
                continue
            out.append((name, tf.extractfile(m).read()))
            if len(out) >= n:
                break
    return out


def write_tar(path: Path, members: list[tuple[str, bytes]], prefix: str = "UTKFace/") -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def utk_sample() -> list[tuple[str, bytes]]:
    """A spread of 60 test-split faces (every 10th), decoded lazily by the tests that need them."""
    if not UTK_TAR.is_file():
        pytest.skip(f"UTKFace not found at {DATA} (../shared/data)")
    return utk_members(600, split="test")[::10]


def default_sigint() -> None:
    """``preexec_fn`` for children a test interrupts: a shell without job control (``cmd &`` in a script, as CI
    runners may start the tests) makes them inherit SIGINT as ignored, so Ctrl-C would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
