"""`edgeag benchmark` and the architecture grid: JSON schema, sane statistics, clean failures.

No wall-clock assertions: speed is what the benchmark measures, not what tests check.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SPLIT_FILE, needs_data, utk_members, write_tar

TOP_KEYS = {"schema_version", "tool", "edgeag_version", "created", "machine", "config", "clip", "detector", "stages",
            "runs", "targets", "memory"}
RUN_KEYS = {"model", "threads", "faces", "stages", "summary", "accuracy", "vs_baseline"}
MODEL_KEYS = {"path", "name", "mode", "size_bytes", "params", "params_source", "macs", "macs_source", "input",
              "architecture", "family"}
STAGE_KEYS = {"decode", "detect", "crop", "classify_face", "classify_batch", "track", "output", "draw", "end_to_end",
              "end_to_end_drawn"}
STAT_KEYS = {"n", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "fps"}
SUMMARY_KEYS = {"fps", "fps_drawn", "classify_face_ms", "classify_batch_per_face_ms", "non_model_share", "peak_rss_mb"}
FACES_KEYS = {"source", "detected_frames", "synthetic_frames", "mean_per_frame"}
VS_KEYS = {"baseline", "baseline_mode", "speedup_classify_face", "speedup_classify_batch", "speedup_end_to_end",
           "size_ratio"}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "edgeag.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def _check_stats(stages: dict, frames: int, faces: int) -> None:
    assert set(stages) == STAGE_KEYS
    for name, s in stages.items():
        assert set(s) == STAT_KEYS, name
        assert s["n"] == (frames * faces if name == "classify_face" else frames), name
        assert s["p50_ms"] > 0 and s["mean_ms"] > 0, name
        assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"], name
        assert s["fps"] == pytest.approx(1000 / s["p50_ms"], rel=0.01, abs=0.05), name  # fps is rounded to 0.1
    # The headless pipeline is at least its two networks; drawing only adds.
    assert stages["end_to_end"]["mean_ms"] >= stages["detect"]["mean_ms"]
    assert stages["end_to_end_drawn"]["mean_ms"] >= stages["end_to_end"]["mean_ms"]


def _check_run(r: dict, frames: int, faces: int) -> None:
    assert set(r) == RUN_KEYS
    assert set(r["model"]) == MODEL_KEYS
    assert set(r["faces"]) == FACES_KEYS
    assert set(r["summary"]) == SUMMARY_KEYS
    assert VS_KEYS <= set(r["vs_baseline"])
    _check_stats(r["stages"], frames, faces)
    m = r["model"]
    assert m["size_bytes"] == Path(m["path"]).stat().st_size
    assert m["params"] > 0 and m["macs"] > 0
    assert m["input"][0] == m["input"][1] > 0 and m["input"][2] in (1, 3)
    f = r["faces"]
    assert f["detected_frames"] + f["synthetic_frames"] == frames
    assert 0 < f["mean_per_frame"] <= faces
    s = r["summary"]
    assert 0 <= s["non_model_share"] < 1
    assert s["peak_rss_mb"] > 0
    assert s["classify_face_ms"] == r["stages"]["classify_face"]["p50_ms"]


def test_cli_bundled_model_json_and_plot(tmp_path):
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    p = _cli("benchmark", "--frames", "5", "--warmup", "2", "--faces", "2", "--json", str(out), "--plot", str(png))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "end_to_end" in p.stdout and "comparison" in p.stdout  # the Rich tables
    res = json.loads(out.read_text())
    assert set(res) == TOP_KEYS
    assert res["schema_version"] == 1
    assert set(res["stages"]) == STAGE_KEYS
    assert res["config"]["frames"] == 5 and res["config"]["faces"] == 2 and res["config"]["threads"] == [1]
    assert res["clip"]["source"] == "generated"
    assert set(res["machine"]["cpu"]) == {"arch", "features", "int8_dot_product", "summary"}
    assert "CPU features:" in p.stdout and "--json bench.json" in p.stdout
    assert len(res["runs"]) == 1
    r = res["runs"][0]
    _check_run(r, frames=5, faces=2)
    assert r["model"]["name"] == "edgeag_default.tflite"
    assert r["model"]["macs_source"] in ("metadata", "graph")
    # A generated clip has no faces: the per-face stages ran on the K synthetic boxes, and the output says so.
    assert r["faces"]["source"] == "synthetic" and r["faces"]["mean_per_frame"] == 2
    assert r["vs_baseline"]["speedup_classify_face"] == 1.0  # a lone model is its own baseline
    assert r["accuracy"] is None
    assert {t["name"] for t in res["targets"]} >= {"detect_ms", "end_to_end_fps", "non_model_share"}
    assert res["memory"]["peak_rss_mb"] >= res["memory"]["rss_start_mb"] > 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_to_stdout(tmp_path):
    p = _cli("benchmark", "--frames", "3", "--warmup", "1", "--faces", "1", "--threads", "1", "--threads", "2", "--json", "-")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)  # stdout is pure JSON; the tables went to stderr
    assert [r["threads"] for r in res["runs"]] == [1, 2]
    for r in res["runs"]:
        _check_run(r, frames=3, faces=1)


@pytest.mark.parametrize("args, message", [
    (["--model", "no/such/model.tflite"], "model file not found"),
    (["--threads", "0"], "--threads"),
    (["--frames", "0"], "--frames"),
    (["--faces", "0"], "--faces"),
    (["--data", "no/such/data.tar"], "does not exist"),
])
def test_cli_bad_input_fails_cleanly(args, message):
    p = _cli("benchmark", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout


def test_cli_rejects_files_that_are_not_models(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    p = _cli("benchmark", "--model", str(junk))
    assert p.returncode == 2 and "not a TFLite model" in p.stderr and "Traceback" not in p.stderr
    p = _cli("benchmark", "--model", str(tmp_path))
    assert p.returncode == 2 and "folder" in p.stderr and "Traceback" not in p.stderr


# -- variants of one model -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_variants(tmp_path_factory) -> dict[str, Path]:
    """A tiny untrained model written as `edgeag train` writes it, converted to float32 and int8.

    float32 goes through `edgeag.quantize.convert.quantize`; int8 through the same `convert` and metadata,
    calibrated on random crops (quantize would need the data set; timing does not care).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgeag.edge.crop import CropSpec
    from edgeag.edge.metadata import write_metadata
    from edgeag.quantize.convert import build_metadata, convert, quantize
    from edgeag.train.model import ModelConfig, build_model, count_macs

    d = tmp_path_factory.mktemp("tiny_model")
    cfg = ModelConfig(arch="mobilenet", input_size=32, width=0.25, stem_stride=1)
    model = build_model(cfg)
    model.save(d / "model.keras")
    config = {
        "edgeag_version": "test", "model": cfg.to_dict(), "crop": CropSpec(size=32, channels=3).to_dict(),
        "train": {"seed": 0},
        "input": {"dtype": "uint8", "range": [0, 255], "normalisation": "inside the model: x / 127.5 - 1",
                  "color": "RGB"},
        "heads": {"age": "years (regression)", "gender": "P(female)", "ethnicity": "softmax over labels"},
        "labels": {"gender": ["male", "female"], "ethnicity": ["White", "Black", "Asian", "Indian", "Others"]},
        "data": {"path": "none", "split_file": None}, "params": model.count_params(), "macs": count_macs(model),
        "created": "2026-01-01T00:00:00+00:00",
    }
    (d / "config.json").write_text(json.dumps(config))
    out = {"float32": d / "tiny_float32.tflite", "int8": d / "tiny_int8.tflite"}
    quantize(d, out["float32"], mode="float32", progress=False)
    rep = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    out["int8"].write_bytes(write_metadata(convert(model, "int8", rep), build_metadata(config, "int8")))
    return out


