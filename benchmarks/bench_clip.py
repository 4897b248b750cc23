"""The clip ``edgeag benchmark`` times: generated JPEG frames (optionally with real faces pasted in), the
runtime ``FrameSource`` that decodes them, and the face boxes the per-face stages use."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from edgeag.benchmarks.bench_config import BenchConfig
from edgeag.edge.crop import Detection


def face_grid(k: int, width: int, height: int) -> list[tuple[float, float, float]]:
    """(centre x, centre y, side) of K face squares laid out on a grid that fits the frame."""
    cols = max(1, math.ceil(math.sqrt(k * width / height)))
    rows = max(1, math.ceil(k / cols))
    cell = min(width / cols, height / rows)
    side = min(0.62 * cell, 0.45 * height)
    out = []
    for i in range(k):
        r, c = divmod(i, cols)
        n_in_row = min(cols, k - r * cols)
        x0 = (width - n_in_row * cell) / 2
        y0 = (height - rows * cell) / 2
        out.append((x0 + (c + 0.5) * cell, y0 + (r + 0.5) * cell, side))
    return out


def synthetic_detections(k: int, width: int, height: int, frame_index: int = 0) -> list[Detection]:
    """K fixed face boxes with slightly tilted eyes (so the crop's rotation path runs, as with real faces)."""
    dets = []
    for i, (cx, cy, side) in enumerate(face_grid(k, width, height)):
        tilt = math.radians(4.0 if i % 2 else -3.0)
        dx, dy = 0.16 * side * math.cos(tilt), 0.16 * side * math.sin(tilt)
        ex, ey = cx, cy - 0.12 * side
        dets.append(Detection(box=(cx - side / 2, cy - side / 2, side, side), score=1.0,
                              right_eye=(ex - dx, ey - dy), left_eye=(ex + dx, ey + dy)))
    return dets


def load_faces(data: Path, split_file: Path | None, split: str, k: int) -> list[np.ndarray]:
    """The first K RGB face images of ``split`` in a data set (UTKFace folder/archive or Kaggle CSV)."""
    from edgeag.train.datasets import Dataset

    faces = []
    for rec in Dataset(data, split_file).records(split):
        img = rec.image
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        faces.append(img)
        if len(faces) >= k:
            break
    return faces


def _backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An indoor-like RGB backdrop: flat panels with hard edges and some fine texture, work for the JPEG codec
    but nothing face-like (soft skin-coloured blobs make BlazeFace report phantom faces)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 140 - 50 * xx / width], -1)
    for _ in range(14):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        x1, y1 = x0 + rng.integers(30, width // 2), y0 + rng.integers(30, height // 2)
        scene[y0:y1, x0:x1] = rng.uniform(30, 230, 3)
    scene += 12 * np.sin(xx / 3.0)[..., None] * (yy > 0.75 * height)[..., None]  # a striped floor
    return np.clip(scene, 0, 255).astype(np.uint8)


def make_clip(n: int, width: int, height: int, quality: int = 90, faces: list[np.ndarray] | None = None,
              seed: int = 0) -> tuple[list[bytes], list[tuple[float, float, float]]]:
    """``n`` distinct JPEG frames of a moving scene, optionally with ``faces`` pasted in (drifting a little).

    Returns the encoded frames and the (cx, cy, side) places of the faces (the first frame's).
    """
    import cv2

    rng = np.random.default_rng(seed)
    scene = _backdrop(rng, width, height)
    places = face_grid(len(faces), width, height) if faces else []
    frames = []
    for i in range(n):
        img = scene.copy()
        x = int((i * 7) % (width + 120)) - 60  # a moving bar, so consecutive frames differ
        cv2.rectangle(img, (x, 30), (x + 60, height - 30), (200, 80, 60), -1)
        for j, (face, (cx, cy, side)) in enumerate(zip(faces or [], places)):
            s = int(side)
            dx = int(round(6 * math.sin(0.3 * i + j)))
            dy = int(round(4 * math.cos(0.25 * i + 2 * j)))
            x0 = int(np.clip(cx - s / 2 + dx, 0, width - s))
            y0 = int(np.clip(cy - s / 2 + dy, 0, height - s))
            img[y0:y0 + s, x0:x0 + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA)
        noise = rng.normal(0, 4, img.shape)  # sensor noise
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        frames.append(jpg.tobytes())
    return frames, places


def frame_bgr(jpeg: bytes, width: int, height: int) -> np.ndarray:
    """The decode stage: JPEG bytes -> BGR uint8 (H, W, 3) with the runtime's decoder (edge/images.py), resized
    only if the size differs."""
    import cv2

    from edgeag.edge.images import decode_bgr

    bgr = decode_bgr(jpeg).bgr
    if bgr.shape[1] != width or bgr.shape[0] != height:
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return bgr


def decode_frame(jpeg: bytes, width: int, height: int) -> np.ndarray:
    """JPEG bytes -> RGB uint8 (H, W, 3) at the clip's size."""
    import cv2

    return cv2.cvtColor(frame_bgr(jpeg, width, height), cv2.COLOR_BGR2RGB)


def frame_boxes(jpegs: list[bytes], cfg: BenchConfig) -> list[tuple[list[Detection], bool]]:
    """Per distinct frame: (boxes the per-face stages use, detected?). Detected faces (at most K) where the
    detector finds some, else the K synthetic boxes."""
    from edgeag.edge.detector import FaceDetector

    synthetic = synthetic_detections(cfg.faces, cfg.width, cfg.height)
    out = []
    with FaceDetector(cfg.detector) as det:
        for j in jpegs:
            dets = det.detect(decode_frame(j, cfg.width, cfg.height))[: cfg.faces]
            out.append((dets, True) if dets else (synthetic, False))
    return out


def clip_source(jpegs: list[bytes], n: int, cfg: BenchConfig):
    """A runtime ``FrameSource`` of ``n`` frames that decodes the clip's JPEGs (cycled); ``decode_ms`` is the
    time of the last frame's decode (JPEG -> BGR -> RGB)."""
    from edgeag.edge.sources import Frame, FrameSource

    class ClipSource(FrameSource):
        kind = "benchmark clip"

        def __init__(self) -> None:
            super().__init__()
            self.fps = 30.0
            self.decode_ms = 0.0

        def __iter__(self):
            for i in range(n):
                t0 = time.perf_counter()
                frame = Frame(bgr=frame_bgr(jpegs[i % len(jpegs)], cfg.width, cfg.height), index=i,
                              timestamp_ms=i * 33)
                frame.rgb  # noqa: B018 - the BGR->RGB conversion belongs to the decode stage
                self.decode_ms = (time.perf_counter() - t0) * 1e3
                self.stats.read += 1
                yield frame

    return ClipSource()
