"""Timing for ``edgeag benchmark``: statistics, memory, the classifier per face, and the product's frame loop.

Nothing in the runtime is replaced or patched. The analyzer is built with timing wrappers as its detector and
classifier (``FaceAnalyzer(detector=..., classifier=...)``), crop and track times come from each analysis
result's ``timings_ms``, the clip's ``FrameSource`` times decoding, and a last sink draws the overlay (the loop's
``sinks.annotate``, timed) and takes the time between consecutive frames (the end-to-end period).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from edgeag.benchmarks.bench_clip import clip_source, decode_frame
from edgeag.benchmarks.bench_config import STAGES, BenchConfig
from edgeag.edge.detector import takes_expected
from edgeag.edge.sinks import Sink, annotate


def summarize(samples_ms: list[float] | np.ndarray) -> dict:
    """n, mean, p50, p90, p99 (ms) and FPS = 1000 / p50 of one stage's samples."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p90_ms": None, "p99_ms": None, "fps": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": int(a.size), "mean_ms": round(float(a.mean()), 4), "p50_ms": round(float(p50), 4),
            "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4),
            "fps": round(1000.0 / p50, 1) if p50 > 0 else None}


# -- memory ---------------------------------------------------------------------------------------------------

def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """Current resident memory of this process (MB), where the OS says."""
    kb = _status_kb("VmRSS")
    return round(kb / 1024, 1) if kb else None


def peak_rss_mb() -> float:
    """Peak resident memory (MB): since the last ``reset_peak_rss`` on Linux, else since process start."""
    kb = _status_kb("VmHWM")
    if kb is None:
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = ru // 1024 if sys.platform == "darwin" else ru  # macOS reports bytes
    return round(kb / 1024, 1)


def reset_peak_rss() -> bool:
    """Restart the peak-RSS counter (Linux >= 4.0), so each run reports its own peak. False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -- the classifier per face ----------------------------------------------------------------------------------

def time_per_face(models: list[Path], threads: int, jpegs: list[bytes], boxes, cfg: BenchConfig) -> dict[Path, list]:
    """Classifier latency per face (batch 1) for every model, interleaved round-robin.

    Interleaving makes the ratios between models (float32 vs int8, ...) fair on a machine whose load
    changes during the run: every model sees the same background load.
    """
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.crop import crop_face

    clfs = {m: AgeGenderClassifier(m, threads=threads) for m in models}
    crops: dict[Path, list[np.ndarray]] = {m: [] for m in models}
    for j, (dets, _) in zip(jpegs, boxes):  # one decoded frame at a time: the peak RSS is the runtime's, not ours
        f = decode_frame(j, cfg.width, cfg.height)
        for m in models:
            crops[m] += [crop_face(f, d, clfs[m].crop_spec)[None] for d in dets]
    for m in models:
        for i in range(max(cfg.warmup, 1)):
            clfs[m].predict(crops[m][i % len(crops[m])])
    samples = {m: [] for m in models}
    n = max(cfg.frames * cfg.faces, 1)
    for i in range(n):
        for j in range(len(models)):
            m = models[(i + j) % len(models)]  # rotate the order too
            x = crops[m][i % len(crops[m])]
            t0 = time.perf_counter()
            clfs[m].predict(x)
            samples[m].append((time.perf_counter() - t0) * 1e3)
    return samples


# -- the frame loop -------------------------------------------------------------------------------------------

class TimedDetector:
    """A ``FaceDetector`` for ``FaceAnalyzer(detector=...)`` that keeps the time of its last call; on a frame
    where it finds no face it hands on that frame's boxes from ``frame_boxes`` (the synthetic ones)."""

    def __init__(self, detector, boxes: list) -> None:
        self.detector, self.boxes = detector, boxes
        self.takes_expected = takes_expected(detector)
        self.last_ms, self.found, self.calls = 0.0, False, 0

    def detect(self, rgb: np.ndarray, expected: list | None = None) -> list:
        t0 = time.perf_counter()
        follows = expected is not None and self.takes_expected
        dets = self.detector.detect(rgb, expected=expected) if follows else self.detector.detect(rgb)
        self.last_ms = (time.perf_counter() - t0) * 1e3
        self.found = bool(dets)
        frame = self.calls  # one call per frame of the clip
        self.calls += 1
        return dets or self.boxes[frame % len(self.boxes)][0]

    def close(self) -> None:
        self.detector.close()


class TimedClassifier:
    """An ``AgeGenderClassifier`` for ``FaceAnalyzer(classifier=...)`` that keeps the time of its last
    ``predict`` (the model call: set input, invoke, read heads); everything else is the classifier's."""

    def __init__(self, classifier) -> None:
        self.classifier = classifier
        self.last_ms = 0.0

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = self.classifier.predict(crops)
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return out

    def __getattr__(self, name: str):
        return getattr(self.classifier, name)


