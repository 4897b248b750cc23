"""A synthetic test video: UTKFace faces pasted on a textured background, moving slowly.

The faces are read from ../shared/data at run time (never committed); the video goes to a temp folder.
Ground truth (labels and the pasted box of every face in every frame) comes back with the file.
"""

from __future__ import annotations

import csv
import math
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeag.edge.tracker import iou  # noqa: F401 (tests import it from here)

from data_paths import SPLIT_FILE, UTK_TAR, decode_rgb  # not conftest: it needs pytest

# (gender 0=male/1=female, min age, max age): adults of clearly different ages and genders.
DEFAULT_WANTED = ((1, 22, 28), (0, 58, 68), (0, 32, 40))
# Top-left corners of the pasted faces in a 640x480 frame (non-overlapping, with room to move).
ANCHORS = ((50, 40), (410, 40), (230, 270))


@dataclass
class PastedFace:
    name: str
    age: int
    gender: int  # 0 male, 1 female
    ethnicity: int
    rgb: np.ndarray


@dataclass
class TestVideo:
    path: Path
    fps: float
    n_frames: int
    size: tuple[int, int]  # width, height
    faces: list[PastedFace]
    boxes: list[list[tuple[int, int, int, int]]]  # per frame, per face: x, y, w, h of the pasted chip


def pick_faces(wanted=DEFAULT_WANTED, split: str = "test") -> list[PastedFace]:
    """The first faces of ``split`` (in tar order) matching each (gender, min age, max age), deterministic."""
    with SPLIT_FILE.open() as f:
        splits = {r["file"]: r["split"] for r in csv.DictReader(f)}
    found: dict[int, PastedFace] = {}
    with tarfile.open(UTK_TAR) as tf:
        for m in tf:
            if not m.isfile():
                continue
            name = os.path.basename(m.name)
            parts = name.split("_")
            if len(parts) < 4 or splits.get(name) != split:
                continue
            age, gender, eth = int(parts[0]), int(parts[1]), int(parts[2])
            for i, (g, lo, hi) in enumerate(wanted):
                # White/Black/Asian/Indian only: "Others" labels are the noisiest in UTKFace.
                if i not in found and g == gender and lo <= age <= hi and eth < 4:
                    found[i] = PastedFace(name, age, gender, eth, decode_rgb(tf.extractfile(m).read()))
                    break
            if len(found) == len(wanted):
                break
    if len(found) < len(wanted):
        raise RuntimeError(f"only {len(found)} of {len(wanted)} wanted faces in the {split} split")
    return [found[i] for i in range(len(wanted))]


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise (a flat grey frame is unrealistically easy)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([90 + 60 * x / width, 110 + 40 * y / height, 140 - 50 * x / width], axis=2)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: Path, faces: list[PastedFace], n_frames: int = 72, fps: float = 24.0,
               size: tuple[int, int] = (640, 480), face_px: int = 160, amplitude: float = 22.0) -> TestVideo:
    """Write an mp4v MP4 with ``faces`` pasted at ANCHORS, each drifting on its own slow ellipse."""
    import cv2

    w, h = size
    bg = background(w, h)
    chips = [cv2.resize(f.rgb, (face_px, face_px), interpolation=cv2.INTER_AREA) for f in faces]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("cv2.VideoWriter cannot write mp4v here")
    all_boxes = []
    for t in range(n_frames):
        frame = bg.copy()
        boxes = []
        for i, chip in enumerate(chips):
            phase = 2 * math.pi * t / n_frames + i * 2.1
            x = int(round(ANCHORS[i][0] + amplitude * math.sin(phase)))
            y = int(round(ANCHORS[i][1] + 0.6 * amplitude * math.cos(phase)))
            frame[y:y + face_px, x:x + face_px] = chip
            boxes.append((x, y, face_px, face_px))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        all_boxes.append(boxes)
    writer.release()
    return TestVideo(path, fps, n_frames, size, faces, all_boxes)


if __name__ == "__main__":
    # The video behind the FPS figure in README.md:  python tests/video_fixture.py /tmp/faces3.mp4 300
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "faces3.mp4")
    v = make_video(out, pick_faces(), n_frames=int(sys.argv[2]) if len(sys.argv) > 2 else 300)
    print(f"wrote {v.path}: {v.n_frames} frames {v.size[0]}x{v.size[1]}, faces {[f.name for f in v.faces]}")
