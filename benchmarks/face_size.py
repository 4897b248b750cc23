"""Which faces does each detector find, and how good are age and gender on them, by face size?

    python benchmarks/face_size.py --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv \\
        --detectors auto,tiled,full,short --plot benchmarks/results/face_size.png

Real test-split faces (UTKFace chips: the face is about 70% of the chip) are pasted at each size (the chip's
side, 24 to 192 px) into generated 640x480 scenes without faces (``scenes.py``: rooms, offices, a street,
foliage), three faces per frame, through sensor noise and JPEG. Every detector sees the same frames and the
same faces at every size. Per detector and size: detection rate (a detection whose centre lies in the chip
and whose width is 0.4 to 1.6 times the chip's side),
the median detected box width, and, on the faces found, age MAE and gender accuracy of the bundled
classifier through the runtime's own ``FaceAnalyzer``. Face-free frames give false detections per frame.
Frame times are medians per frame with faces, wall clock and CPU time of this process (detection alone, and
with crop and classification; ``free_detect_cpu_ms``: face-free frames, where ``auto`` and ``tiled`` also run
the short range), on the busy or idle machine it runs on (the JSON records the load average); compare them
only within one run. Writes ``--out`` (JSON) and, with ``--plot``, a PNG of the curves.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from edgeag.benchmarks.common import (DataOpt, DetectorsOpt, OutOpt, PlotOpt, SeedOpt, SplitFileOpt, ThreadsOpt,
                                       exits_cleanly, machine_facts, pyplot, save_figure, write_json)
from edgeag.benchmarks.scenes import camera, paste, places, scene
from edgeag.errors import BadInputError

app = typer.Typer(add_completion=False)
SIZES = (24, 32, 48, 64, 96, 128, 192)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)  # detector score thresholds reported
DEFAULT_THRESHOLD = "0.5"  # the default --min-confidence
WIDTH, HEIGHT = 640, 480


@dataclass
class Truth:
    x: int
    y: int
    side: int
    age: int
    gender: int  # 0 male, 1 female (UTKFace)


def load_test_faces(data: Path, split_file: Path | None, n: int, split: str = "test") -> list:
    """``n`` records of ``split`` spread over the whole split (every k-th in storage order, which is by age)."""
    from edgeag.train.datasets import Dataset

    ds = Dataset(data, split_file)
    total = sum(1 for s in (ds._split_map or {}).values() if s == split)
    step = max(1, total // n) if total else 1
    recs = []
    for i, rec in enumerate(ds.records(split)):
        if i % step == 0:
            recs.append(rec)
            if len(recs) == n:
                break
    if len(recs) < n:
        raise BadInputError(f"only {len(recs)} faces taken from the {split} split, {n} wanted")
    return recs


def face_frames(faces: list, sizes=SIZES, per_frame: int = 3, seed: int = 0):
    """(size, RGB frame, [Truth]) for every size: every face pasted once at that size, up to ``per_frame`` at a time."""
    rng = np.random.default_rng(seed)
    for side in sizes:
        queue = list(faces)
        while queue:
            img = scene(rng, WIDTH, HEIGHT)
            spots = places(rng, min(per_frame, len(queue)), side, WIDTH, HEIGHT)
            truths = []
            for rec, (x, y) in zip(queue, spots):
                paste(img, rec.image, x, y, side)
                truths.append(Truth(x, y, side, int(rec.age), int(rec.gender)))
            del queue[:len(spots)]
            yield side, camera(img, rng), truths


def free_frames(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield camera(scene(rng, WIDTH, HEIGHT), rng)


def match(faces, truths: list[Truth]) -> tuple[dict[int, object], list]:
    """Each truth's detected face (centre inside the chip, width 0.4 to 1.6 times its side; best score first),
    and the faces that match no truth."""
    found: dict[int, object] = {}
    extra = []
    for f in faces:
        x, y, w, h = f.box
        cx, cy = x + w / 2, y + h / 2
        i = next((i for i, t in enumerate(truths) if i not in found and t.x <= cx <= t.x + t.side
                  and t.y <= cy <= t.y + t.side and 0.4 * t.side <= w <= 1.6 * t.side), None)
        if i is None:
            extra.append(f)
        else:
            found[i] = f
    return found, extra


def run_detector(name: str, faces: list, n_free: int, threads: int | None, seed: int) -> dict:
    """Raw observations of one detector at the lowest threshold: per face its score (None: missed), box
    width, age error and gender hit; per face-free frame the scores of its (false) detections; frame times
    (wall clock and CPU time of this process: detection, and detection + crop + classification)."""
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions

    obs = {"faces": [], "false_scores": [], "extra_scores": [], "detect_ms": [], "detect_cpu_ms": [],
           "frame_ms": [], "frame_cpu_ms": [], "free_detect_cpu_ms": []}
    with FaceAnalyzer(FaceAnalyzerOptions(detector=name, threads=threads, min_confidence=min(THRESHOLDS))) as fa:
        for side, rgb, truths in face_frames(faces, seed=seed):
            t0, c0 = time.perf_counter(), time.process_time()
            dets = fa.detect(rgb)
            t1, c1 = time.perf_counter(), time.process_time()
            found, extra = match(fa.classify(rgb, dets), truths)
            t2, c2 = time.perf_counter(), time.process_time()
            obs["detect_ms"].append((t1 - t0) * 1e3)
            obs["detect_cpu_ms"].append((c1 - c0) * 1e3)
            obs["frame_ms"].append((t2 - t0) * 1e3)
            obs["frame_cpu_ms"].append((c2 - c0) * 1e3)
            obs["extra_scores"] += [f.score for f in extra]
            for i, t in enumerate(truths):
                f = found.get(i)
                obs["faces"].append((side, None) if f is None else (
                    side, (f.score, f.box[2], abs(f.age - t.age), int(f.p_female >= 0.5) == t.gender)))
        for rgb in free_frames(n_free, seed + 1):
            c0 = time.process_time()
            obs["false_scores"].append([f.score for f in fa.analyze(rgb)])
            obs["free_detect_cpu_ms"].append((time.process_time() - c0) * 1e3)
    return obs


def summarize(obs: dict, threshold: float) -> dict:
    """Detection rate, box width, age MAE and gender accuracy by size, and false detections, at a threshold."""
    by_size = {}
    for side in SIZES:
        rows = [o for s, o in obs["faces"] if s == side]
        hits = [o for o in rows if o is not None and o[0] >= threshold]
        by_size[str(side)] = {
            "faces": len(rows), "found": len(hits), "detection_rate": round(len(hits) / max(len(rows), 1), 4),
            "box_width_p50": round(float(np.median([h[1] for h in hits])), 1) if hits else None,
            "age_mae": round(float(np.mean([h[2] for h in hits])), 3) if hits else None,
            "gender_accuracy": round(float(np.mean([h[3] for h in hits])), 4) if hits else None}
    false = [sum(s >= threshold for s in frame) for frame in obs["false_scores"]]
    return {"by_size": by_size,
            "false_detections_per_free_frame": round(float(np.mean(false)), 4) if false else None,
            "free_frames_with_a_detection": int(sum(n > 0 for n in false)),
            "unmatched_detections_in_face_frames": int(sum(s >= threshold for s in obs["extra_scores"]))}


def size_axes(axes, sizes: tuple[int, ...], titles: tuple[str, ...], xlabel: str) -> None:
    """Face size on a log2 axis, one titled panel per metric (shared with face_size_stream)."""
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()


def plot(result: dict, out: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for name, r in result["detectors"].items():
        rows = [r["at_threshold"][DEFAULT_THRESHOLD]["by_size"][str(s)] for s in SIZES]
        label = f"{name} ({r['detect_cpu_ms_p50']:.1f} ms CPU/frame)"
        style = "o--" if name == "auto" else "o-"  # auto = tiled on single images: the two curves coincide
        enough = [x["found"] >= 20 for x in rows]  # age and gender only where at least 20 faces were found
        axes[0].plot(SIZES, [100 * x["detection_rate"] for x in rows], style, label=label)
        axes[1].plot(SIZES, [x["age_mae"] if ok else None for x, ok in zip(rows, enough)], style, label=name)
        axes[2].plot(SIZES, [100 * x["gender_accuracy"] if ok else None for x, ok in zip(rows, enough)], style,
                     label=name)
    size_axes(axes, SIZES, ("faces found (%)", "age MAE (years), faces found (>= 20)",
                     "gender accuracy (%), faces found (>= 20)"), "pasted face chip side (px) in a 640x480 frame")
    fig.suptitle(f"{result['faces_per_size']} UTKFace test faces per size in generated scenes, detector threshold "
                 f"{DEFAULT_THRESHOLD} ({result['machine']['processor']}; busy machine: times are indicative)",
                 fontsize=9)
    return save_figure(fig, out)


def _machine() -> dict:
    m = machine_facts()
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), []))
        m["cpu_flags"] = sorted(flags & {"avx2", "avx512_vnni", "avx_vnni", "asimddp"})
    except OSError:
        pass
    return m


@app.command()
@exits_cleanly
def main(
    data: DataOpt,
    split_file: SplitFileOpt = None,
    faces: int = typer.Option(240, "--faces", help="Test faces per size (each pasted once at every size)."),
    free: int = typer.Option(600, "--free-frames", help="Face-free frames for false detections."),
    detectors: DetectorsOpt = "auto,tiled,full,short",
    threads: ThreadsOpt = 1,
    seed: SeedOpt = 0,
    out: OutOpt = Path("benchmarks/results/face_size.json"),
    plot_out: PlotOpt = None,
) -> None:
    """Detection rate, false detections, age MAE, gender accuracy and frame time by face size, per detector."""
    recs = load_test_faces(data, split_file, faces)
    result = {"tool": "python -m edgeag.benchmarks.face_size", "machine": _machine(),
              "load_average_start": [round(v, 2) for v in os.getloadavg()],
              "faces_per_size": len(recs), "faces_per_frame": 3, "sizes": list(SIZES),
              "frame": [WIDTH, HEIGHT], "threads": threads, "seed": seed, "detectors": {}}
    for name in [d.strip() for d in detectors.split(",") if d.strip()]:
        typer.echo(f"{name}: {len(recs)} faces x {len(SIZES)} sizes + {free} face-free frames", err=True)
        obs = run_detector(name, recs, free, threads, seed)
        times = ("detect_ms", "detect_cpu_ms", "frame_ms", "frame_cpu_ms", "free_detect_cpu_ms")
        r = {f"{k}_p50": round(float(np.median(obs[k])), 2) for k in times}
        r["at_threshold"] = {str(t): summarize(obs, t) for t in THRESHOLDS}
        result["detectors"][name] = r
        typer.echo(json.dumps({name: {f"{k}_p50": r[f"{k}_p50"] for k in times}}), err=True)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    result["python"] = platform.python_version()
    write_json(result, out, indent=1)
    typer.echo(f"wrote {out}", err=True)
    if plot_out:
        typer.echo(f"wrote {plot(result, plot_out)}", err=True)


if __name__ == "__main__":
    app()
