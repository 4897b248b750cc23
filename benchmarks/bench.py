"""``edgeag benchmark``: per-stage latency, FPS, size, memory (and accuracy) of the real run pipeline.

The timed loop is the product's own: ``edgeag.edge.runner.run_loop`` (what ``edgeag run`` runs) with
``FaceAnalyzer.track`` (BlazeFace via ``FaceDetector``, the shared ``crop_face``, ``AgeGenderClassifier`` on
LiteRT, the tracker), the JSON record, a JSON Lines sink writing to the null device and the overlay
(``sinks.annotate``). Only the frames are special: a 640x480 clip generated in memory and JPEG-encoded once at
setup, decoded by a ``FrameSource`` in the loop, so decoding is real work and no camera or data is needed.
Nothing is patched: stages are timed by wrappers handed to ``FaceAnalyzer(detector=..., classifier=...)``,
each result's ``timings_ms`` and a last sink (``bench_timing``).

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
    memory    {rss_start_mb, peak_rss_mb}

``family`` groups variants of one trained model (same architecture, crop and training date): ``vs_baseline``
compares each run with the float32 variant of its family at the same thread count (else the family's first
file), so a bare int8 model is its own baseline (speed-up 1.0).

Modules: ``bench_config`` (configuration, stages, targets), ``bench_clip`` (the generated clip and its
source), ``bench_timing`` (timing wrappers, the frame loop, statistics, memory), ``bench_models`` (model
facts), ``bench_report`` (tables, chart). This module runs them and keeps the names ``edgeag benchmark`` uses.

``fps`` of a stage is 1000 / p50_ms (for ``classify_face`` it is faces per second). ``non_model_share`` is
the median over frames of the fraction of the headless frame time spent outside the two networks
(detector, classifier call): decoding, cropping, tracking, records, JSON and Python glue.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeag._version import __version__
from edgeag.benchmarks.bench_clip import face_grid, frame_boxes, load_faces, make_clip, synthetic_detections
from edgeag.benchmarks.bench_config import SCHEMA_VERSION, STAGES, TARGETS, BenchConfig
from edgeag.benchmarks.bench_models import check_models, model_facts, tflite_graph_stats
from edgeag.benchmarks.bench_report import plot, print_report
from edgeag.benchmarks.bench_timing import peak_rss_mb, rss_mb, run_pipeline, summarize, time_per_face
from edgeag.benchmarks.common import machine_facts, write_json
from edgeag.errors import BadInputError

__all__ = ["BenchConfig", "SCHEMA_VERSION", "STAGES", "TARGETS", "check_models", "check_targets", "face_grid",
           "make_clip", "model_facts", "parse_threads", "plot", "print_report", "run_benchmark", "summarize",
           "synthetic_detections", "tflite_graph_stats", "write_json"]


def parse_threads(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; BadInputError for anything else."""
    try:
        vals = [int(t) for t in str(text).replace(" ", "").split(",") if t]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise BadInputError(f"--threads must be a comma-separated list of positive integers, got {text!r}")
    return list(dict.fromkeys(vals))


def check_config(cfg: BenchConfig) -> None:
    """BadInputError (exit 2) for settings the benchmark cannot run with."""
    if cfg.frames < 1:
        raise BadInputError("--frames must be at least 1")
    if cfg.warmup < 0:
        raise BadInputError("--warmup must be 0 or more")
    if cfg.faces < 1 or cfg.faces > 32:
        raise BadInputError("--faces must be between 1 and 32")
    if cfg.width < 64 or cfg.height < 64:
        raise BadInputError("frame size must be at least 64x64")
    if cfg.split_file and not cfg.data:
        raise BadInputError("--split-file needs --data")
    if cfg.split_file and not Path(cfg.split_file).is_file():
        raise BadInputError(f"split file not found: {cfg.split_file}")


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def _time_runs(models: list[Path], jpegs: list[bytes], cfg: BenchConfig, say) -> list[dict]:
    """Every model at every thread count: the classifier per face (models interleaved), then the frame loop."""
    import cv2

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # decode/crop/draw on the calling thread, as the runtime's frame loop runs them
    runs = []
    try:
        boxes = frame_boxes(jpegs, cfg)
        facts = {m: model_facts(m) for m in models}
        per_face = {}
        for t in cfg.threads:
            say(f"timing the classifier per face ({_plural(len(models), 'model')}, {_plural(t, 'thread')}, "
                f"interleaved)")
            for m, samples in time_per_face(models, t, jpegs, boxes, cfg).items():
                per_face[m, t] = summarize(samples)
        for m in models:
            for t in cfg.threads:
                say(f"timing the pipeline with {m.name} ({facts[m]['mode']}), {_plural(t, 'thread')}, "
                    f"{cfg.frames} frames")
                r = run_pipeline(m, t, jpegs, boxes, cfg)
                stages = {s: per_face[m, t] if s == "classify_face" else r["stages"][s] for s in STAGES}
                r["summary"] = {**r["summary"], "classify_face_ms": per_face[m, t]["p50_ms"]}
                runs.append({"model": facts[m], **r, "stages": stages})
    finally:
        cv2.setNumThreads(cv2_threads)
    return runs


