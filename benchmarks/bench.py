"""``edgeag benchmark``: per-stage latency, FPS, size, memory (and accuracy) of the real run pipeline.

The timed loop is the product's own: ``edgeag.edge.runner.run_loop`` (what ``edgeag run`` runs) with
``FaceAnalyzer.track`` (BlazeFace via ``FaceDetector``, the shared ``crop_face``, ``AgeGenderClassifier`` on
LiteRT, the tracker), the JSON record, the overlay (``sinks.annotate``) and a JSON Lines sink writing to the
null device. Only the frames are special: a 640x480 clip generated in memory and JPEG-encoded once at
setup, decoded by a ``FrameSource`` in the loop, so decoding is real work and no camera or data is needed.

Faces. BlazeFace finds nothing in generated pixels, so without ``--data`` detection is timed on the real
frames (the full cost of running the network on a frame) and the per-face stages run on K fixed synthetic
boxes at known places. With ``--data`` K real faces from the data set are pasted into the clip and the
detected boxes are used. Each run reports how many frames used detected and synthetic boxes.

JSON (``SCHEMA_VERSION`` 1; new keys may be added, existing keys keep their meaning)::

    schema_version, tool, edgeag_version, created
    machine   {platform, machine, processor, python, cpu_count, load_average, versions {litert, mediapipe, opencv, numpy},
               cpu {arch, features {avx2, fma, f16c, avx512f, avx512_vnni, avx_vnni, avx512_bf16 | asimd, asimddp,
                    asimdhp, i8mm, sve, atomics: bool} | null, int8_dot_product, summary}}  (edgeag.edge.cpu)
    config    {frames, warmup, faces, threads [..], width, height, jpeg_quality, data, split, split_file}
    clip      {source: "generated" | "generated+faces", distinct_frames, jpeg_kb_mean, face_boxes, face_size_px,
               pipeline}
    detector  {name, path, size_bytes}
    stages    {stage: description}                        (the keys of every run's "stages")
    runs      [ {model {path, name, mode, size_bytes, params, params_source, macs, macs_source, input [S, S, C],
                        architecture, family},
                 threads,
                 faces {source: detected|synthetic|mixed, detected_frames, synthetic_frames, mean_per_frame},
                 stages {stage: {n, mean_ms, p50_ms, p90_ms, p99_ms, fps}},
                 summary {fps, fps_drawn, classify_face_ms, classify_batch_per_face_ms, non_model_share,
                          peak_rss_mb},
                 accuracy null | {split, n, age_mae, gender_accuracy, ethnicity_accuracy},
                 vs_baseline {baseline, baseline_mode, speedup_classify_face, speedup_classify_batch, speedup_end_to_end,
                              size_ratio, age_mae_delta, gender_accuracy_delta} } ]
    targets   [ {name, run, value, target, ok} ]           (the issue's targets, 1-thread runs only)

``family`` groups variants of one trained model (same architecture, crop and training date): ``vs_baseline``
compares each run with the float32 variant of its family at the same thread count (else the family's first
file), so a bare int8 model is its own baseline (speed-up 1.0).
    memory    {rss_start_mb, peak_rss_mb}

``fps`` of a stage is 1000 / p50_ms (for ``classify_face`` it is faces per second). ``non_model_share`` is
the median over frames of the fraction of the headless frame time spent outside the two networks
(detector, classifier call): decoding, cropping, tracking, records, JSON and Python glue.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeag._version import __version__
from edgeag.edge.cpu import cpu_features
from edgeag.edge.crop import Detection
from edgeag.errors import BadInputError, ModelError

SCHEMA_VERSION = 1

STAGES: dict[str, str] = {
    "decode": "JPEG frame -> BGR (cv2.imdecode) -> RGB, in a runtime FrameSource",
    "detect": "face detection on the full frame (BlazeFace, MediaPipe VIDEO mode)",
    "crop": "crop_face for the frame's faces (align, margin, resize) + stack",
    "classify_face": "classifier on one face (batch 1; per face; all models interleaved)",
    "classify_batch": "classifier on the frame's faces in one call (set input, invoke, read heads)",
    "track": "tracker (motion, gaps) + per-track smoothing (FaceAnalyzer.track)",
    "output": "Face records, JSON record, JSON Lines write and loop glue (the rest of the frame period)",
    "draw": "overlay of boxes and captions on the frame (edgeag.edge.sinks.annotate)",
    "end_to_end": "one frame of the run loop, headless: decode .. output (period minus draw)",
    "end_to_end_drawn": "one frame of the run loop with the overlay drawn (window or video output, before display/encode)",
}

# The issue's targets for this project (x86, 1 thread). Reported, never asserted by tests.
TARGETS = {
    "classify_face_int8_ms": 0.5,
    "int8_speedup_vs_float32": 1.5,
    "detect_ms": 3.0,
    "end_to_end_fps": 100.0,
    "non_model_share": 0.35,
}


@dataclass
class BenchConfig:
    """What to benchmark. Empty ``models`` means the bundled classifier."""

    models: list[Path] = field(default_factory=list)
    threads: list[int] = field(default_factory=lambda: [1])
    frames: int = 200
    warmup: int = 20
    faces: int = 3
    width: int = 640
    height: int = 480
    jpeg_quality: int = 90
    data: Path | None = None
    split_file: Path | None = None
    split: str = "test"
    detector: str | None = None  # --detector: auto | full | short; None = the default
    accuracy: bool = True  # with data: evaluate each model on the split
    seed: int = 0


# ----------------------------------------------------------------------------------------------------------
# statistics, model facts, memory
# ----------------------------------------------------------------------------------------------------------

def summarize(samples_ms: list[float] | np.ndarray) -> dict:
    """n, mean, p50, p90, p99 (ms) and FPS = 1000 / p50 of one stage's samples."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p90_ms": None, "p99_ms": None, "fps": None}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": int(a.size), "mean_ms": round(float(a.mean()), 4), "p50_ms": round(float(p50), 4),
            "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4),
            "fps": round(1000.0 / p50, 1) if p50 > 0 else None}


