"""Far faces in a stream: how often is each face found, frame by frame, and how soon after it appears?

    python -m edgeag.benchmarks.face_size_stream --data ../shared/data/UTKFace.tar \\
        --split-file ../shared/data/utkface_split.csv --detectors auto,tiled,full --plot benchmarks/results/face_size_stream.png

``face_size.py`` scores single images. A camera gives a stream, in which ``auto`` spreads its search over frames
and follows the faces it found (``FaceDetector.detect(expected=...)``). Here each clip is 2 s at 30 FPS of a
generated 640x480 scene (``scenes.py``): 6 face-free frames, then three UTKFace test faces of one size that drift
slowly (up to 1 px per frame, as people standing or strolling far away), every frame through sensor noise and
JPEG, run through ``FaceAnalyzer.track`` as ``edgeag run`` does. Per detector and size: the share of face-frames
in which the face was found (a detection centred in the chip, 0.4-1.6 times its side, at the default threshold),
the median frames from a face's appearance to its first detection, and the share found after that; false
detections per frame on face-free clips; detection time per frame (mean: the search is spread over frames).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import typer

from edgeag.benchmarks.common import (DataOpt, DetectorsOpt, OutOpt, PlotOpt, SeedOpt, SplitFileOpt, ThreadsOpt,
                                       exits_cleanly, pyplot, save_figure, write_json)
from edgeag.benchmarks.face_size import HEIGHT, WIDTH, Truth, _machine, load_test_faces, match, size_axes
from edgeag.benchmarks.scenes import camera, paste, places, scene

app = typer.Typer(add_completion=False)
SIZES = (32, 48, 64, 96, 128)
FPS, FRAMES, EMPTY_FRAMES, FACES_PER_CLIP = 30, 60, 6, 3


def clip(rng: np.random.Generator, recs: list, side: int | None):
    """(RGB frame, [Truth]) of one clip: ``EMPTY_FRAMES`` without faces, then ``recs`` drifting at ``side`` px
    (no faces at all if ``side`` is None)."""
    background = scene(rng, WIDTH, HEIGHT)
    if side is None:
        spots, speeds = [], []
    else:
        spots = np.array(places(rng, len(recs), side, WIDTH, HEIGHT), float)
        speeds = rng.uniform(-1, 1, spots.shape)
    for i in range(FRAMES):
        img, truths = background.copy(), []
        if side is not None and i >= EMPTY_FRAMES:
            pos = np.clip(spots + speeds * (i - EMPTY_FRAMES), 0, [WIDTH - side, HEIGHT - side]).astype(int)
            for rec, (x, y) in zip(recs, pos):
                paste(img, rec.image, int(x), int(y), side)
                truths.append(Truth(int(x), int(y), side, int(rec.age), int(rec.gender)))
        yield camera(img, rng), truths


def run_detector(name: str, recs: list, free_clips: int, threads: int, seed: int) -> dict:
    """Per size, per face: the frames (from its appearance) in which it was found; false detections per
    face-free frame; detection wall and CPU ms per frame."""
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions

    rng = np.random.default_rng(seed)
    obs = {"found": {s: [] for s in SIZES}, "false": [], "frame_cpu_ms": [], "detect_ms": []}
    with FaceAnalyzer(FaceAnalyzerOptions(detector=name, threads=threads, video=True)) as fa:
        for side in (*SIZES, *[None] * free_clips):
            groups = [recs[i:i + FACES_PER_CLIP] for i in range(0, len(recs), FACES_PER_CLIP)] if side else [[]]
            for group in groups:
                fa.reset_tracks()
                seen = [[] for _ in group]
                for i, (rgb, truths) in enumerate(clip(rng, group, side)):
                    c0 = time.process_time()
                    faces = fa.track(rgb, i * 1000 // FPS)
                    obs["frame_cpu_ms"].append((time.process_time() - c0) * 1e3)
                    obs["detect_ms"].append(faces.timings_ms["detect_ms"])
                    found, extra = match(faces, truths)
                    if side is None:
                        obs["false"].append(len(extra))
                    for k in range(len(truths)):
                        seen[k].append(k in found)
                if side:
                    obs["found"][side] += seen
    return obs


def summarize(obs: dict) -> dict:
    by_size = {}
    for side, faces in obs["found"].items():
        frames = np.array(faces, bool)  # faces x frames since appearance
        first = [int(np.argmax(f)) if f.any() else None for f in frames]
        after = [f[i:].mean() for f, i in zip(frames, first) if i is not None]
        lat = [i for i in first if i is not None]
        by_size[str(side)] = {
            "faces": len(frames), "face_frames": int(frames.size),
            "found_per_frame": round(float(frames.mean()), 4),
            "faces_ever_found": round(float(np.mean([i is not None for i in first])), 4),
            "frames_to_first_p50": float(np.median(lat)) if lat else None,
            "frames_to_first_p90": float(np.percentile(lat, 90)) if lat else None,
            "found_per_frame_after_first": round(float(np.mean(after)), 4) if after else None}
    return {"by_size": by_size, "false_detections_per_free_frame": round(float(np.mean(obs["false"])), 4),
            "detect_ms_mean": round(float(np.mean(obs["detect_ms"])), 2),
            "detect_ms_p50": round(float(np.median(obs["detect_ms"])), 2),
            "detect_ms_p99": round(float(np.percentile(obs["detect_ms"], 99)), 2),
            "frame_cpu_ms_mean": round(float(np.mean(obs["frame_cpu_ms"])), 2)}


def plot(result: dict, out: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in result["detectors"].items():
        rows = [r["by_size"][str(s)] for s in SIZES]
        axes[0].plot(SIZES, [100 * x["found_per_frame"] for x in rows], "o-",
                     label=f"{name} ({r['detect_ms_mean']:.1f} ms detection/frame)")
        axes[1].plot(SIZES, [x["frames_to_first_p50"] for x in rows], "o-", label=name)
    size_axes(axes, SIZES, ("face-frames found (%)", "frames to first detection (median)"),
              "pasted face chip side (px) in a 640x480 stream")
    fig.suptitle(f"{result['faces_per_size']} drifting UTKFace test faces per size, 2 s clips at 30 FPS "
                 f"({result['machine']['processor']})", fontsize=9)
    return save_figure(fig, out)


@app.command()
@exits_cleanly
def main(
    data: DataOpt,
    split_file: SplitFileOpt = None,
    faces: int = typer.Option(60, "--faces", help="Test faces per size (three per clip)."),
    free: int = typer.Option(10, "--free-clips", help="Face-free clips for false detections."),
    detectors: DetectorsOpt = "auto,tiled,full",
    threads: ThreadsOpt = 1,
    seed: SeedOpt = 0,
    out: OutOpt = Path("benchmarks/results/face_size_stream.json"),
    plot_out: PlotOpt = None,
) -> None:
    """Per-frame detection rate, time to first detection and detection cost of far faces in a stream."""
    recs = load_test_faces(data, split_file, faces)
    result = {"tool": "python -m edgeag.benchmarks.face_size_stream", "machine": _machine(),
              "load_average_start": [round(v, 2) for v in os.getloadavg()], "faces_per_size": len(recs),
              "clip": {"fps": FPS, "frames": FRAMES, "face_free_first": EMPTY_FRAMES, "frame": [WIDTH, HEIGHT]},
              "threads": threads, "seed": seed, "detectors": {}}
    for name in [d.strip() for d in detectors.split(",") if d.strip()]:
        typer.echo(f"{name}: {len(recs)} faces x {len(SIZES)} sizes + {free} face-free clips", err=True)
        result["detectors"][name] = r = summarize(run_detector(name, recs, free, threads, seed))
        typer.echo(json.dumps({name: {s: v["found_per_frame"] for s, v in r["by_size"].items()}
                               | {"false": r["false_detections_per_free_frame"], "ms": r["detect_ms_mean"]}}),
                   err=True)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    write_json(result, out, indent=1)
    typer.echo(f"wrote {out}", err=True)
    if plot_out:
        typer.echo(f"wrote {plot(result, plot_out)}", err=True)


if __name__ == "__main__":
    app()
