"""Study: how much do BlazeFace's box and eye points move for the same face seen differently?

The training crop jitter (train/augment.py) should be as large as the detector's own variation on full
images, no larger. For N val faces, the UTKFace chip is padded with its reflection (a frame around the face),
shifted by a random sub-pixel offset, reduced so that the face is W px wide and optionally blurred or dimmed,
then detected; the box and eyes are mapped back to the chip's pixels and compared with the detection on the
clean chip. Prints the spread (standard deviation and 95th percentile of |value|) of the box centre shift and
size change as a fraction of the box side, and of the eye-line angle in degrees.

    python benchmarks/experiments/crop_jitter.py --n 300
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np

from edgeag.edge.detector import FaceDetector
from edgeag.train.cache import pick_face
from edgeag.train.datasets import Dataset


def angle(det) -> float:
    (ax, ay), (bx, by) = sorted((det.right_eye, det.left_eye))
    return math.degrees(math.atan2(by - ay, bx - ax))


def view(chip: np.ndarray, face_px: float, rng: np.random.Generator, condition: str) -> tuple[np.ndarray, float, np.ndarray]:
    """The chip in a reflected frame, shifted and scaled so that the face is ~face_px wide; returns the image,
    the scale and the offset (chip pixel p maps to p * scale + offset)."""
    pad = chip.shape[0] // 2
    big = cv2.copyMakeBorder(chip, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    scale = face_px / (0.75 * chip.shape[1])  # UTKFace faces fill about 3/4 of the chip
    off = rng.uniform(0, 1, 2)
    size = int(big.shape[0] * scale) + 2
    img = cv2.warpAffine(big if scale >= 1 else cv2.GaussianBlur(big, (0, 0), 0.5 / scale),
                         np.float32([[scale, 0, off[0]], [0, scale, off[1]]]), (size, size), flags=cv2.INTER_AREA)
    if condition == "blur":
        img = cv2.GaussianBlur(img, (0, 0), face_px * 0.02)
    elif condition == "dim":
        noisy = (img.astype(np.float32) * 0.3) + rng.normal(0, 3, img.shape)
        img = np.clip(noisy, 0, 255).astype(np.uint8)
    return img, scale, np.array([off[0] + pad * scale, off[1] + pad * scale])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/UTKFace.tar")
    ap.add_argument("--split-file", default="../shared/data/utkface_split.csv")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {}
    with FaceDetector() as det:
        for i, rec in enumerate(Dataset(args.data, args.split_file).records("val")):
            if i >= args.n:
                break
            ref = pick_face(det.detect(rec.image))
            if ref is None or ref.right_eye is None:
                continue
            for face_px in (48, 96, 160):
                for cond in ("clean", "blur", "dim"):
                    img, s, off = view(rec.image, face_px, rng, cond)
                    d = pick_face(det.detect(img))
                    if d is None or d.right_eye is None:
                        continue
                    x, y, w, h = d.box
                    cx, cy, side = (x + w / 2 - off[0]) / s, (y + h / 2 - off[1]) / s, max(w, h) / s
                    rx, ry, rw, rh = ref.box
                    rside = max(rw, rh)
                    rows.setdefault(f"{face_px}px {cond}", []).append(
                        ((cx - rx - rw / 2) / rside, (cy - ry - rh / 2) / rside, math.log(side / rside),
                         angle(d) - angle(ref)))
    print("mean / sd / p95 of |value|, against the detection on the bare chip")
    print(f"{'view':16s} {'n':>4s}  {'dx':>18s} {'dy':>18s} {'log size':>18s} {'angle (deg)':>18s}")
    for k, v in rows.items():
        a = np.array(v)
        cols = [f"{a[:, j].mean():+.3f}/{a[:, j].std():.3f}/{np.percentile(np.abs(a[:, j]), 95):.3f}"
                for j in range(4)]
        print(f"{k:16s} {len(a):4d}  " + " ".join(f"{c:>18s}" for c in cols))


if __name__ == "__main__":
    main()
