"""Model heads, a tiny end-to-end train + evaluate run, and int8 quantization of the result."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import default_sigint, needs_data, utk_members, write_tar

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow", reason="training tests need edgeag[train]")


@pytest.mark.parametrize("arch", ["mobilenet", "resnet", "efficientnet"])
def test_heads_are_named_and_shaped(arch):
    from edgeag.train.model import ModelConfig, build_model, count_macs

    m = build_model(ModelConfig(arch=arch, input_size=48, channels=1, width=0.35))
    out = m(np.zeros((2, 48, 48, 1), np.float32), training=False)
    assert set(out) == {"age", "gender", "ethnicity"}
    assert out["age"].shape == (2, 1) and out["gender"].shape == (2, 1) and out["ethnicity"].shape == (2, 5)
    assert np.allclose(np.asarray(out["ethnicity"]).sum(1), 1, atol=1e-5)
    g = np.asarray(out["gender"])
    assert ((g > 0) & (g < 1)).all()
    assert count_macs(m) > 0 and m.count_params() < 2_000_000


def test_depthwise_separable_blocks_are_used():
    from keras import layers

    from edgeag.train.model import ModelConfig, build_model

    m = build_model(ModelConfig())
    kinds = {type(layer) for layer in m.layers}
    assert layers.DepthwiseConv2D in kinds and layers.BatchNormalization in kinds and layers.Dropout in kinds


def test_flip_tta_averages_the_crop_and_its_mirror_per_face():
    from edgeag.quantize.convert import with_flip_tta
    from edgeag.train.model import ModelConfig, build_model

    m = build_model(ModelConfig(input_size=32, width=0.35))
    tta = with_flip_tta(m)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    got = tta(x, training=False)
    plain, mirrored = m(x, training=False), m(x[:, :, ::-1], training=False)
    for k in ("age", "gender", "ethnicity"):
        want = (np.asarray(plain[k]) + np.asarray(mirrored[k])) / 2
        assert np.asarray(got[k]).shape == want.shape  # one row per face, not per (face, mirror)
        assert np.allclose(np.asarray(got[k]), want, atol=1e-4)


def test_exposure_norm_gives_the_first_convolution_the_same_input_for_a_dimmer_flatter_face_also_in_int8():
    """With ``exposure_norm`` a dimmer, flatter copy of a face (pixels x 0.4 + 10) reaches the first convolution
    as the face itself does, in Keras and in the int8 file (which computes it with integer ops); without it, it
    does not. The layer has no weights."""
    import keras

    from edgeag.quantize.convert import convert
    from edgeag.train.model import TYPICAL_MEAN, TYPICAL_STD, ModelConfig, build_model

    cfg = dict(input_size=32, width=0.35, age_head="distribution")
    rng = np.random.default_rng(0)
    x = rng.uniform(40, 220, (4, 32, 32, 3)).astype(np.float32)
    dim = np.round(x * 0.4 + 10)
    plain, normed = build_model(ModelConfig(**cfg)), build_model(ModelConfig(**cfg, exposure_norm=True))
    assert plain.count_params() == normed.count_params()

    def first_conv_input(model):
        return keras.Model(model.input, model.get_layer("stem_conv").input)

    a, b = (np.asarray(first_conv_input(normed)(v)) for v in (x, dim))
    assert np.abs(a - b).max() < 0.03  # the dim copy is rounded to whole pixel values
    assert np.allclose(a.mean(axis=(1, 2, 3)), TYPICAL_MEAN, atol=1e-4)
    assert np.allclose(a.std(axis=(1, 2, 3)), TYPICAL_STD, atol=3e-3)  # less the 1e-3 added to the variance
    a, b = (np.asarray(first_conv_input(plain)(v)) for v in (x, dim))
    assert np.abs(a - b).mean() > 0.3

    from ai_edge_litert.interpreter import Interpreter

    probe = first_conv_input(normed)
    calibration = np.concatenate([x, dim, np.linspace(0, 255, 32 * 32 * 3).reshape(1, 32, 32, 3)])  # uint8 in: 0-255
    run = Interpreter(model_content=convert(probe, "int8", calibration)).get_signature_runner()
    out = [run(**{probe.input.name: v.astype(np.uint8)}) for v in (x, dim)]
    scale = (TYPICAL_STD * 6) / 255  # int8 steps over about +-3 standard deviations
    got = [np.asarray(next(iter(o.values())), np.float32) for o in out]
    assert np.abs((got[0] - got[1])).mean() * scale < 0.03  # the same codes, give or take a step


def test_a_saved_model_with_exposure_norm_loads_in_a_fresh_process(tmp_path):
    """The run folder of a model with the custom layer loads where nothing has imported the model code yet
    (as `edgeag quantize RUN` does)."""
    import json
    import subprocess
    import sys

    from edgeag.train.model import ModelConfig, build_model

    build_model(ModelConfig(input_size=32, width=0.35, exposure_norm=True)).save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({}))
    code = ("from edgeag.train.run_folder import load_model_dir; import sys; "
            "m, _ = load_model_dir(sys.argv[1]); print(m.get_layer('exposure_norm').name)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("exposure_norm")


def test_distribution_loss_is_lowest_at_the_true_age():
    from edgeag.train.model import AGE_BINS, age_distribution_loss

    ages = np.arange(AGE_BINS, dtype=np.float32)
    y = np.array([[30.0], [30.0], [30.0], [80.0]], np.float32)
    logits = -0.5 * ((ages[None] - np.array([[30.0], [33.0], [45.0], [80.0]])) / 2.0) ** 2
    loss = np.asarray(age_distribution_loss(y, logits))
    assert loss[0] < loss[1] < loss[2]  # further off costs more, not a constant like L1's gradient
    assert abs(loss[0] - loss[3]) < 1e-3  # a matching Gaussian scores the same anywhere in range


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_distribution_age_head_reads_out_the_expected_age(tmp_path, mode):
    """The expectation over ages, taken in the graph, is Keras's expected age: exactly in float32; int8 files
    are integer-only (fidelity: on a trained model)."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.metadata import write_metadata
    from edgeag.quantize.convert import convert, export_model
    from edgeag.train.fit import recalibrate_batchnorm
    from edgeag.train.model import ModelConfig, build_model

    keras.utils.set_random_seed(0)  # the initial weights decide how far apart the untrained ages are
    m = build_model(ModelConfig(input_size=32, width=0.35, age_head="distribution"), mean_age=30)
    layer = m.get_layer("age_logits")
    w, b = layer.get_weights()
    layer.set_weights([w * 4, b])  # an untrained head says nearly the same age for every face: spread it
    rng = np.random.default_rng(0)
    # Faces of different brightness and colour, so that the pooled features (and ages) differ.
    x = np.clip(rng.uniform(0, 255, (96, 1, 1, 3)) + rng.normal(0, 20, (96, 32, 32, 3)), 0, 255).astype(np.uint8)
    recalibrate_batchnorm(m, x, progress=False)  # fresh BN statistics saturate every relu6 into a constant
    want = np.asarray(m(x.astype(np.float32), training=False)["age"]).reshape(-1)
    assert want.std() > 2, "the test needs faces of different predicted ages"
    q = tmp_path / "dist.tflite"
    q.write_bytes(write_metadata(convert(export_model(m), mode, x[:64].astype(np.float32)), {
        "crop": {"size": 32, "channels": 3, "margin": 0.1}, "outputs": {"age": "years"},
        "labels": {"gender": ["male", "female"], "ethnicity": ["White", "Black", "Asian", "Indian", "Others"]}}))
    interp = Interpreter(model_path=str(q))
    assert set(interp.get_signature_runner().get_output_details()) == {"age", "gender", "ethnicity"}
    got = AgeGenderClassifier(q).predict(x)["age"]
    assert got.shape == (96,) and np.isfinite(got).all() and ((got >= 0) & (got <= 116)).all()
    if mode == "float32":
        assert np.abs(got - want).max() < 0.01
    else:
        assert all(d["dtype"] in (np.int8, np.uint8) for d in interp.get_output_details())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Train a tiny model for a few epochs on 960 UTKFace faces of all ages (hash split), once per module.

    With the bundled model's age loss (a distribution head), so that the int8 checks below cover it."""
    from conftest import UTK_TAR

    if not UTK_TAR.is_file():
        pytest.skip("UTKFace not found at ../shared/data")
    tmp = tmp_path_factory.mktemp("tiny")
    tar = write_tar(tmp / "utk.tar", utk_members(960, split="train", every=19))
    out = tmp / "model"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "train", "--data", str(tar), "--out", str(out),
                        "--input-size", "48", "--width", "0.35", "--epochs", "24", "--batch-size", "32",
                        "--lr", "0.004", "--patience", "24", "--age-loss", "distribution"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return tar, out, r


