"""Model files: metadata round trip, the bundled model, and bad model files."""

from __future__ import annotations

import numpy as np
import pytest

from edgeag.edge.classifier import AgeGenderClassifier, bundled_model_path
from edgeag.edge.metadata import read_metadata, write_metadata
from edgeag.errors import ModelError


def test_bundled_model_has_metadata_and_runs():
    meta = read_metadata(bundled_model_path())
    for key in ("crop", "outputs", "labels", "mode", "edgeag_version", "training"):
        assert key in meta
    assert meta["mode"] == "int8"
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
