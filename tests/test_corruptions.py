"""The corruption catalogue, the FG-NET reader and the robustness evaluation through the real detector and model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from conftest import DATA, SPLIT_FILE, decode_rgb, needs_data, utk_members, write_tar
from edgeag.edge.classifier import bundled_model_path
from edgeag.errors import BadInputError
from edgeag.train.corruptions import CATALOGUE, KINDS, catalogue_markdown, corrupt, image_rng, parse_corruptions
from edgeag.train.datasets import UNKNOWN, Dataset, parse_fgnet_name

FGNET_TAR = DATA / "FGNET.tar"
MODEL = bundled_model_path()
needs_fgnet = pytest.mark.skipif(not FGNET_TAR.is_file(), reason=f"FG-NET not found at {DATA}")
ALL = [(k, s) for k in KINDS for s in range(1, len(CATALOGUE[k]["levels"]) + 1)]


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real UTKFace chip (200x200 RGB) when the data is there, else textured noise."""
    if (DATA / "UTKFace.tar").is_file():
        return decode_rgb(utk_members(1, split="test")[0][1])
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(128, 50, (200, 200, 3)), 0, 255).astype(np.uint8)


def high_frequency_energy(img: np.ndarray, cutoff: float) -> float:
    """Spectral energy of the luminance above ``cutoff`` cycles per pixel (Nyquist = 0.5), Hann-windowed so that
    the image's borders add no spurious high frequencies."""
    y = img.astype(np.float64).mean(axis=2)
    window = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    f = np.abs(np.fft.fft2((y - y.mean()) * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(y.shape[0]), np.fft.fftfreq(y.shape[1]), indexing="ij")
    return float(f[np.hypot(fx, fy) > cutoff].sum())


def test_every_corruption_is_deterministic_for_a_seed_and_keeps_shape(face):
    for kind, sev in ALL:
        a = corrupt(face, kind, sev, image_rng(0, "x.jpg", kind, sev))
        b = corrupt(face, kind, sev, image_rng(0, "x.jpg", kind, sev))
        assert a.shape == face.shape and a.dtype == np.uint8, kind
        assert np.array_equal(a, b), f"{kind} {sev} is not deterministic"
        assert not np.array_equal(a, face), f"{kind} {sev} left the image unchanged"
    # the noise and the seeded choices depend on the seed and the image's id
    other = corrupt(face, "lowlight", 2, image_rng(1, "x.jpg", "lowlight", 2))
    assert not np.array_equal(other, corrupt(face, "lowlight", 2, image_rng(0, "x.jpg", "lowlight", 2)))
    assert not np.array_equal(corrupt(face, "lowlight", 2, image_rng(0, "y.jpg", "lowlight", 2)), other)
    assert np.array_equal(corrupt(face, "jpeg", 2, 0), corrupt(face, "jpeg", 2, 5))  # nothing random in JPEG


def test_low_resolution_removes_detail_above_the_target_scale(face):
    # face ~ the 200 px chip: reduced to T px wide, detail finer than T/2 cycles per face width is gone (what is
    # left above it is the bilinear upscaling's residue, under a tenth of the original's energy there).
    prev = high_frequency_energy(face, 0.25)
    for sev, target in enumerate(CATALOGUE["lowres"]["levels"], start=1):
        out = corrupt(face, "lowres", sev, 0)
        nyquist = target / 2 / face.shape[1]  # of the reduced image, in cycles per pixel of the original
        assert high_frequency_energy(out, nyquist) < 0.1 * high_frequency_energy(face, nyquist), target
        now = high_frequency_energy(out, 0.25)
        assert now < prev
        prev = now
    # the face width sets the scale: a face already smaller than the target is left as it is
    assert np.array_equal(corrupt(face, "lowres", 1, 0, face_width=40), face)


def test_blurs_soften_more_with_severity_and_motion_has_a_seeded_direction(face):
    import cv2

    def sharpness(img):
        return cv2.Laplacian(img.mean(axis=2), cv2.CV_64F).var()

    for kind in ("blur", "motion"):
        s = [sharpness(corrupt(face, kind, sev, 0)) for sev in (1, 2, 3)]
        assert sharpness(face) > s[0] > s[1] > s[2], kind
    angles = {corrupt(face, "motion", 2, image_rng(0, f"{i}.jpg", "motion", 2)).tobytes() for i in range(4)}
    assert len(angles) > 1


def test_jpeg_decodes_and_loses_more_at_lower_quality(face):
    err = [np.abs(corrupt(face, "jpeg", s, 0).astype(int) - face).mean() for s in (1, 2, 3)]
    assert 0 < err[0] < err[1] < err[2]


def test_photometric_corruptions_change_the_image_as_documented(face):
    mean = face.mean()
    for sev, b in enumerate(CATALOGUE["lowlight"]["levels"], start=1):
        dim = corrupt(face, "lowlight", sev, 0)
        assert abs(dim.mean() / mean - b) < 0.12, (b, dim.mean() / mean)  # about the sRGB brightness factor
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert corrupt(flat, "lowlight", 2, 0).std() > 1.0  # sensor noise
    bright = corrupt(face, "overexpose", 2, 0)
    assert bright.mean() > mean and (bright == 255).mean() > (face == 255).mean()  # brighter, highlights clip
    cast = corrupt(face, "colorcast", 3, 0).reshape(-1, 3).mean(0) / face.reshape(-1, 3).mean(0)
    assert cast.max() / cast.min() > 1.2  # channels shifted against each other
    gray = corrupt(face, "grayscale", 1, 0)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_catalogue_names_every_severity_and_parses_selections():
    assert len(parse_corruptions("all")) == len(ALL)
    assert parse_corruptions("middle") == [(k, CATALOGUE[k]["middle"]) for k in KINDS]
    assert parse_corruptions("lowres:2, jpeg,lowres:2") == [("lowres", 2), ("jpeg", 1), ("jpeg", 2), ("jpeg", 3)]
    for bad in ("fog", "lowres:4", "grayscale:2", ""):
        with pytest.raises(ValueError):
            parse_corruptions(bad)
    table = catalogue_markdown()
    assert all(f"| {k} |" in table for k in KINDS)
    with pytest.raises(ValueError):
        corrupt(np.zeros((8, 8, 3), np.uint8), "jpeg", 4)


def test_fgnet_names_parse_with_suffix_letters():
    assert parse_fgnet_name("001A02.JPG") == (1, 2)
    assert parse_fgnet_name("FGNET/images/069A43a.JPG") == (69, 43)
    assert parse_fgnet_name("002a05b.jpg") == (2, 5)
    for bad in ("001A2.JPG", "01A02.JPG", "001B02.JPG", "001A02ab.JPG", "001A02.txt", "readme.JPG"):
        assert parse_fgnet_name(bad) is None, bad


def fgnet_members(n: int) -> list[tuple[str, bytes]]:
    with tarfile.open(FGNET_TAR) as tf:
        members = [m for m in tf if m.isfile()][:n]
        return [(os.path.basename(m.name), tf.extractfile(m).read()) for m in members]


@pytest.fixture(scope="module")
def fgnet_tar(tmp_path_factory):
    """Four real FG-NET photos (one renamed with a suffix letter) and two badly named files."""
    if not FGNET_TAR.is_file():
        pytest.skip(f"FG-NET not found at {DATA}")
    real = fgnet_members(4)
    real[0] = (real[0][0].replace(".JPG", "b.JPG"), real[0][1])
    members = real + [("001A2.JPG", real[1][1]), ("notes.JPG", b"not an image")]
    return write_tar(tmp_path_factory.mktemp("fgnet") / "FGNET.tar", members, prefix="FGNET/images/")


def test_fgnet_reader_skips_and_counts_bad_names_and_is_evaluation_only(fgnet_tar):
    ds = Dataset(fgnet_tar)
    assert ds.kind == "fgnet-tar" and ds.evaluation_only
    recs = list(ds.records("test"))
    assert len(recs) == 4 and ds.skipped.counts["badly named file"] == 2
    assert all(r.gender == UNKNOWN and r.ethnicity == UNKNOWN and r.split == "test" for r in recs)
    assert recs[0].id.endswith("b.JPG") and recs[0].age == parse_fgnet_name(recs[0].id)[1]
    assert all(r.image.ndim == 3 for r in recs)
    assert len(ds.ids()) == 4
    with pytest.raises(BadInputError, match="evaluation set"):
        list(ds.records("train"))
    with pytest.raises(BadInputError, match="split-file"):
        Dataset(fgnet_tar, SPLIT_FILE)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeag.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_train_refuses_fgnet_with_exit_code_2(fgnet_tar, tmp_path):
    r = run_cli("train", "--data", fgnet_tar, "--out", tmp_path / "run")
    assert r.returncode == 2, r.stderr
    assert "evaluation set only" in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_fgnet_evaluation_runs_the_detector_and_model_and_writes_age_figures(fgnet_tar, tmp_path):
    out = tmp_path / "fg"
    r = run_cli("evaluate", MODEL, "--data", fgnet_tar, "--out", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["format"] == "fgnet" and m["data"]["images"] == 4
    assert m["data"]["skipped"] == {"badly named file": 2}
    (clean,) = m["passes"]
    assert clean["kind"] == "clean" and 1 <= clean["faces_found"] <= 4
    o = clean["metrics"]["overall"]
    assert o["n"] == clean["faces_found"] and o["age_mae"] >= 0 and "gender_accuracy" not in o
    assert "by_gender" not in clean["metrics"]
    assert (out / "report.md").is_file() and (out / "robustness.png").is_file()
    assert "MAE" in r.stdout


@needs_data
def test_corrupted_utkface_evaluation_reports_each_pass_against_clean(tmp_path):
    from edgeag.train.robustness import evaluate_robustness

    tar = write_tar(tmp_path / "utk.tar", utk_members(40, split="test", every=7))
    passes = parse_corruptions("lowres:3,jpeg:2,grayscale")
    m = evaluate_robustness(MODEL, tar, split_file=SPLIT_FILE, corruptions=passes,
                            limit=6, seed=3, out=tmp_path / "rob", progress=False)
    assert [r["pass"] for r in m["passes"]] == ["clean", "lowres 3", "jpeg 2", "grayscale"]
    assert m["data"]["images"] == 6
    for r in m["passes"]:
        assert r["images"] == 6 and 0 <= r["faces_found"] <= 6
        if r["metrics"]:
            assert "gender_accuracy" in r["metrics"]["overall"] and r["age_mae_ratio"] > 0
            assert set(r["signed_error"]) == {"0-8", "61+"}
    assert m["passes"][0]["age_mae_ratio"] == 1.0
    saved = json.loads((tmp_path / "rob" / "metrics.json").read_text())
    assert saved["passes"][1]["metrics"] == json.loads(json.dumps(m["passes"][1]["metrics"]))
    # the same seed gives the same sample and the same corruptions
    again = evaluate_robustness(MODEL, tar, split_file=SPLIT_FILE,
                                corruptions=passes, limit=6, seed=3, progress=False)
    assert [r.get("metrics") for r in again["passes"]] == [r.get("metrics") for r in m["passes"]]


def test_cli_rejects_an_unknown_corruption_with_exit_code_2(tmp_path):
    r = run_cli("evaluate", MODEL, "--data", tmp_path, "--corruptions", "fog")
    assert r.returncode == 2 and "fog" in r.stderr and "Traceback" not in r.stderr