@needs_data
def test_train_writes_every_artifact(tiny_run):
    _, out, r = tiny_run
    for f in ("model.keras", "config.json", "history.csv", "metrics.json", "report.md", "curves.png",
              "error_by_age.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    config = json.loads((out / "config.json").read_text())
    assert config["crop"]["size"] == 48 and config["model"]["arch"] == "mobilenet"
    assert config["model"]["age_head"] == "distribution" and "age_logits" in config["train"]["loss_weights"]
    assert config["epochs_run"] >= 1 and config["seconds_per_epoch"] > 0
    assert "Traceback" not in r.stderr


@needs_data
def test_trained_model_beats_a_constant_age_predictor(tiny_run):
    tar, out, _ = tiny_run
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.evaluate import evaluate_model
    from edgeag.edge.crop import CropSpec

    m = evaluate_model(out, tar, split="val", progress=False)
    crops, _ = load_crops(Dataset(tar), CropSpec(size=48), None, progress=False)
    train_median = float(np.median(crops.subset("train").age))
    val = crops.subset("val").age
    constant_mae = float(np.abs(val - train_median).mean())
    assert m["overall"]["n"] == len(val) > 20
    assert m["overall"]["age_mae"] < constant_mae, (m["overall"]["age_mae"], constant_mae)


@needs_data
def test_int8_quantization_matches_float_and_carries_metadata(tiny_run, tmp_path):
    tar, out, _ = tiny_run
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.metadata import read_metadata
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.edge.crop import CropSpec
    from edgeag.train.evaluate import KerasPredictor
    from edgeag.train.run_folder import load_model_dir

    q = tmp_path / "m.tflite"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "quantize", str(out), "--data", str(tar),
                        "--out", str(q), "--samples", "64", "--check-split", "val"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "age MAE float" in r.stderr
    meta = read_metadata(q)
    assert meta["mode"] == "int8" and meta["crop"]["size"] == 48 and meta["labels"]["gender"] == ["male", "female"]

    clf = AgeGenderClassifier(q)
    # The age output spans 0-116 years, not just the ages the 64 calibration crops reached (it once ended at 47).
    low, high = clf.output_range("age")
    assert low == pytest.approx(0.0, abs=1e-3) and 116.0 - 1e-3 <= high < 117.0
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(q))
    int_types = (np.int8, np.uint8)
    assert all(d["dtype"] in int_types for d in interp.get_input_details())
    assert all(d["dtype"] in int_types for d in interp.get_output_details())
    assert {op["op_name"] for op in interp._get_ops_details()} <= {
        "QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC", "SOFTMAX",
        "MUL", "RESHAPE", "PAD", "AVERAGE_POOL_2D", "DEQUANTIZE", "HARD_SWISH", "RELU6", "RELU", "LOG_SOFTMAX"}
    # Inner tensors carry short names (the converter's op paths were ~8% of the file); the signature still works.
    inner = [d["name"] for d in interp.get_tensor_details()]
    assert sum(len(n) for n in inner) < 12 * len(inner) and set(clf.predict(np.zeros((1, 48, 48, 3), np.uint8)))

    crops, _ = load_crops(Dataset(tar), CropSpec(size=48), None, progress=False)
    x = crops.subset("val").x[:64]
    model, _ = load_model_dir(out)
    f = KerasPredictor(model).predict(x)
    i = clf.predict(x)
    assert np.abs(f["age"] - i["age"]).mean() < 1.5
    assert ((f["p_female"] >= 0.5) == (i["p_female"] >= 0.5)).mean() >= 0.9
    # Ethnicity: the same class wherever the float model is clear, close probabilities on average (a maximum over 320 values
    # of a tiny, not bit-reproducible model is a tail statistic: it reached 0.17 on one CI run).
    top2 = np.sort(f["ethnicity"], axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1  # where the float model is not torn between two classes
    assert (f["ethnicity"].argmax(1) == i["ethnicity"].argmax(1))[clear].mean() >= 0.9
    assert np.abs(f["ethnicity"] - i["ethnicity"]).mean() < 0.04


@needs_data
def test_per_tensor_int8_has_one_scale_per_weight_tensor_a_smaller_file_and_the_same_answers(tiny_run, tmp_path):
    tar, out, _ = tiny_run
    from ai_edge_litert.interpreter import Interpreter

    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.crop import CropSpec
    from edgeag.edge.metadata import read_metadata
    from edgeag.quantize.convert import quantize
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset

    files = {}
    for per_tensor in (False, True):
        files[per_tensor] = tmp_path / f"{per_tensor}.tflite"
        quantize(out, files[per_tensor], data=tar, samples=64, per_tensor=per_tensor, progress=False)
    assert read_metadata(files[True])["weight_quantization"] == "per-tensor"
    assert read_metadata(files[False])["weight_quantization"] == "per-channel"

    def most_scales(path) -> int:
        return max(len(d["quantization_parameters"]["scales"]) for d in Interpreter(model_path=str(path))
                   .get_tensor_details())

    assert most_scales(files[False]) > 1 and most_scales(files[True]) == 1
    assert files[True].stat().st_size < files[False].stat().st_size
    x = load_crops(Dataset(tar), CropSpec(size=48), None, progress=False)[0].subset("val").x[:64]
    a, b = AgeGenderClassifier(files[False]).predict(x), AgeGenderClassifier(files[True]).predict(x)
    assert np.abs(a["age"] - b["age"]).mean() < 1.5
    assert ((a["p_female"] >= 0.5) == (b["p_female"] >= 0.5)).mean() >= 0.9


@needs_data
def test_quantize_chooses_a_gender_threshold_on_val(tiny_run, tmp_path):
    tar, out, _ = tiny_run
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.quantize.operating_point import THRESHOLDS

    q = tmp_path / "t.tflite"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "quantize", str(out), "--data", str(tar), "--out", str(q),
                        "--samples", "32", "--check-split", "val", "--gender-threshold", "auto"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "gender threshold chosen on val" in r.stderr and "with gender threshold" in r.stderr
    assert "men" in r.stderr and "women" in r.stderr  # the trade-off between the sexes is shown
    t = AgeGenderClassifier(q).gender_threshold
    assert t in THRESHOLDS


def test_dividing_out_the_age_prior_moves_an_uninformed_face_from_the_crowded_ages_to_the_middle():
    """A head that only repeats the training prior says the training set's mean age for every face; with the
    prior divided out fully it says the middle of the range (every age equally likely), half-way at 0.5."""
    from edgeag.errors import BadInputError
    from edgeag.quantize.age_prior import divide_out_age_prior
    from edgeag.train.model import AGE_BINS, ModelConfig, build_model, train_log_prior

    train_ages = np.r_[np.full(300, 1), np.full(900, 26), np.full(100, 70)]
    log_prior = train_log_prior(train_ages, AGE_BINS, 2.0)
    assert log_prior.shape == (AGE_BINS,) and abs(np.exp(log_prior).sum() - 1) < 1e-9
    assert log_prior[26] > log_prior[1] > log_prior[70] > log_prior[100]  # the floor keeps unseen ages finite
    config = {"model": {"age_head": "distribution"}}
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    ages = {}
    for beta in (0.0, 0.5, 1.0):
        m = build_model(ModelConfig(input_size=32, width=0.35, age_head="distribution"), mean_age=30)
        w, _ = m.get_layer("age_logits").get_weights()
        m.get_layer("age_logits").set_weights([np.zeros_like(w), log_prior.astype(np.float32)])
        got = divide_out_age_prior(m, config, train_ages, beta)
        assert got["age_prior"]["beta"] == beta and "1300 faces" in got["age_prior"]["of"]
        ages[beta] = np.asarray(m(x, training=False)["age"]).reshape(-1)
    p = np.exp(log_prior)
    assert np.allclose(ages[0.0], p @ np.arange(AGE_BINS), atol=0.01)  # the training mean, for every face
    assert np.allclose(ages[1.0], (AGE_BINS - 1) / 2, atol=0.01)  # the middle of 0..116
    assert ages[0.0][0] < ages[0.5][0] < ages[1.0][0]
    regression = build_model(ModelConfig(input_size=32, width=0.35, age_head="regression"), mean_age=30)
    for cfg, model, beta in (({"model": {"age_head": "regression"}}, regression, 0.5), (config, m, 1.5)):
        with pytest.raises(BadInputError):
            divide_out_age_prior(model, cfg, train_ages, beta)


@needs_data
def test_quantize_age_prior_is_baked_into_the_file_and_named_in_its_metadata(tiny_run, tmp_path):
    tar, out, _ = tiny_run
    from edgeag.edge.classifier import AgeGenderClassifier

    files = {}
    for beta in ("0", "0.8"):
        files[beta] = tmp_path / f"prior{beta}.tflite"
        r = subprocess.run([sys.executable, "-m", "edgeag.cli", "quantize", str(out), "--data", str(tar),
                            "--out", str(files[beta]), "--samples", "32", "--no-check", "--age-prior", beta],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
    plain, adjusted = (AgeGenderClassifier(files[b]) for b in ("0", "0.8"))
    assert "age_prior" not in plain.metadata and adjusted.metadata["age_prior"]["beta"] == 0.8
    x = np.random.default_rng(1).uniform(0, 255, (16, 48, 48, 3)).astype(np.uint8)
    assert not np.allclose(plain.predict(x)["age"], adjusted.predict(x)["age"])


def test_quantize_rejects_broken_inputs(tmp_path):
    cases = [
        ["quantize", str(tmp_path / "missing"), "--out", str(tmp_path / "a.tflite")],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite")],  # folder without a model
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.bin")],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite"), "--mode", "int4"],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite"), "--gender-threshold", "high"],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite"), "--gender-threshold", "1.2"],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite"), "--mode", "float16", "--per-tensor"],
        ["quantize", str(tmp_path), "--out", str(tmp_path / "a.tflite"), "--age-prior", "1.5"],
    ]
    for args in cases:
        r = subprocess.run([sys.executable, "-m", "edgeag.cli", *args], capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "error" in r.stderr


@needs_data
def test_an_interrupted_training_resumes_where_it_stopped(tmp_path):
    """Ctrl-C keeps a usable model and a backup; the same command again continues, not restarts."""
    import signal
    import time

    tar = write_tar(tmp_path / "utk.tar", utk_members(160, split="train", every=97))
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "edgeag.cli", "train", "--data", str(tar), "--out", str(out),
           "--input-size", "32", "--width", "0.25", "--epochs", "6", "--batch-size", "32", "--patience", "6"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    history = out / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:  # header + 2 epochs
            p.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err[-3000:]  # a script must not take it for a finished run
    assert "interrupted" in err and "Traceback" not in err and (out / "model.keras").is_file() and (out / "backup").is_dir()
    done = len(history.read_text().splitlines()) - 1
    assert 2 <= done < 6

    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming after epoch {done}" in r.stderr
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert epochs == list(range(6))  # continued, not restarted and not repeated
    assert not (out / "backup").exists()  # a finished run leaves no backup behind
    assert json.loads((out / "config.json").read_text())["resumed_after_epoch"] == done


def test_train_rejects_bad_options_before_touching_data(tmp_path):
    for opt in (["--age-loss", "cubic"], ["--gender-smoothing", "1.5"], ["--gender-smoothing", "-0.1"],
                ["--augment", "heavy"]):
        r = subprocess.run([sys.executable, "-m", "edgeag.cli", "train", "--data", str(tmp_path / "none.tar"),
                            "--out", str(tmp_path / "out"), *opt], capture_output=True, text=True)
        err = " ".join(r.stderr.split())
        assert r.returncode == 2 and (opt[0] in err or "age loss" in err or "augmentation" in err), \
            (opt, r.stderr[-2000:])
        assert "Traceback" not in err and not (tmp_path / "out").exists()


@needs_data
def test_init_from_continues_from_a_finished_run_and_refuses_a_different_model(tiny_run, tmp_path):
    """--init-from starts from the run's weights (a warm restart, here at a higher input size: progressive
    resizing); other model settings are refused cleanly."""
    import keras

    tar, src, _ = tiny_run
    base = [sys.executable, "-m", "edgeag.cli", "train", "--data", str(tar),
            "--epochs", "1", "--batch-size", "32", "--age-loss", "distribution", "--limit", "64",
            "--init-from", str(src)]
    out = tmp_path / "cont"
    assert json.loads((src / "config.json").read_text())["model"]["input_size"] == 48
    r = subprocess.run(base + ["--input-size", "56", "--width", "0.35", "--out", str(out), "--lr", "1e-9"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["train"]["init_from"] == str(src)
    a = keras.models.load_model(src / "model.keras", compile=False)
    b = keras.models.load_model(out / "model.keras", compile=False)
    # With a negligible learning rate the trainable weights are the source run's (BN statistics are re-estimated).
    pairs = [(u.numpy(), v.numpy()) for u, v in zip(a.trainable_weights, b.trainable_weights)]
    assert len(pairs) == len(b.trainable_weights) > 10
    assert all(u.shape == v.shape and np.allclose(u, v, atol=1e-5) for u, v in pairs)

    assert keras.models.load_model(out / "model.keras", compile=False).input_shape[1:3] == (56, 56)
    r = subprocess.run(base + ["--input-size", "48", "--width", "0.5", "--out", str(tmp_path / "bad")],
                       capture_output=True, text=True)
    err = " ".join(r.stderr.split())  # Rich wraps long messages
    assert r.returncode == 2 and "differs in width" in err and "Traceback" not in err, r.stderr[-2000:]


@needs_data
def test_a_quantized_model_file_is_a_starting_point_for_training_and_a_soup_ingredient(tiny_run, tmp_path):
    """A .tflite written by `edgeag quantize` (flip in the graph, an age prior divided out) gives back the
    run's function: weights read back, batch norm unfolded, the prior put back. `train --init-from` and
    `soup` take it; a file of another model, or not of edgeag, is refused in one line."""
    import keras

    from edgeag.edge.crop import CropSpec
    from edgeag.edge.metadata import read_metadata
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.from_tflite import load_into
    from edgeag.train.model import ModelConfig, build_model

    tar, src, _ = tiny_run
    q = tmp_path / "m.tflite"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "quantize", str(src), "--data", str(tar), "--out", str(q),
                        "--samples", "64", "--no-check", "--tta", "--age-prior", "0.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_metadata(q)
    crops, _ = load_crops(Dataset(tar), CropSpec.from_dict(meta["crop"]), None, progress=False)
    x = crops.x[:96].astype(np.float32)
    original = keras.models.load_model(src / "model.keras", compile=False)
    recovered, fresh = build_model(ModelConfig.from_dict(meta["architecture"])), None
    load_into(recovered, q, meta, crops.x, crops.age)
    fresh = build_model(ModelConfig.from_dict(meta["architecture"]))
    a, b, c = (m.predict(x, verbose=0) for m in (original, recovered, fresh))
    age_gap = np.abs(a["age"] - b["age"]).mean()
    assert age_gap < 1.5 and age_gap < np.abs(a["age"] - c["age"]).mean() / 4, age_gap
    assert np.abs(a["gender"] - b["gender"]).mean() < 0.05

    base = [sys.executable, "-m", "edgeag.cli", "train", "--data", str(tar), "--epochs", "1", "--batch-size", "32",
            "--age-loss", "distribution", "--limit", "64", "--input-size", "48", "--lr", "1e-9"]
    r = subprocess.run(base + ["--width", "0.35", "--init-from", str(q), "--out", str(tmp_path / "on")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "soup", str(tmp_path / "on"), str(q), "--data", str(tar),
                        "--out", str(tmp_path / "soup")], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "soup" / "model.keras").is_file(), r.stderr[-3000:]

    from edgeag.edge.classifier import bundled_model_path

    detector = bundled_model_path().parent / "face_detection_short_range.tflite"
    for source, message in ((q, "differs in width"), (detector, "no edgeag metadata")):
        r = subprocess.run(base + ["--width", "0.5", "--init-from", str(source), "--out", str(tmp_path / "bad")],
                           capture_output=True, text=True)
        err = " ".join(r.stderr.split())
        assert r.returncode == 2 and message in err and "Traceback" not in err, r.stderr[-2000:]
        assert not (tmp_path / "bad").exists()  # refused before any data is read or output written


def test_average_weights_is_the_elementwise_mean_and_refuses_other_shapes():
    from edgeag.errors import BadInputError
    from edgeag.train.soup import average_weights

    a = [np.zeros((2, 3), np.float32), np.array([1, 3], np.int64)]
    b = [np.ones((2, 3), np.float32) * 4, np.array([3, 5], np.int64)]
    got = average_weights([a, b])
    assert np.allclose(got[0], 2) and got[0].dtype == np.float32 and list(got[1]) == [2, 4]
    with pytest.raises(BadInputError, match="shape"):
        average_weights([a, [np.zeros((3, 2), np.float32), a[1]]])
    with pytest.raises(BadInputError, match="numbers of weight"):
        average_weights([a, a[:1]])


@needs_data
def test_soup_writes_a_model_folder_and_refuses_a_different_model(tiny_run, tmp_path):
    """`edgeag soup` of a run with itself gives back its weights, in a folder quantize and evaluate accept;
    a run of another width is refused with a clear message and exit code 2."""
    import shutil

    import keras

    tar, src, _ = tiny_run
    out = tmp_path / "soup"
    cmd = [sys.executable, "-m", "edgeag.cli", "soup", str(src), str(src), "--data", str(tar)]
    r = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["soup"]["runs"] == [str(src), str(src)] and config["crop"] == json.loads(
        (src / "config.json").read_text())["crop"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "val" and set(m["ingredients"]) == {str(src)}
    from edgeag.quantize.convert import build_metadata

    assert build_metadata(config, "int8")["training"]["soup_of"] == [src.name, src.name]  # the model file says so
    a = keras.models.load_model(src / "model.keras", compile=False)
    b = keras.models.load_model(out / "model.keras", compile=False)
    assert all(np.allclose(u.numpy(), v.numpy(), atol=1e-6) for u, v in zip(a.trainable_weights, b.trainable_weights))

    # A run of another width: refused.
    for key, value in (("width", 0.5),):
        other = tmp_path / f"other_{key}"
        shutil.copytree(src, other)
        cfg = json.loads((other / "config.json").read_text())
        cfg["model"][key] = value
        (other / "config.json").write_text(json.dumps(cfg))
        r = subprocess.run([sys.executable, "-m", "edgeag.cli", "soup", str(src), str(other), "--data", str(tar),
                            "--out", str(tmp_path / f"bad_{key}")], capture_output=True, text=True)
        err = " ".join(r.stderr.split())
        assert r.returncode == 2 and f"differs in {key}" in err and "Traceback" not in err, r.stderr[-2000:]


def test_find_suspects_keeps_confident_contradictions_of_adults_most_confident_first():
    from edgeag.train.audit import find_suspects

    p = np.array([0.01, 0.99, 0.6, 0.05, 0.97, 0.02])
    g = np.array([1, 0, 0, 1, 0, 0])  # 0, 1, 3, 4 contradicted; 2 only weakly; 5 agrees
    age = np.array([30, 40, 50, 5, 20, 30])  # 3 is a child
    assert find_suspects(p, g, age, min_confidence=0.8, min_age=13).tolist() == [0, 1, 4]
    assert find_suspects(p, g, age, min_confidence=0.1, min_age=0).tolist() == [0, 1, 4, 3, 2]


def test_read_id_list_takes_a_suspects_csv_or_plain_lines(tmp_path):
    from edgeag.errors import BadInputError
    from edgeag.train.audit import read_id_list

    (tmp_path / "s.csv").write_text("id,split,age\na.jpg,train,3\nb.jpg,val,4\n")
    (tmp_path / "s.txt").write_text("a.jpg\n\nb.jpg\n")
    (tmp_path / "bad.csv").write_text("name,split\na.jpg,train\n")
    assert read_id_list(tmp_path / "s.csv") == read_id_list(tmp_path / "s.txt") == {"a.jpg", "b.jpg"}
    with pytest.raises(BadInputError, match="id"):
        read_id_list(tmp_path / "bad.csv")
    with pytest.raises(BadInputError, match="not found"):
        read_id_list(tmp_path / "none.csv")


@needs_data
def test_audit_labels_lists_contradicted_faces_and_train_leaves_them_out(tiny_run, tmp_path):
    import csv

    tar, src, _ = tiny_run
    audit = tmp_path / "audit"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "audit-labels", str(src), "--data", str(tar),
                        "--split", "all", "--min-contradiction", "0.01", "--min-age", "0", "--out", str(audit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = list(csv.DictReader(open(audit / "suspects.csv")))
    # A tiny model gets some genders wrong: every one of them is listed, and only those (confidence > 0.01 keeps
    # p(female) clear of 0.5 after the CSV's rounding to 3 decimals).
    assert rows and all((float(x["p_female"]) >= 0.5) != (x["gender_label"] == "female") for x in rows)
    assert (audit / "suspects.png").is_file()
    # The tiny model may fit its training faces perfectly, so the exclusion is checked with a list of its own:
    # the audit's suspects plus ten training faces (the hash split of seed 0 decides which are training).
    import tarfile

    from edgeag.train.datasets import hash_split

    names = [m.name.split("/")[-1] for m in tarfile.open(tar).getmembers() if m.isfile()]
    listed = {x["id"] for x in rows} | set(sorted(n for n in names if hash_split(n) == "train")[:10])
    (tmp_path / "exclude.csv").write_text("id,split\n" + "".join(f"{i},x\n" for i in sorted(listed)))
    n_train = sum(hash_split(i) == "train" for i in listed)
    out = tmp_path / "clean"
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "train", "--data", str(tar), "--out", str(out),
                        "--input-size", "48", "--width", "0.35", "--epochs", "1", "--batch-size", "32",
                        "--exclude", str(tmp_path / "exclude.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["excluded_from_train"] == n_train > 0
    before = json.loads((src / "config.json").read_text())["data"]
    assert data["train"] == before["train"] - n_train and data["val"] == before["val"]


@needs_data
def test_robustness_evaluation_takes_a_keras_run_folder(tiny_run, tmp_path):
    tar, src, _ = tiny_run
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "evaluate", str(src), "--data", str(tar), "--split", "val",
                        "--corruptions", "jpeg:2,lowlight:2", "--limit", "8", "--out", str(tmp_path / "rob")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "rob" / "metrics.json").read_text())
    assert "Keras" in m["model"] and [p["pass"] for p in m["passes"]] == ["clean", "jpeg 2", "lowlight 2"]
    assert all(p["images"] == 8 for p in m["passes"]) and m["passes"][0]["faces_found"] > 0