_CONV, _DEPTHWISE, _FULLY_CONNECTED, _TRANSPOSE_CONV, _BATCH_MATMUL = 3, 4, 9, 67, 126


def tflite_graph_stats(buf: bytes) -> dict:
    """Parameters (elements of constant tensors) and MACs per input (conv, depthwise, dense ops) of a TFLite graph.

    Counted from the flatbuffer with LiteRT's schema (no TensorFlow). Folded batch norms make ``params``
    a little smaller than the Keras count; MACs match the Keras count of the same layers.
    """
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(buf, 0)
    g = m.Subgraphs(0)
    params = 0
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        b = t.Buffer()
        if b > 0 and b < m.BuffersLength():
            buffer = m.Buffers(b)
            if buffer.DataLength() > 0 or buffer.Size() > 0:  # inline data, or data past the 2 GB offset form
                params += int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
    macs = 0

    def shape(idx: int) -> list[int]:
        t = g.Tensors(idx)
        return [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []

    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.DeprecatedBuiltinCode()), int(code.BuiltinCode()))
        if builtin not in (_CONV, _DEPTHWISE, _FULLY_CONNECTED, _TRANSPOSE_CONV, _BATCH_MATMUL):
            continue
        ins = op.InputsAsNumpy()
        out = shape(int(op.OutputsAsNumpy()[0]))
        out_per_item = int(np.prod(out[1:])) if len(out) > 1 else int(np.prod(out) or 0)
        if builtin == _CONV:
            w = shape(int(ins[1]))  # [out, kh, kw, in]
            macs += out_per_item * int(np.prod(w[1:]))
        elif builtin == _DEPTHWISE:
            w = shape(int(ins[1]))  # [1, kh, kw, out]
            macs += out_per_item * w[1] * w[2]
        elif builtin == _FULLY_CONNECTED:
            w = shape(int(ins[1]))  # [out, in]
            macs += out_per_item * w[-1]
        elif builtin == _TRANSPOSE_CONV:
            w = shape(int(ins[1]))  # [out, kh, kw, in]; input at ins[2]
            x = shape(int(ins[2]))
            macs += int(np.prod(x[1:])) * w[0] * w[1] * w[2]
        else:  # batch matmul: [.., n, k] x [.., k, m]
            a = shape(int(ins[0]))
            macs += out_per_item * (a[-1] if a else 0)
    return {"params": int(params), "macs": int(macs)}