def _accuracy(models: list[Path], cfg: BenchConfig, say, progress: bool) -> dict[Path, dict]:
    """Each model's age MAE, gender and ethnicity accuracy on the split (with ``--data``), by model path."""
    if not (cfg.data and cfg.accuracy):
        return {}
    from edgeag.train.evaluate import evaluate_model

    out = {}
    for m in models:
        say(f"evaluating {m.name} on the {cfg.split} split (first run per input size crops the data set once)")
        o = evaluate_model(m, cfg.data, split=cfg.split, split_file=cfg.split_file, progress=progress)["overall"]
        out[m] = {"split": cfg.split, "n": o["n"], "age_mae": round(o["age_mae"], 4),
                  "gender_accuracy": round(o["gender_accuracy"], 4),
                  "ethnicity_accuracy": round(o["ethnicity_accuracy"], 4)}
    return out


def _config_record(cfg: BenchConfig) -> dict:
    return {"frames": cfg.frames, "warmup": cfg.warmup, "faces": cfg.faces, "threads": list(cfg.threads),
            "width": cfg.width, "height": cfg.height, "jpeg_quality": cfg.jpeg_quality,
            "data": Path(cfg.data).name if cfg.data else None, "split": cfg.split if cfg.data else None,
            "split_file": Path(cfg.split_file).name if cfg.split_file else None}


def _clip_record(cfg: BenchConfig, jpegs: list[bytes], places: list, with_faces: bool) -> dict:
    side = places[0][2] if places else face_grid(cfg.faces, cfg.width, cfg.height)[0][2]
    return {"source": "generated+faces" if with_faces else "generated", "distinct_frames": len(jpegs),
            "jpeg_kb_mean": round(float(np.mean([len(j) for j in jpegs])) / 1024, 1),
            "face_boxes": "detected where found, else synthetic" if with_faces else "synthetic (fixed places)",
            "face_size_px": round(side),
            "pipeline": "edgeag.edge.runner.run_loop, track=True, JSON Lines to the null device, overlay drawn"}


def _detector_record(cfg: BenchConfig) -> dict:
    from edgeag.edge.detector import DEFAULT_DETECTOR, detector_paths

    paths = detector_paths(cfg.detector)
    return {"name": cfg.detector or DEFAULT_DETECTOR, "path": "+".join(p.name for p in paths),
            "size_bytes": sum(p.stat().st_size for p in paths)}


def run_benchmark(cfg: BenchConfig, log=None) -> dict:
    """Run the benchmark described by ``cfg`` and return the JSON-ready result (see the module docstring).

    ``log`` (a callable taking a string) receives progress lines; None for silence.
    """
    from edgeag.edge.classifier import bundled_model_path

    say = log or (lambda s: None)
    check_config(cfg)
    models = check_models(cfg.models or [bundled_model_path()])
    detector = _detector_record(cfg)  # an unknown --detector fails here, before any timing
    rss_start = rss_mb()
    faces = None
    if cfg.data:
        say(f"reading {cfg.faces} faces of the {cfg.split} split of {Path(cfg.data).name}")
        faces = load_faces(Path(cfg.data), cfg.split_file, cfg.split, cfg.faces)
    jpegs, places = make_clip(int(min(48, cfg.frames + cfg.warmup)), cfg.width, cfg.height, cfg.jpeg_quality,
                              faces, cfg.seed)
    runs = _time_runs(models, jpegs, cfg, say)
    accuracy = _accuracy(models, cfg, say, progress=log is not None)
    for r in runs:
        r["accuracy"] = accuracy.get(Path(r["model"]["path"]))
    _add_baselines(runs)
    return {
        "schema_version": SCHEMA_VERSION, "tool": "edgeag benchmark", "edgeag_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_facts(),
        "config": _config_record(cfg), "clip": _clip_record(cfg, jpegs, places, bool(faces)), "detector": detector,
        "stages": dict(STAGES), "runs": runs, "targets": check_targets(runs),
        "memory": {"rss_start_mb": rss_start, "peak_rss_mb": max([r["summary"]["peak_rss_mb"] for r in runs],
                                                                  default=peak_rss_mb())},
    }
