#!/usr/bin/env python3
"""Inputs for verify.sh, made on the host from ../shared/data (never committed): a few UTKFace test-split
faces, one 640x480 frame with three faces, and a short video of them (tests/video_fixture.py).

    python benchmarks/pi/make_inputs.py OUT_DIR [--frames 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

# (gender 0=male/1=female, min age, max age): a young man, a young woman, a middle-aged man, an old woman
# (chosen so that no gender is near 50:50, where one grey level of difference could flip it).
STILLS = ((0, 25, 32), (1, 20, 26), (0, 40, 50), (1, 65, 80))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=48)
    a = ap.parse_args()
    import cv2

    from video_fixture import make_video, pick_faces

    a.out.mkdir(parents=True, exist_ok=True)
    for f in pick_faces(STILLS):
        cv2.imwrite(str(a.out / f"utk_{f.age}_{f.gender}.png"), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
    v = make_video(a.out / "faces3.mp4", pick_faces(), n_frames=a.frames)
    ok, frame = cv2.VideoCapture(str(v.path)).read()
    if not ok:
        print(f"cannot read back {v.path}", file=sys.stderr)
        return 1
    cv2.imwrite(str(a.out / "group3.png"), frame)
    print(f"inputs in {a.out}: {len(STILLS)} faces, group3.png, faces3.mp4 ({v.n_frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