def timed_analyzer(model: Path, threads: int, boxes: list, cfg: BenchConfig):
    """The run's ``FaceAnalyzer`` (video, at most K faces) with a ``TimedDetector`` and a ``TimedClassifier``."""
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.detector import FaceDetector

    opts = FaceAnalyzerOptions(model_path=model, detector=cfg.detector, threads=threads, video=True,
                               max_faces=cfg.faces)
    detector = TimedDetector(FaceDetector(opts.detector, min_confidence=opts.min_confidence, threads=threads), boxes)
    classifier = TimedClassifier(AgeGenderClassifier(model, threads=threads))
    return FaceAnalyzer(opts, detector=detector, classifier=classifier)


class StageRecorder(Sink):
    """The loop's last sink: draws the frame's overlay (timed, as the loop draws it for a window or a video) and
    records every stage of each frame after the warm-up. ``on_frame`` is the loop's hook that hands it the frame."""

    needs_image = False  # the overlay is drawn here, on the frame the loop analysed

    def __init__(self, analyzer, source, warmup: int) -> None:
        self.analyzer, self.source, self.warmup = analyzer, source, warmup
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES if s != "classify_face"}
        self.detected_frames = self.faces = self.seen = 0
        self.frame = self.found = None
        self.prev: float | None = None

    def on_frame(self, frame, faces) -> None:
        self.frame, self.found = frame, faces

    def write(self, record: dict, image) -> bool:
        t0 = time.perf_counter()
        fps = 1.0 / max(t0 - self.prev, 1e-6) if self.prev is not None else 0.0
        annotate(self.frame.bgr, self.found, fps, False)
        now = time.perf_counter()
        self.seen += 1
        if self.prev is not None and self.seen > self.warmup:
            self._record((now - self.prev) * 1e3, (now - t0) * 1e3, record)
        self.prev = now
        return True

    def _record(self, period: float, draw: float, record: dict) -> None:
        lt, det, clf = self.found.timings_ms, self.analyzer.detector, self.analyzer.classifier
        parts = {"decode": self.source.decode_ms, "detect": det.last_ms, "crop": lt.get("crop_ms", 0.0),
                 "classify_batch": clf.last_ms if record["faces"] else 0.0, "track": lt.get("track_ms", 0.0),
                 "draw": draw}
        # Face records, JSON record, JSON Lines write and the loop's own glue: the rest of the period.
        parts["output"] = max(0.0, period - sum(parts.values()))
        for k, v in parts.items():
            self.samples[k].append(v)
        self.samples["end_to_end_drawn"].append(period)
        self.samples["end_to_end"].append(period - draw)
        self.detected_frames += det.found
        self.faces += len(record["faces"])


def run_pipeline(model: Path, threads: int, jpegs: list[bytes], boxes, cfg: BenchConfig) -> dict:
    """Time the product's frame loop (``edgeag.edge.runner.run_loop``: source -> ``FaceAnalyzer.track`` ->
    JSON record -> JSON Lines sink -> overlay) for one classifier at one thread count.

    Returns the run's JSON record (all stages but classify_face).
    """
    from edgeag.edge.runner import run_loop
    from edgeag.edge.sinks import JsonlSink

    reset_peak_rss()
    analyzer = timed_analyzer(model, threads, boxes, cfg)
    n_frames = cfg.warmup + cfg.frames
    source = clip_source(jpegs, n_frames, cfg)
    recorder = StageRecorder(analyzer, source, cfg.warmup)
    try:
        run_loop(source, analyzer, [JsonlSink(os.devnull), recorder], track=True, max_frames=n_frames,
                 on_frame=recorder.on_frame)
    finally:
        analyzer.close()
    return run_record(recorder, threads)


def run_record(recorder: StageRecorder, threads: int) -> dict:
    """Stage statistics, face counts and the summary of one timed run."""
    rec = recorder.samples
    stages = {s: summarize(rec[s]) for s in rec}
    n = len(rec["end_to_end"])
    e2e = np.asarray(rec["end_to_end"])
    nets = np.asarray(rec["detect"]) + np.asarray(rec["classify_batch"])
    detected, faces = recorder.detected_frames, recorder.faces
    synthetic_frames = n - detected
    src = "detected" if synthetic_frames == 0 else "synthetic" if detected == 0 else "mixed"
    return {
        "threads": threads,
        "faces": {"source": src, "detected_frames": detected, "synthetic_frames": synthetic_frames,
                  "mean_per_frame": round(faces / max(n, 1), 2)},
        "stages": stages,
        "summary": {
            "fps": stages["end_to_end"]["fps"],
            "fps_drawn": stages["end_to_end_drawn"]["fps"],
            "classify_batch_per_face_ms": round(stages["classify_batch"]["p50_ms"] / (faces / n), 4)
            if faces else None,
            # Median of the per-frame shares: robust to a background process stealing the CPU in one stage.
            "non_model_share": round(float(np.median(1.0 - nets / np.maximum(e2e, 1e-9))), 4) if n else None,
            "peak_rss_mb": peak_rss_mb(),
        },
    }