@pytest.mark.slow
def test_variants_side_by_side_with_ratios(tiny_variants, tmp_path):
    from edgeag.benchmarks.bench import BenchConfig, run_benchmark, write_json

    cfg = BenchConfig(models=[tiny_variants["int8"], tiny_variants["float32"]], frames=4, warmup=1, faces=3)
    res = run_benchmark(cfg)
    assert [r["model"]["mode"] for r in res["runs"]] == ["int8", "float32"]
    for r in res["runs"]:
        _check_run(r, frames=4, faces=3)
    i8, f32 = res["runs"]
    assert i8["model"]["family"] == f32["model"]["family"]  # variants of one trained model
    # Ratios are against the float32 variant even when it is not listed first.
    assert f32["vs_baseline"]["baseline_mode"] == "float32" and f32["vs_baseline"]["speedup_classify_face"] == 1.0
    assert i8["vs_baseline"]["baseline"] == "tiny_float32.tflite"
    assert i8["vs_baseline"]["speedup_classify_face"] == pytest.approx(
        f32["stages"]["classify_face"]["p50_ms"] / i8["stages"]["classify_face"]["p50_ms"], rel=0.01)
    assert i8["vs_baseline"]["size_ratio"] < 0.8  # int8 weights are a quarter of float32 (tiny model: overheads)
    names = {t["name"] for t in res["targets"] if t["run"] == "tiny_int8.tflite"}
    assert {"classify_face_int8_ms", "int8_speedup_vs_float32"} <= names
    # The JSON file is what `--json` writes, and it round-trips.
    assert json.loads(write_json(res, tmp_path / "r.json").read_text())["runs"][0]["model"]["mode"] == "int8"


