"""Model files: metadata round trip, the bundled model, and bad model files."""

from __future__ import annotations

import numpy as np
import pytest

from edgeag.edge.classifier import AgeGenderClassifier, bundled_model_path
from edgeag.edge.metadata import read_metadata, write_metadata
from edgeag.errors import EdgeagError, ModelError


def test_bundled_model_has_metadata_and_runs():
    meta = read_metadata(bundled_model_path())
    for key in ("crop", "outputs", "labels", "mode", "edgeag_version", "training"):
        assert key in meta
    assert meta["mode"] == "int8" and meta["weight_quantization"] in ("per-tensor", "per-channel")
    assert bundled_model_path().stat().st_size <= 1_000_000  # the size floor (the file is 436 KB)
    clf = AgeGenderClassifier()
    s = clf.crop_spec
    assert clf.input_dtype == np.uint8
    x = np.random.default_rng(0).integers(0, 255, (3, s.size, s.size, s.channels), dtype=np.uint8)
    p = clf.predict(x)
    assert p["age"].shape == (3,) and p["p_female"].shape == (3,) and p["ethnicity"].shape == (3, 5)
    assert np.isfinite(p["age"]).all() and ((p["p_female"] >= 0) & (p["p_female"] <= 1)).all()
    assert np.allclose(p["ethnicity"].sum(1), 1, atol=0.05)
    # batching is exact: one call with 3 faces equals 3 calls with one
    single = np.array([clf.predict(x[i:i + 1])["age"][0] for i in range(3)])
    assert np.allclose(single, p["age"])


def test_output_range_bounds_what_the_int8_heads_can_say():
    clf = AgeGenderClassifier()
    low, high = clf.output_range("age")
    # Any age UTKFace has, whatever the calibration crops reached (quantize/output_range.py).
    assert low == pytest.approx(0.0, abs=1e-3) and 116.0 <= high < 117.0
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (16, clf.crop_spec.size, clf.crop_spec.size, clf.crop_spec.channels), np.uint8)
    age = clf.predict(crops)["age"]
    assert np.all(age <= high + 1e-4) and np.all(age >= low - 1e-4)
    for head in ("gender", "ethnicity"):  # a woman can be as sure as a man (P(female) once ended at 0.974)
        assert clf.output_range(head) == pytest.approx((0.0, 1.0), abs=1e-4)


def test_fixing_the_age_range_keeps_the_weights_and_rejects_other_models(tmp_path):
    from edgeag.edge.detector import bundled_detector_path
    from edgeag.quantize.output_range import fix_output_ranges

    again = tmp_path / "again.tflite"
    again.write_bytes(fix_output_ranges(bundled_model_path().read_bytes(), (0.0, 100.0)))
    a, b = AgeGenderClassifier(), AgeGenderClassifier(again)
    assert 100.0 <= b.output_range("age")[1] < 101.0  # the flip's add is one step wider (no rounding of ties up)
    crops = np.random.default_rng(1).integers(0, 256, (8, a.crop_spec.size, a.crop_spec.size, 3), np.uint8)
    pa, pb = a.predict(crops), b.predict(crops)
    assert np.abs(pa["age"] - pb["age"]).max() < 1.0  # a step of 0.39-0.45 years on either side
    assert np.array_equal(pa["p_female"], pb["p_female"]) and np.array_equal(pa["ethnicity"], pb["ethnicity"])
    with pytest.raises(EdgeagError, match="no age output"):
        fix_output_ranges(bundled_detector_path().read_bytes())


def test_metadata_round_trip_replaces_older_entry():
    blob = bundled_model_path().read_bytes()
    meta = read_metadata(blob)
    again = write_metadata(blob, {**meta, "note": "x"})
    assert read_metadata(again)["note"] == "x"
    assert read_metadata(write_metadata(again, meta)).get("note") is None


def test_bad_model_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        AgeGenderClassifier(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="junk.tflite"):
        AgeGenderClassifier(junk)
    from edgeag.edge.detector import bundled_detector_path

    with pytest.raises(ModelError, match="no edgeag metadata"):  # a real TFLite model, but not ours
        AgeGenderClassifier(bundled_detector_path())


def test_gender_threshold_in_the_metadata_moves_the_decision_point(tmp_path):
    from edgeag.quantize.operating_point import set_gender_threshold

    base = AgeGenderClassifier()
    s = base.crop_spec
    x = np.random.default_rng(1).integers(0, 256, (32, s.size, s.size, s.channels), dtype=np.uint8)
    raw = base.predict(x)
    for t in (0.3, 0.7):
        path = tmp_path / f"t{t}.tflite"
        path.write_bytes(bundled_model_path().read_bytes())
        set_gender_threshold(path, t)
        clf = AgeGenderClassifier(path)
        assert clf.gender_threshold == t and read_metadata(path)["gender_threshold"] == t
        got = clf.predict(x)
        assert np.array_equal(got["age"], raw["age"]) and np.array_equal(got["ethnicity"], raw["ethnicity"])
        clear = np.abs(raw["p_female"] - t) > 0.01  # int8 outputs: leave the knife edge out
        assert np.array_equal((got["p_female"] >= 0.5)[clear], (raw["p_female"] >= t)[clear])
        assert ((got["p_female"] > 0) & (got["p_female"] < 1)).all()


def test_choose_gender_threshold_prefers_half_and_finds_a_shift():
    from edgeag.quantize.operating_point import accuracy_by_sex, choose_gender_threshold

    rng = np.random.default_rng(0)
    g = rng.integers(0, 2, 4000)
    p = np.clip(np.where(g == 1, 0.75, 0.25) + rng.normal(0, 0.05, 4000), 0.01, 0.99)
    assert choose_gender_threshold(p, g)[0] == 0.5  # separable around 0.5: 0.5 ties with its neighbours
    biased = np.clip(np.where(g == 1, 0.55, 0.05) + rng.normal(0, 0.1, 4000), 0.001, 0.999)  # leans male
    t, acc, acc_half = choose_gender_threshold(biased, g)
    assert abs(t - 0.3) <= 0.05 and acc > acc_half
    by_sex_half, by_sex_t = accuracy_by_sex(biased, g, 0.5), accuracy_by_sex(biased, g, t)
    assert by_sex_half["male"] > 0.99 and by_sex_t["female"] > by_sex_half["female"]


def test_a_gender_threshold_outside_0_1_is_a_model_error(tmp_path):
    blob = bundled_model_path().read_bytes()
    meta = read_metadata(blob)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(write_metadata(blob, {**meta, "gender_threshold": 1.5}))
    with pytest.raises(ModelError, match="gender_threshold"):
        AgeGenderClassifier(bad)
