"""Where the test data lives, without pytest: tests/video_fixture.py runs as a script in the base install.

Faces come from ../shared/data (never committed: non-commercial licence).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEAG_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
UTK_TAR = DATA / "UTKFace.tar"
SPLIT_FILE = DATA / "utkface_split.csv"
KAGGLE_CSV = DATA / "age_gender_sample.csv"


def decode_rgb(data: bytes) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