@pytest.mark.slow
def test_graph_stats_match_the_keras_count(tiny_variants):
    from edgeag.benchmarks.bench import model_facts, tflite_graph_stats
    from edgeag.edge.metadata import read_metadata

    for path in tiny_variants.values():
        meta = read_metadata(path)
        g = tflite_graph_stats(path.read_bytes())
        assert g["macs"] == meta["macs"]  # conv, depthwise and dense MACs: same count from either side
        assert 0.8 * meta["params"] < g["params"] <= 1.05 * meta["params"]  # batch norms are folded away
        assert model_facts(path)["macs_source"] == "metadata"


def test_summarize_statistics():
    from edgeag.benchmarks.bench import summarize

    s = summarize(list(range(1, 101)))
    assert s["n"] == 100 and s["p50_ms"] == 50.5 and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["fps"] == pytest.approx(1000 / 50.5, abs=0.1)
    assert summarize([])["p50_ms"] is None


def test_synthetic_boxes_are_inside_the_frame_and_distinct():
    from edgeag.benchmarks.bench import synthetic_detections

    for k in (1, 3, 8, 20):
        dets = synthetic_detections(k, 640, 480)
        assert len(dets) == k
        for d in dets:
            x, y, w, h = d.box
            assert x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480 and w > 20
        boxes = [tuple(round(v) for v in d.box) for d in dets]
        assert len(set(boxes)) == k


@needs_data
def test_real_faces_pasted_into_the_clip_and_accuracy(tmp_path):
    """With --data the whole pipeline runs on detected real faces and each model gets test-split accuracy.

    The accuracy bounds need the trained default model (the 1-epoch placeholder fails them)."""
    from edgeag.benchmarks.bench import BenchConfig, run_benchmark

    # The tar is sorted by name (age first): take every 59th test face for a spread of ages.
    tar = write_tar(tmp_path / "faces.tar", utk_members(2400, split="test")[::59][:40])
    cfg = BenchConfig(frames=5, warmup=2, faces=3, data=tar, split_file=SPLIT_FILE, split="test")
    res = run_benchmark(cfg)
    assert res["clip"]["source"] == "generated+faces"
    r = res["runs"][0]
    _check_run(r, frames=5, faces=3)
    assert r["faces"]["detected_frames"] >= 4  # BlazeFace finds the pasted faces
    a = r["accuracy"]
    assert a["n"] == 40 and a["split"] == "test"
    assert math.isfinite(a["age_mae"]) and 0 <= a["gender_accuracy"] <= 1
    assert a["age_mae"] < 12 and a["gender_accuracy"] >= 0.7  # a trained model, 40 faces: generous bounds


