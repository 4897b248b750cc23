"""Synthetic audience clips: UTKFace test-split faces entering, staying and leaving over a background.

Ground truth (who is in view from which frame to which) comes back with the file. Faces are read from
../shared/data at run time (never committed); clips go to a temp folder.

    python tests/audience_clip.py OUT.mp4 [SEED]     # writes the clip and OUT.truth.json
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from video_fixture import background, pick_faces

# Non-overlapping places for a 150 px face in a 640x480 frame.
PLACES = ((40, 40), (440, 40), (240, 290), (40, 290), (440, 290))
# (gender 0=male/1=female, min age, max age) of the people available to the schedules.
PEOPLE = ((1, 22, 28), (0, 58, 68), (0, 32, 40), (1, 40, 50), (0, 18, 24), (1, 65, 80), (0, 45, 54))


@dataclass
class Visit:
    """One person's stay: frames [first, last] at a place, with the face's UTKFace labels."""

    person: int
    name: str
    age: int
    gender: str
    place: int
    first: int
    last: int

    def dwell_s(self, fps: float) -> float:
        return (self.last - self.first) / fps


def schedule(seed: int, n_frames: int, fps: float) -> list[tuple[int, int, int, int]]:
    """(person, place, first frame, last frame): 3-6 s stays, >= 3 s between stays at one place."""
    rng = np.random.default_rng(seed)
    out = []
    free_from = [int(rng.integers(0, 3 * fps)) for _ in PLACES]
    person = int(rng.integers(0, len(PEOPLE)))
    for place in range(len(PLACES)):
        start = free_from[place]
        while True:
            length = int(rng.uniform(2.0, 6.0) * fps)
            if start + length >= n_frames - fps:
                break
            out.append((person % len(PEOPLE), place, start, start + length))
            person += 1
            start += length + int(rng.uniform(3.0, 5.0) * fps)
    return sorted(out, key=lambda v: v[2])


def make_clip(path: Path, seed: int = 0, seconds: float = 20.0, fps: float = 24.0, face_px: int = 150,
              size: tuple[int, int] = (640, 480)) -> tuple[list[Visit], float, int]:
    """Write the clip; returns (visits, fps, frames)."""
    import cv2

    n_frames = int(seconds * fps)
    faces = pick_faces(PEOPLE)
    chips = [cv2.resize(f.rgb, (face_px, face_px), interpolation=cv2.INTER_AREA) for f in faces]
    plan = schedule(seed, n_frames, fps)
    w, h = size
    bg = background(w, h, seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("cv2.VideoWriter cannot write mp4v here")
    for t in range(n_frames):
        frame = bg.copy()
        for person, place, first, last in plan:
            if first <= t <= last:
                phase = 2 * math.pi * (t - first) / (4 * fps) + person
                x = int(round(PLACES[place][0] + 12 * math.sin(phase)))
                y = int(round(PLACES[place][1] + 8 * math.cos(phase)))
                frame[y:y + face_px, x:x + face_px] = chips[person]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    visits = [Visit(p, faces[p].name, faces[p].age, "female" if faces[p].gender else "male", place, a, b)
              for p, place, a, b in plan]
    return visits, fps, n_frames


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "audience.mp4")
    vs, fps, n = make_clip(out, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    out.with_suffix(".truth.json").write_text(json.dumps({"fps": fps, "frames": n,
                                                          "visits": [asdict(v) for v in vs]}, indent=1))
    print(f"wrote {out}: {n} frames, {len(vs)} visits")
