"""Do track IDs survive detector misses, occlusions and faces crossing? ID switches per 100 face-frames.

    python -m edgeag.benchmarks.tracking --plot benchmarks/results/tracking.png

Clips, generated at run time from UTKFace test-split faces (../shared/data; nothing is saved but the figures):
- ``dropout3``: the 3-face video of tests/video_fixture.py (640x480, 24 FPS, 300 frames, written as MP4 and
  read back) with the detector missing each face for random stretches of 1-15 frames (seeded);
- ``crossing``: 4 faces at 30 FPS over a background, 12 s: two walk across each other twice (the one
  behind is hidden for about a second), one passes behind a pillar three times (hidden about 0.8 s), one
  walks out of the frame and back twice (out of view about a second);
- ``crossing+dropout``: the same with the random detector misses as well.
The default detector runs on every frame as in a stream (looking again where its own tracks are expected);
its boxes, with the simulated misses, go to the tracker under test with the frame's time and, as
``FaceAnalyzer.track`` passes them, each face's own age and p(female) from the bundled model (the new tracker
smooths them per track and refuses to re-acquire a track after a gap with a face they rule out).

Scoring, per frame: each visible face (at least half of it in view, unoccluded) is paired with the detected
box whose centre is closest to its own (within 0.35 of its size). An **ID switch** is a face paired with a
track ID other than the one it had when last paired (CLEAR-MOT); it is a **fragmentation** when that ID is a
new one (the face's track was lost and restarted) and a **swap** when the ID was another face's (faces
confused). Rates are per 100 visible face-frames. ``previous`` is the tracker before issue 18 (greedy IoU
matching, retirement after 10 unmatched frames), kept here for comparison only.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from edgeag.benchmarks.common import exits_cleanly, pyplot, save_figure, write_json

app = typer.Typer(add_completion=False)
FPS = 30.0
SIZE = (640, 480)


@dataclass
class Clip:
    name: str
    fps: float
    frames: list[np.ndarray]  # RGB
    truth: list[list[tuple[int, tuple[float, float, float, float]]]]  # per frame: (person, visible chip box)


# ---------------------------------------------------------------- clips


def _fixture():
    """tests/video_fixture.py (the test video and its face picker), from the source tree."""
    tests = Path(__file__).resolve().parents[1] / "tests"
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import video_fixture

    return video_fixture


def dropout3_clip(n_frames: int = 300) -> Clip:
    import cv2

    vf = _fixture()
    with tempfile.TemporaryDirectory() as d:
        v = vf.make_video(Path(d) / "faces3.mp4", vf.pick_faces(), n_frames=n_frames)
        cap = cv2.VideoCapture(str(v.path))
        frames = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB) for _ in range(v.n_frames)]
        cap.release()
    truth = [[(i, tuple(map(float, b))) for i, b in enumerate(boxes)] for boxes in v.boxes]
    return Clip("dropout3", v.fps, frames, truth)


# Each person: chip size and keyframes (frame, x, y) of the chip's top-left corner, linear in between;
# drawn in list order (later = in front) except that persons 0 and 1 swap depth during FRONT_SWAP.
PEOPLE = [
    (150, [(0, 470, 50), (150, 20, 50), (190, 20, 50), (340, 470, 50)]),   # walks left, then back...
    (160, [(0, 20, 40), (150, 460, 40), (190, 460, 40), (340, 20, 40)]),   # ...crossing this one twice
    (150, [(0, 10, 310), (70, 320, 310), (130, 320, 310), (200, 10, 310), (260, 10, 310), (330, 320, 310)]),
    (150, [(0, 470, 300), (22, 650, 300), (32, 650, 300), (54, 470, 300), (200, 470, 300), (222, 650, 300),
           (232, 650, 300), (254, 470, 300)]),  # walks out of the frame and back, twice
]
PILLAR = (150, 240, 110, 240)  # x, y, w, h: person 2 passes behind it three times
FRONT_SWAP = (170, 360)  # frames in which person 0 is drawn in front of person 1


def _at(keys, t: float) -> tuple[float, float]:
    for (t0, x0, y0), (t1, x1, y1) in zip(keys, keys[1:]):
        if t0 <= t <= t1:
            a = (t - t0) / max(t1 - t0, 1e-9)
            return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
    return keys[-1][1], keys[-1][2]


def crossing_clip(n_frames: int = 360) -> Clip:
    import cv2

    vf = _fixture()
    faces = vf.pick_faces(((1, 20, 30), (0, 40, 55), (1, 50, 65), (0, 60, 70)))
    w, h = SIZE
    bg = vf.background(w, h, seed=1)
    px, py, pw, ph = PILLAR
    pillar = np.clip(vf.background(pw, ph, seed=2).astype(np.int16) - 40, 0, 255).astype(np.uint8)
    chips = [cv2.resize(f.rgb, (s, s), interpolation=cv2.INTER_AREA) for f, (s, _) in zip(faces, PEOPLE)]
    frames, truth = [], []
    for t in range(n_frames):
        frame, owner = bg.copy(), np.full((h, w), -1, np.int8)  # owner: which person each pixel shows
        order = [1, 0, 2, 3] if FRONT_SWAP[0] <= t < FRONT_SWAP[1] else [0, 1, 2, 3]
        boxes = {}
        for i in order:
            s, keys = PEOPLE[i]
            x, y = (int(round(v)) for v in _at(keys, t))
            boxes[i] = (x, y, s, s)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = chips[i][y0 - y:y1 - y, x0 - x:x1 - x]
                owner[y0:y1, x0:x1] = i
        frame[py:py + ph, px:px + pw] = pillar
        owner[py:py + ph, px:px + pw] = -1
        truth.append([(i, tuple(map(float, b))) for i, b in sorted(boxes.items())
                      if (owner == i).sum() >= 0.5 * b[2] * b[3]])
        frames.append(frame)
    return Clip("crossing", FPS, frames, truth)


# ---------------------------------------------------------------- detections, misses, scoring


def detect_all(clip: Clip) -> list[list[tuple[tuple[float, ...], tuple[float, float]]]]:
    """Each frame's detections as (box, (age, p_female)): found as ``FaceAnalyzer.track`` finds them in a
    stream (the detector looks again where the tracks are expected), each classified by the bundled model."""
    from edgeag.edge.analyzer import FaceAnalyzer
    from edgeag.edge.tracker import Tracker

    tracker, out = Tracker(), []
    with FaceAnalyzer() as analyzer:
        for i, f in enumerate(clip.frames):
            size = (f.shape[1], f.shape[0])
            found = analyzer.detect(f, expected=tracker.expected_boxes(i / clip.fps, size))
            faces = analyzer.classify(f, found)
            out.append([(d.box, (face.age, face.p_female)) for d, face in zip(found, faces)])
            tracker.update([d.box for d in found], i / clip.fps, size)
    return out


def pair_with_truth(truth, boxes) -> dict[int, int]:
    """{person: index of the detected box} for one frame (closest centres, within 0.35 of the chip size)."""
    from edgeag.edge.tracker import assign

    def cost(g, b):
        d = math.hypot(b[0] + b[2] / 2 - g[0] - g[2] / 2, b[1] + b[3] / 2 - g[1] - g[3] / 2) / g[2]
        return d if d < 0.35 else math.inf

    pairs = assign([[cost(g, b) for b in boxes] for _, g in truth])
    return {truth[gi][0]: bi for gi, bi in pairs}


def drop_stretches(clip: Clip, dets, seed: int, max_len: int = 15, mean_every: int = 45):
    """Remove each face's detection in random stretches of 1..max_len frames (about one per mean_every)."""
    rng = np.random.default_rng(seed)
    people = sorted({p for fr in clip.truth for p, _ in fr})
    hidden = {p: np.zeros(len(dets), bool) for p in people}
    for p in people:
        t = int(rng.integers(0, mean_every))
        while t < len(dets):
            n = int(rng.integers(1, max_len + 1))
            hidden[p][t:t + n] = True
            t += n + int(rng.integers(mean_every // 2, 3 * mean_every // 2))
    out = []
    for i, (truth, found) in enumerate(zip(clip.truth, dets)):
        drop = {bi for p, bi in pair_with_truth(truth, [b for b, _ in found]).items() if hidden[p][i]}
        out.append([d for bi, d in enumerate(found) if bi not in drop])
    return out, int(sum(h.sum() for h in hidden.values()))


def score(clip: Clip, dets, tracker) -> dict:
    last: dict[int, int] = {}  # person -> track ID when last paired
    owner: dict[int, int] = {}  # track ID -> person it was first paired with
    counts = dict(face_frames=0, paired=0, id_switches=0, fragmentations=0, swaps=0)
    ids_per_person: dict[int, set] = {}
    for i, (truth, found) in enumerate(zip(clip.truth, dets)):
        boxes, seen = [b for b, _ in found], [a for _, a in found]
        tracks = tracker.update(boxes, i / clip.fps, SIZE, seen)
        if hasattr(tracker, "smooth"):  # as FaceAnalyzer.track smooths: the re-acquisition check reads the estimate
            for track, attributes in zip(tracks, seen):
                tracker.smooth(track, *attributes)
        counts["face_frames"] += len(truth)
        for p, bi in pair_with_truth(truth, boxes).items():
            tid = tracks[bi].id
            counts["paired"] += 1
            ids_per_person.setdefault(p, set()).add(tid)
            if p in last and last[p] != tid:
                counts["id_switches"] += 1
                counts["swaps" if owner.get(tid, p) != p else "fragmentations"] += 1
            last[p] = tid
            owner.setdefault(tid, p)
    return {**counts, "ids_per_person": {str(p): sorted(v) for p, v in sorted(ids_per_person.items())}}


def total(runs: list[dict]) -> dict:
    """Counts summed over runs (seeds), rates per 100 face-frames, the worst run, the first run's IDs."""
    keys = ("face_frames", "paired", "id_switches", "fragmentations", "swaps")
    out = {k: sum(r[k] for r in runs) for k in keys}
    per100 = 100.0 / max(out["face_frames"], 1)
    out.update({f"{k}_per_100": round(out[k] * per100, 3) for k in ("id_switches", "fragmentations", "swaps")})
    out["runs"] = len(runs)
    out["most_switches_in_a_run"] = max(r["id_switches"] for r in runs)
    out["ids_per_person_first_run"] = runs[0]["ids_per_person"]
    return out


class PreviousTracker:
    """The tracker before issue 18, for comparison: greedy IoU matching with a centre-distance fallback,
    no motion model, retired after ``max_missed`` unmatched frames."""

    @dataclass
    class _T:
        id: int
        box: tuple
        missed: int = 0

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: dict[int, PreviousTracker._T] = {}
        self._next_id = 1

    @staticmethod
    def _centroid(a, b) -> float:
        d = math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
        if min(a[2] * a[3], b[2] * b[3]) / max(a[2] * a[3], b[2] * b[3], 1e-6) < 0.5:
            return 0.0
        return max(0.0, 1.0 - d / max((a[2] + a[3] + b[2] + b[3]) / 4, 1e-6))

    def update(self, boxes, t_s=None, frame_size=None, attributes=None):  # attributes: unused (none then)
        from edgeag.edge.tracker import iou

        tracks = list(self.tracks.values())
        pairs = []
        for ti, t in enumerate(tracks):
            for bi, b in enumerate(boxes):
                o = iou(t.box, b)
                if o >= self.iou_threshold:
                    pairs.append((1, o, ti, bi))
                elif (a := self._centroid(t.box, b)) >= 0.3:
                    pairs.append((0, a, ti, bi))
        pairs.sort(reverse=True)
        out, used = [None] * len(boxes), set()
        for _, _, ti, bi in pairs:
            if ti not in used and out[bi] is None:
                used.add(ti)
                tracks[ti].box, tracks[ti].missed, out[bi] = tuple(boxes[bi]), 0, tracks[ti]
        for ti, t in enumerate(tracks):
            if ti not in used:
                t.missed += 1
                if t.missed > self.max_missed:
                    del self.tracks[t.id]
        for bi, b in enumerate(boxes):
            if out[bi] is None:
                out[bi] = self.tracks[self._next_id] = self._T(self._next_id, tuple(b))
                self._next_id += 1
        return out


@app.command()
@exits_cleanly
def main(
    seed: int = typer.Option(0, help="First seed of the simulated detector misses."),
    seeds: int = typer.Option(10, help="Runs with misses, seeds seed..seed+N-1 (summed)."),
    max_gap: float = typer.Option(None, "--max-gap", help="Tracker max_gap_s (default: the tracker's)."),
    reacquire_check: float = typer.Option(None, "--reacquire-check", help="Tracker reacquire_check_s (default: "
                                          "the tracker's; inf: never refuse a face by its age and gender)."),
    out: Path = typer.Option(Path("benchmarks/results/tracking.json"), "--out", help="JSON results."),
    plot: Path = typer.Option(None, "--plot", help="PNG bar chart of ID switches per 100 face-frames."),
) -> None:
    """ID switches, fragmentations and swaps per 100 face-frames: new tracker vs previous, per clip."""
    from edgeag.edge.tracker import Tracker

    given = {k: v for k, v in (("max_gap_s", max_gap), ("reacquire_check_s", reacquire_check)) if v is not None}
    new = lambda: Tracker(**given)  # noqa: E731
    t = new()
    results = {"tracker": {"max_gap_s": t.max_gap_s, "reacquire_check_s": t.reacquire_check_s},
               "seeds": list(range(seed, seed + seeds)), "clips": {}}
    for clip in (dropout3_clip(), crossing_clip()):
        dets = detect_all(clip)
        dropped = [drop_stretches(clip, dets, s) for s in range(seed, seed + seeds)]
        variants = {"dropout3": dropped} if clip.name == "dropout3" else {
            "crossing": [(dets, 0)], "crossing+dropout": dropped}
        for name, runs in variants.items():
            results["clips"][name] = {
                "frames": len(clip.frames), "fps": clip.fps, "faces": len({p for fr in clip.truth for p, _ in fr}),
                "detections_dropped_per_run": round(float(np.mean([n for _, n in runs])), 1),
                **{who: total([score(clip, d, make()) for d, _ in runs])
                   for who, make in (("new", new), ("previous", PreviousTracker))}}
    write_json(results, out)
    print(f"{'clip':18s} {'face-frames':>11s}  ID switches / fragmentations / swaps per 100 face-frames")
    for name, r in results["clips"].items():
        for who in ("new", "previous"):
            s = r[who]
            print(f"{name:18s} {s['face_frames']:11d}  {who:8s} {s['id_switches_per_100']:6.2f} / "
                  f"{s['fragmentations_per_100']:6.2f} / {s['swaps_per_100']:6.2f}   ({s['id_switches']} switches in "
                  f"{s['runs']} run(s), at most {s['most_switches_in_a_run']} in one)")
    if plot:
        _plot(results, plot)
    print(f"wrote {out}" + (f", {plot}" if plot else ""))


def _plot(results: dict, path: Path) -> None:
    plt = pyplot()

    names = list(results["clips"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for k, (who, label) in enumerate((("previous", "previous (IoU, 10 frames)"),
                                      ("new", f"new (motion, {results['tracker']['max_gap_s']:g} s)"))):
        v = [results["clips"][n][who]["id_switches_per_100"] for n in names]
        bars = ax.bar(x + (k - 0.5) * 0.38, v, 0.38, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [f"{n}\n({results['clips'][n]['new']['face_frames']} face-frames)" for n in names])
    ax.set_ylabel("ID switches per 100 face-frames")
    ax.set_title("Track IDs through detector misses, occlusions and crossings", fontsize=10)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    app()