def model_facts(path: Path) -> dict:
    """Size, mode, input shape, parameters and MACs of a classifier file (metadata first, else the graph)."""
    from edgeag.edge.metadata import read_metadata

    buf = path.read_bytes()
    meta = read_metadata(buf)
    crop = meta["crop"]
    arch = meta.get("architecture") or {}
    # Files converted from the same trained folder share architecture, crop and creation time: variants.
    family = json.dumps([arch, crop, (meta.get("training") or {}).get("created")], sort_keys=True)
    facts = {"path": str(path), "name": path.name, "mode": meta.get("mode"), "size_bytes": len(buf),
             "input": [int(crop["size"]), int(crop["size"]), int(crop["channels"])],
             "architecture": " ".join(f"{k}={arch[k]}" for k in ("arch", "width", "depth") if k in arch) or None,
             "family": hashlib.sha1(family.encode()).hexdigest()[:8]}
    try:
        graph = tflite_graph_stats(buf)
    except Exception:  # an exotic graph must not stop the timing; say n/a instead
        graph = {"params": None, "macs": None}
    for key in ("params", "macs"):
        if meta.get(key):
            facts[key], facts[f"{key}_source"] = int(meta[key]), "metadata"
        elif graph[key]:
            facts[key], facts[f"{key}_source"] = graph[key], "graph"
        else:
            facts[key], facts[f"{key}_source"] = None, "n/a"
    return facts


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


# ----------------------------------------------------------------------------------------------------------
# the clip
# ----------------------------------------------------------------------------------------------------------

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