def test_model_size_breakdown_adds_up_and_rejects_non_models(tmp_path):
    """benchmarks/model_size.py accounts for every byte of the bundled file and fails cleanly on junk."""
    from edgeag.benchmarks.model_size import size_breakdown
    from edgeag.edge.classifier import bundled_model_path

    b = size_breakdown(bundled_model_path())
    parts = b["constants"] + b["quantization_params"] + b["metadata"] + b["graph_and_other"]
    assert parts == b["file"] == bundled_model_path().stat().st_size
    assert b["constants"] > b["quantization_params"] > 0 and b["graph_and_other"] > 0
    assert b["scales"] == b["zero_points"] > 0  # int8: one of each per tensor (or per output channel)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 100)
    r = subprocess.run([sys.executable, "-m", "edgeag.benchmarks.model_size", str(junk)], capture_output=True, text=True)
    assert r.returncode == 2 and "not a readable .tflite" in r.stderr and "Traceback" not in r.stderr


def test_analyzer_takes_built_detector_and_classifier():
    """The benchmark times the runtime through FaceAnalyzer(detector=..., classifier=...), not by patching it."""
    from edgeag.benchmarks.bench import synthetic_detections
    from edgeag.benchmarks.bench_timing import TimedClassifier, TimedDetector
    from edgeag.edge.analyzer import FaceAnalyzer
    from edgeag.edge.classifier import AgeGenderClassifier

    class NoFaces:
        def detect(self, rgb):
            return []

        def close(self):
            pass

    boxes = [(synthetic_detections(2, 320, 240), False)]
    det, clf = TimedDetector(NoFaces(), boxes), TimedClassifier(AgeGenderClassifier(threads=1))
    with FaceAnalyzer(detector=det, classifier=clf) as fa:
        faces = fa.analyze(np.zeros((240, 320, 3), np.uint8))
    assert fa.detector is det and fa.classifier is clf
    assert len(faces) == 2 and all(f.age is not None for f in faces)  # the synthetic boxes, classified
    assert det.calls == 1 and not det.found and clf.last_ms > 0
    with FaceAnalyzer(detector="short") as fa:  # a detector name is still the option
        assert fa.options.detector == "short"


def test_scripts_leave_errors_one_way(capsys):
    from edgeag.benchmarks.common import exits_cleanly
    from edgeag.errors import BadInputError

    @exits_cleanly
    def main():
        raise BadInputError("--faces must be positive")

    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and capsys.readouterr().err == "error: --faces must be positive\n"


def test_face_size_stream_counts_frames_to_first_detection_and_after():
    from edgeag.benchmarks.face_size_stream import summarize

    found = [[False, False, True, True], [True, False, True, True], [False] * 4]  # one face never found
    r = summarize({"found": {48: found}, "false": [0, 1], "frame_cpu_ms": [1.0], "detect_ms": [2.0, 4.0]})
    row = r["by_size"]["48"]
    assert row["face_frames"] == 12 and row["found_per_frame"] == round(5 / 12, 4)
    assert row["faces_ever_found"] == round(2 / 3, 4) and row["frames_to_first_p50"] == 1.0
    assert row["found_per_frame_after_first"] == round((1.0 + 0.75) / 2, 4)
    assert r["false_detections_per_free_frame"] == 0.5 and r["detect_ms_mean"] == 3.0
