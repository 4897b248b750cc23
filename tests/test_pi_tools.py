"""benchmarks/pi: the comparison behind verify.sh and the platform tags of the CI wheel check (no network)."""

import importlib.util
from pathlib import Path

PI = Path(__file__).resolve().parents[1] / "benchmarks" / "pi"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PI / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _face(box, age, gender):
    return {"box": box, "age": age, "gender": gender}


def test_compare_accepts_small_age_differences_only():
    c = _load("compare")
    ref = {"a.png": {"file": "a.png", "faces": [_face([10, 10, 100, 100], 30.0, "male")]}}
    same = {"a.png": {"file": "a.png", "faces": [_face([11, 10, 100, 100], 31.5, "male")]}}
    problems, counts = c.compare(ref, same, age_tol=2.0, min_iou=0.8)
    assert problems == [] and counts["faces"] == 1 and counts["max_age_diff"] == 1.5
    older = {"a.png": {"file": "a.png", "faces": [_face([10, 10, 100, 100], 32.5, "male")]}}
    assert "age" in c.compare(ref, older, 2.0, 0.8)[0][0]


def test_compare_flags_gender_missing_faces_and_records():
    c = _load("compare")
    ref = {0: {"frame": 0, "faces": [_face([10, 10, 100, 100], 30.0, "male")]}}
    assert "gender" in c.compare(ref, {0: {"frame": 0, "faces": [_face([10, 10, 100, 100], 30, "female")]}},
                                 2.0, 0.8)[0][0]
    assert "faces" in c.compare(ref, {0: {"frame": 0, "faces": []}}, 2.0, 0.8)[0][0]
    assert "no match" in c.compare(ref, {0: {"frame": 0, "faces": [_face([300, 300, 100, 100], 30, "male")]}},
                                   2.0, 0.8)[0][0]
    assert "records differ" in c.compare(ref, {}, 2.0, 0.8)[0][0]


def test_wheel_check_reads_the_runtime_requirements_and_bookworm_tags():
    w = _load("check_wheels")
    reqs = w.runtime_requirements()
    assert any(r.startswith("ai-edge-litert") for r in reqs) and not any("tensorflow" in r for r in reqs)
    tags = w.aarch64_platforms(36)
    assert tags[0] == "manylinux2014_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_28_aarch64" in tags and tags[-1] == "manylinux_2_36_aarch64"