def make_clip(n: int, width: int, height: int, quality: int = 90, faces: list[np.ndarray] | None = None,
              seed: int = 0) -> tuple[list[bytes], list[tuple[float, float, float]]]:
    """``n`` distinct JPEG frames of a moving scene, optionally with ``faces`` pasted in (drifting a little).

    Returns the encoded frames and the (cx, cy, side) places of the faces (the first frame's).
    """
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([90 + 60 * xx / width, 110 + 40 * yy / height, 140 - 50 * xx / width], -1)
    scene = base.copy()
    # An indoor-like backdrop: flat panels with hard edges and some fine texture, work for the JPEG codec
    # but nothing face-like (soft skin-coloured blobs make BlazeFace report phantom faces).
    for _ in range(14):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        x1, y1 = x0 + rng.integers(30, width // 2), y0 + rng.integers(30, height // 2)
        scene[y0:y1, x0:x1] = rng.uniform(30, 230, 3)
    scene += 12 * np.sin(xx / 3.0)[..., None] * (yy > 0.75 * height)[..., None]  # a striped floor
    scene = np.clip(scene, 0, 255).astype(np.uint8)
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


def decode_frame(jpeg: np.ndarray, width: int, height: int) -> np.ndarray:
    """The decode stage: JPEG bytes -> RGB uint8 (H, W, 3), resized only if the size differs."""
    import cv2

    bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    if bgr.shape[1] != width or bgr.shape[0] != height:
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------------------
# one run: one model at one thread count
# ----------------------------------------------------------------------------------------------------------

def frame_boxes(jpegs: list[bytes], cfg: BenchConfig) -> list[tuple[list[Detection], bool]]:
    """Per distinct frame: (boxes the per-face stages use, detected?). Detected faces (at most K) where the
    detector finds some, else the K synthetic boxes."""
    from edgeag.edge.detector import FaceDetector

    synthetic = synthetic_detections(cfg.faces, cfg.width, cfg.height)
    out = []
    with FaceDetector(cfg.detector) as det:
        for i, j in enumerate(jpegs):
            dets = det.detect(decode_frame(np.frombuffer(j, np.uint8), cfg.width, cfg.height))[: cfg.faces]
            out.append((dets, True) if dets else (synthetic, False))
    return out


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
        f = decode_frame(np.frombuffer(j, np.uint8), cfg.width, cfg.height)
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


class _Timed:
    """Wraps a callable and keeps the duration of its last call (ms)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.last_ms = 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.last_ms = (time.perf_counter() - t0) * 1e3
        return out


def _clip_source(jpegs: list[bytes], n: int, cfg: BenchConfig):
    """A runtime ``FrameSource`` that decodes the clip's JPEGs (cycled) and times each decode."""
    from edgeag.edge.sources import Frame, FrameSource

    class ClipSource(FrameSource):
        kind = "benchmark clip"

        def __init__(self) -> None:
            super().__init__()
            self.fps = 30.0
            self.decode_ms = 0.0
            self._bufs = [np.frombuffer(j, np.uint8) for j in jpegs]

        def __iter__(self):
            import cv2

            for i in range(n):
                t0 = time.perf_counter()
                bgr = cv2.imdecode(self._bufs[i % len(self._bufs)], cv2.IMREAD_COLOR)
                if bgr.shape[1] != cfg.width or bgr.shape[0] != cfg.height:
                    bgr = cv2.resize(bgr, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
                frame = Frame(bgr=bgr, index=i, timestamp_ms=i * 33)
                frame.rgb  # noqa: B018 - the BGR->RGB conversion belongs to the decode stage
                self.decode_ms = (time.perf_counter() - t0) * 1e3
                self.stats.read += 1
                yield frame

    return ClipSource()


def run_pipeline(model: Path, threads: int, jpegs: list[bytes], boxes, cfg: BenchConfig) -> dict:
    """Time the product's frame loop (``edgeag.edge.runner.run_loop``: source -> ``FaceAnalyzer.track`` ->
    JSON record -> overlay -> JSON Lines sink) for one classifier at one thread count.

    Stages are read off the loop without changing it: the source times decoding, thin wrappers time the
    detector, the model call, the overlay and the JSON Lines write, and a last sink takes the time between
    consecutive frames (the end-to-end period). Returns the run's JSON record (all stages but classify_face).
    """
    import os as _os

    from edgeag.edge import runner
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions
    from edgeag.edge.sinks import JsonlSink, Sink

    reset_peak_rss()
    opts = FaceAnalyzerOptions(model_path=model, detector=cfg.detector, threads=threads, video=True,
                               max_faces=cfg.faces)
    analyzer = FaceAnalyzer(opts)
    clf = analyzer.classifier
    predict = _Timed(clf.predict)
    clf.predict = predict  # instance attributes shadow the methods that analyze() calls
    real_detect = _Timed(analyzer.detect)
    n_frames = cfg.warmup + cfg.frames
    state = {"detected": False}

    def detect(rgb, timestamp_ms=None):
        dets = real_detect(rgb, timestamp_ms)
        state["detected"] = bool(dets)
        if dets:
            return dets
        return boxes[(timestamp_ms // 33) % len(boxes)][0]  # no face in the frame: the synthetic boxes

    analyzer.detect = detect
    draw = _Timed(runner.annotate)
    source = _clip_source(jpegs, n_frames, cfg)
    jsonl = JsonlSink(_os.devnull)
    jsonl_write = _Timed(jsonl.write)
    jsonl.write = jsonl_write
    rec = {s: [] for s in STAGES if s != "classify_face"}
    counts = {"detected": 0, "faces": 0}

    class TimingSink(Sink):
        needs_image = True  # makes the loop draw the overlay (timed, and subtracted for the headless figure)

        def __init__(self) -> None:
            self.prev = None
            self.seen = 0

        def write(self, record: dict, image) -> bool:
            now = time.perf_counter()
            self.seen += 1
            if self.prev is not None and self.seen > cfg.warmup:
                lt = analyzer.last_timings
                period = (now - self.prev) * 1e3
                parts = {"decode": source.decode_ms, "detect": real_detect.last_ms,
                         "crop": lt.get("crop_ms", 0.0), "classify_batch": predict.last_ms if record["faces"] else 0.0,
                         "track": lt.get("track_ms", 0.0), "draw": draw.last_ms}
                # Face records, JSON record, JSON Lines write and the loop's own glue: the rest of the period.
                parts["output"] = max(0.0, period - sum(parts.values()))
                for k, v in parts.items():
                    rec[k].append(v)
                rec["end_to_end_drawn"].append(period)
                rec["end_to_end"].append(period - draw.last_ms)
                counts["detected"] += state["detected"]
                counts["faces"] += len(record["faces"])
            self.prev = now
            return True

    runner.annotate = draw  # the loop calls the module-level name; restored below
    try:
        runner.run_loop(source, analyzer, [jsonl, TimingSink()], track=True, max_frames=n_frames)
    finally:
        runner.annotate = draw.fn
        clf.predict = predict.fn
        analyzer.close()

    stages = {s: summarize(rec[s]) for s in rec}
    n = len(rec["end_to_end"])
    e2e = np.asarray(rec["end_to_end"])
    nets = np.asarray(rec["detect"]) + np.asarray(rec["classify_batch"])
    synthetic_frames = n - counts["detected"]
    src = "detected" if synthetic_frames == 0 else "synthetic" if counts["detected"] == 0 else "mixed"
    return {
        "threads": threads,
        "faces": {"source": src, "detected_frames": counts["detected"], "synthetic_frames": synthetic_frames,
                  "mean_per_frame": round(counts["faces"] / max(n, 1), 2)},
        "stages": stages,
        "summary": {
            "fps": stages["end_to_end"]["fps"],
            "fps_drawn": stages["end_to_end_drawn"]["fps"],
            "classify_batch_per_face_ms": round(stages["classify_batch"]["p50_ms"] / (counts["faces"] / n), 4)
            if counts["faces"] else None,
            # Median of the per-frame shares: robust to a background process stealing the CPU in one stage.
            "non_model_share": round(float(np.median(1.0 - nets / np.maximum(e2e, 1e-9))), 4) if n else None,
            "peak_rss_mb": peak_rss_mb(),
        },
    }


# ----------------------------------------------------------------------------------------------------------
# the whole benchmark
# ----------------------------------------------------------------------------------------------------------

def check_models(paths: list[Path]) -> list[Path]:
    """Fail early and clearly (ModelError, exit 2) on a model that is missing or not an edgeag .tflite."""
    from edgeag.edge.metadata import read_metadata

    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            raise ModelError(f"{p} is a folder: the benchmark times .tflite files (convert it with `edgeag quantize`)")
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        read_metadata(p)  # raises ModelError for a non-TFLite file or one without edgeag metadata
        out.append(p)
    return out


def parse_threads(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; BadInputError for anything else."""
    try:
        vals = [int(t) for t in str(text).replace(" ", "").split(",") if t]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise BadInputError(f"--threads must be a comma-separated list of positive integers, got {text!r}")
    return list(dict.fromkeys(vals))


def _machine() -> dict:
    import cv2

    versions = {"numpy": np.__version__, "opencv": cv2.__version__}
    for mod, key in (("ai_edge_litert", "litert"), ("mediapipe", "mediapipe")):
        try:
            from importlib.metadata import version

            versions[key] = version(mod.replace("_", "-"))
        except Exception:
            versions[key] = None
    cpu = platform.processor()
    try:  # Linux: x86 kernels give a "model name", some ARM kernels only a "Hardware" line
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.lower().startswith(("model name", "hardware"))),
                       cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": cpu,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "versions": versions, "cpu": cpu_features()}


def _add_baselines(runs: list[dict]) -> None:
    """Ratios against the float32 variant of the same model at the same thread count (else the model's
    first variant). Variants are files of one ``family`` (converted from the same trained model)."""
    for r in runs:
        same = [b for b in runs if b["threads"] == r["threads"] and b["model"]["family"] == r["model"]["family"]]
        base = next((b for b in same if b["model"].get("mode") == "float32"), same[0])

        def speed(stage: str) -> float | None:
            a, b = base["stages"][stage]["p50_ms"], r["stages"][stage]["p50_ms"]
            return round(a / b, 3) if a and b else None

        vs = {"baseline": base["model"]["name"], "baseline_mode": base["model"].get("mode"),
              "speedup_classify_face": speed("classify_face"), "speedup_classify_batch": speed("classify_batch"),
              "speedup_end_to_end": speed("end_to_end"),
              "size_ratio": round(r["model"]["size_bytes"] / base["model"]["size_bytes"], 3)}
        ra, ba = r.get("accuracy"), base.get("accuracy")
        if ra and ba:
            vs["age_mae_delta"] = round(ra["age_mae"] - ba["age_mae"], 4)
            vs["gender_accuracy_delta"] = round(ra["gender_accuracy"] - ba["gender_accuracy"], 4)
        r["vs_baseline"] = vs


def check_targets(runs: list[dict]) -> list[dict]:
    """The issue's targets, evaluated on the 1-thread runs (informative: speed is the benchmark's job)."""
    out = []
    for r in runs:
        if r["threads"] != 1:
            continue
        name, s = r["model"]["name"], r["stages"]

        def add(key: str, value, ok: bool) -> None:
            out.append({"name": key, "run": name, "value": value, "target": TARGETS[key], "ok": bool(ok)})

        if r["model"].get("mode") == "int8":
            add("classify_face_int8_ms", s["classify_face"]["p50_ms"],
                s["classify_face"]["p50_ms"] <= TARGETS["classify_face_int8_ms"])
            vs = r.get("vs_baseline", {})
            sp = vs.get("speedup_classify_face")
            if sp and vs.get("baseline_mode") == "float32":
                add("int8_speedup_vs_float32", sp, sp >= TARGETS["int8_speedup_vs_float32"])
        add("detect_ms", s["detect"]["p50_ms"], s["detect"]["p50_ms"] <= TARGETS["detect_ms"])
        add("end_to_end_fps", s["end_to_end"]["fps"], (s["end_to_end"]["fps"] or 0) >= TARGETS["end_to_end_fps"])
        nm = r["summary"]["non_model_share"]
        add("non_model_share", nm, nm is not None and nm < TARGETS["non_model_share"])
    return out


def run_benchmark(cfg: BenchConfig, log=None) -> dict:
    """Run the benchmark described by ``cfg`` and return the JSON-ready result (see the module docstring).

    ``log`` (a callable taking a string) receives progress lines; None for silence.
    """
    from edgeag.edge.classifier import bundled_model_path
    from edgeag.edge.detector import DEFAULT_DETECTOR, detector_paths

    say = log or (lambda s: None)
    if cfg.frames < 1:
        raise BadInputError("--frames must be at least 1")
    if cfg.warmup < 0:
        raise BadInputError("--warmup must be 0 or more")
    if cfg.faces < 1 or cfg.faces > 32:
        raise BadInputError("--faces must be between 1 and 32")
    if cfg.width < 64 or cfg.height < 64:
        raise BadInputError("frame size must be at least 64x64")
    models = check_models(cfg.models or [bundled_model_path()])
    detectors = detector_paths(cfg.detector)
    if cfg.split_file and not cfg.data:
        raise BadInputError("--split-file needs --data")
    if cfg.split_file and not Path(cfg.split_file).is_file():
        raise BadInputError(f"split file not found: {cfg.split_file}")
    rss_start = rss_mb()

    faces = None
    if cfg.data:
        say(f"reading {cfg.faces} faces of the {cfg.split} split of {Path(cfg.data).name}")
        faces = load_faces(Path(cfg.data), cfg.split_file, cfg.split, cfg.faces)
    n_distinct = int(min(48, cfg.frames + cfg.warmup))
    jpegs, places = make_clip(n_distinct, cfg.width, cfg.height, cfg.jpeg_quality, faces, cfg.seed)

    import cv2

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # decode/crop/draw on the calling thread, as the runtime's frame loop runs them
    runs = []
    try:
        boxes = frame_boxes(jpegs, cfg)
        facts = {m: model_facts(m) for m in models}
        per_face = {}
        for t in cfg.threads:
            say(f"timing the classifier per face ({len(models)} model{'s' if len(models) > 1 else ''}, "
                f"{t} thread{'s' if t > 1 else ''}, interleaved)")
            for m, samples in time_per_face(models, t, jpegs, boxes, cfg).items():
                per_face[m, t] = summarize(samples)
        for m in models:
            for t in cfg.threads:
                say(f"timing the pipeline with {m.name} ({facts[m]['mode']}), {t} thread{'s' if t > 1 else ''}, "
                    f"{cfg.frames} frames")
                r = run_pipeline(m, t, jpegs, boxes, cfg)
                stages = {s: per_face[m, t] if s == "classify_face" else r["stages"][s] for s in STAGES}
                r["summary"] = {**r["summary"], "classify_face_ms": per_face[m, t]["p50_ms"]}
                runs.append({"model": facts[m], **r, "stages": stages})
    finally:
        cv2.setNumThreads(cv2_threads)
    accuracy = {}
    if cfg.data and cfg.accuracy:
        from edgeag.train.evaluate import evaluate_model

        for m in models:
            say(f"evaluating {m.name} on the {cfg.split} split (first run per input size crops the data set once)")
            e = evaluate_model(m, cfg.data, split=cfg.split, split_file=cfg.split_file, progress=log is not None)
            o = e["overall"]
            accuracy[m] = {"split": cfg.split, "n": o["n"], "age_mae": round(o["age_mae"], 4),
                           "gender_accuracy": round(o["gender_accuracy"], 4),
                           "ethnicity_accuracy": round(o["ethnicity_accuracy"], 4)}
    for r in runs:
        r["accuracy"] = accuracy.get(Path(r["model"]["path"]))
    _add_baselines(runs)

    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "edgeag benchmark",
        "edgeag_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "config": {"frames": cfg.frames, "warmup": cfg.warmup, "faces": cfg.faces, "threads": list(cfg.threads),
                   "width": cfg.width, "height": cfg.height, "jpeg_quality": cfg.jpeg_quality,
                   "data": Path(cfg.data).name if cfg.data else None, "split": cfg.split if cfg.data else None,
                   "split_file": Path(cfg.split_file).name if cfg.split_file else None},
        "clip": {"source": "generated+faces" if faces else "generated", "distinct_frames": n_distinct,
                 "jpeg_kb_mean": round(float(np.mean([len(j) for j in jpegs])) / 1024, 1),
                 "face_boxes": "detected where found, else synthetic" if faces else "synthetic (fixed places)",
                 "face_size_px": round(places[0][2]) if places else round(face_grid(cfg.faces, cfg.width,
                                                                                       cfg.height)[0][2]),
                 "pipeline": "edgeag.edge.runner.run_loop, track=True, JSON Lines to the null device, overlay drawn"},
        "detector": {"name": cfg.detector or DEFAULT_DETECTOR, "path": "+".join(p.name for p in detectors),
                     "size_bytes": sum(p.stat().st_size for p in detectors)},
        "stages": dict(STAGES),
        "runs": runs,
        "targets": check_targets(runs),
        "memory": {"rss_start_mb": rss_start, "peak_rss_mb": max([r["summary"]["peak_rss_mb"] for r in runs],
                                                                  default=peak_rss_mb())},
    }


# ----------------------------------------------------------------------------------------------------------
# presentation
# ----------------------------------------------------------------------------------------------------------

def _fmt(v, spec: str = ".2f", none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def _human(n: int | None, unit: str = "") -> str:
    if n is None:
        return "n/a"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{suf}{unit}"
    return f"{n}{unit}"


def print_report(result: dict, console=None) -> None:
    """Rich tables: one per run (stages x percentiles), then one comparison row per run."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    c = result["config"]
    clip = result["clip"]
    for r in result["runs"]:
        m = r["model"]
        f = r["faces"]
        t = Table(title=f"{m['name']} ({m['mode']}, {m['input'][0]}x{m['input'][1]}) - {r['threads']} thread"
                  f"{'s' if r['threads'] > 1 else ''} - {c['width']}x{c['height']}, {c['frames']} frames, "
                  f"{f['mean_per_frame']:g} faces/frame ({f['source']})", title_justify="left")
        for col in ("stage", "p50 ms", "p90 ms", "p99 ms", "FPS"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        for name, s in r["stages"].items():
            style = "bold" if name.startswith("end_to_end") else None
            fps = _fmt(s["fps"], ".0f") + (" faces/s" if name == "classify_face" else "")
            t.add_row(name, _fmt(s["p50_ms"], ".3f"), _fmt(s["p90_ms"], ".3f"), _fmt(s["p99_ms"], ".3f"), fps,
                      style=style)
        console.print(t)
    cmp = Table(title="comparison", title_justify="left")
    cols = ["model", "mode", "thr", "size", "params", "MACs/face", "face ms", f"batch/{c['faces']} ms",
            "detect ms", "e2e ms", "FPS", "non-model", "speed-up", "peak MB"]
    has_acc = any(r.get("accuracy") for r in result["runs"])
    if has_acc:
        cols += ["age MAE", "gender"]
    for col in cols:
        cmp.add_column(col, justify="left" if col in ("model", "mode") else "right")
    for r in result["runs"]:
        m, s, su, vs = r["model"], r["stages"], r["summary"], r.get("vs_baseline", {})
        row = [m["name"], str(m["mode"]), str(r["threads"]), f"{m['size_bytes'] / 1024:.0f} KB", _human(m["params"]),
               _human(m["macs"]), _fmt(s["classify_face"]["p50_ms"], ".3f"), _fmt(s["classify_batch"]["p50_ms"], ".3f"),
               _fmt(s["detect"]["p50_ms"], ".2f"), _fmt(s["end_to_end"]["p50_ms"], ".2f"),
               _fmt(s["end_to_end"]["fps"], ".0f"),
               "n/a" if su["non_model_share"] is None else f"{100 * su['non_model_share']:.0f}%",
               "base" if vs.get("baseline") == m["name"]
               else f"{_fmt(vs.get('speedup_classify_face'), '.2f')}x vs {vs.get('baseline_mode')}",
               _fmt(su["peak_rss_mb"], ".0f")]
        if has_acc:
            a = r.get("accuracy") or {}
            row += [_fmt(a.get("age_mae"), ".2f"),
                    "n/a" if a.get("gender_accuracy") is None else f"{100 * a['gender_accuracy']:.1f}%"]
        cmp.add_row(*row)
    console.print(cmp)
    mach = result["machine"]
    cpu = mach.get("cpu") or {}
    console.print(f"machine: {mach['processor']} ({mach['machine']}, {mach['cpu_count']} CPUs, load "
                  f"{mach['load_average']}); CPU features: {cpu.get('summary', 'unknown')}; LiteRT "
                  f"{mach['versions'].get('litert')}, mediapipe {mach['versions'].get('mediapipe')}", highlight=False)
    console.print(f"clip: {clip['source']}, {clip['distinct_frames']} distinct JPEG frames of "
                  f"{clip['jpeg_kb_mean']} KB; face boxes: {clip['face_boxes']}; loop: {clip['pipeline']}. "
                  f"speed-up: classifier per face against the float32 variant of the same model at the same threads. "
                  f"Peak RSS of the process: {result['memory']['peak_rss_mb']} MB.", highlight=False)
    if result["targets"]:
        parts = [f"{'[green]ok[/]' if t['ok'] else '[red]miss[/]'} {t['name']} {t['value']} (target "
                 f"{'>=' if t['name'] in ('int8_speedup_vs_float32', 'end_to_end_fps') else '<='} {t['target']}, "
                 f"{t['run']})" for t in result["targets"]]
        console.print("targets (1 thread): " + "; ".join(parts))
    console.print("To share these figures (e.g. from a Raspberry Pi): add --json bench.json and send bench.json; it "
                  "holds the machine, CPU features, versions and every figure above.", highlight=False)


def plot(result: dict, out_png: str | Path) -> Path:
    """A PNG: per-stage p50 latency (bars, p90 whiskers) per run, and end-to-end FPS per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    stages = [s for s in STAGES if s not in ("end_to_end", "end_to_end_drawn")]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(stages))
    labels = [f"{r['model']['name']} ({r['model']['mode']}, {r['threads']}t)" for r in runs]
    for i, r in enumerate(runs):
        p50 = [r["stages"][s]["p50_ms"] or 0 for s in stages]
        p90 = [r["stages"][s]["p90_ms"] or 0 for s in stages]
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, p50, width, label=labels[i],
               yerr=[np.zeros(len(p50)), np.maximum(0, np.subtract(p90, p50))], capsize=2)
    ax.set_xticks(x, stages, rotation=20)
    ax.set_ylabel("ms (p50, whisker to p90)")
    c = result["config"]
    ax.set_title(f"per-stage latency, {c['width']}x{c['height']}, {c['faces']} faces/frame")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fps = [r["stages"]["end_to_end"]["fps"] or 0 for r in runs]
    ax2.barh(np.arange(len(runs)), fps, color=[f"C{i}" for i in range(len(runs))])
    ax2.set_yticks(np.arange(len(runs)), labels, fontsize=8)
    ax2.axvline(TARGETS["end_to_end_fps"], color="k", ls="--", lw=1, label="target")
    for i, r in enumerate(runs):
        a = r.get("accuracy")
        if a:
            ax2.text(fps[i], i, f" MAE {a['age_mae']:.2f}, {100 * a['gender_accuracy']:.1f}%", va="center",
                     fontsize=8)
    ax2.set_xlabel("end-to-end FPS (headless)")
    ax2.invert_yaxis()
    ax2.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_json(result: dict, out: str | Path) -> Path:
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2) + "\n")
    return p


if __name__ == "__main__":  # `python benchmarks/bench.py ...` is `edgeag benchmark ...`
    import typer

    from edgeag.cli_benchmark import benchmark

    typer.run(benchmark)
