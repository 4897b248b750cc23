"""`edgeag quantize` end to end: convert, measure what the conversion cost, set the gender decision point.

The crops of the data set are loaded once (calibration on train, the check on ``check_split``, the
threshold on val), by the model's own crop spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgeag.errors import BadInputError
from edgeag.quantize.age_prior import check_age_prior, divide_out_age_prior
from edgeag.quantize.convert import check_mode, sample_calibration, write_tflite
from edgeag.train.cache import CropSet


def quantize_and_check(model_dir: str | Path, out: str | Path, *, data: str | Path | None = None,
                       split_file: str | Path | None = None, mode: str = "int8", samples: int = 300,
                       tta: bool = False, per_tensor: bool = False, check_split: str | None = "test",
                       gender_threshold: float | None = 0.5, age_prior: float = 0.0,
                       log: Callable[[str], None] = print) -> dict:
    """Convert ``model_dir`` to ``out`` and report on ``log`` (rich markup). ``check_split`` None skips the
    float-vs-converted comparison; ``gender_threshold`` None chooses it on the val split (max. accuracy);
    ``age_prior`` divides that much of the training split's age prior out of the age head (``age_prior.py``).
    Returns {"path", "bytes", "mode", "gender_threshold"}."""
    from edgeag.train.run_folder import load_model_dir

    check_mode(mode, per_tensor)
    check_age_prior(age_prior)
    if samples < 1:
        raise BadInputError("--samples must be at least 1")
    if gender_threshold is not None and not 0.0 < gender_threshold < 1.0:
        raise BadInputError(f"--gender-threshold must be inside (0, 1), got {gender_threshold}")
    model, config = load_model_dir(model_dir)
    data = data or config["data"]["path"]
    split_file = split_file or config["data"].get("split_file")
    needs_crops = mode == "int8" or check_split is not None or gender_threshold != 0.5 or age_prior
    crops = _load_crops(config, data, split_file) if needs_crops else None
    if age_prior:
        config = divide_out_age_prior(model, config, _split(crops, "train", data, "--age-prior").age, age_prior)
    r = write_tflite(model, config, out, mode=mode, flip_tta=tta, per_tensor=per_tensor,
                     representative=sample_calibration(crops, samples) if mode == "int8" else None)
    log(f"[green]wrote[/] {r['path']} ({r['bytes'] / 1024:.0f} KB, {mode})")
    check = None
    if check_split is not None:  # the conversion's own cost, before any threshold is set
        check = _split(crops, check_split, data)
        f = _accuracy(_keras(model), check, tta)
        q = _accuracy(out, check)
        log(f"{check_split} split: age MAE float {f['age_mae']:.3f} -> {mode} {q['age_mae']:.3f} "
            f"({q['age_mae'] - f['age_mae']:+.3f}); gender float {100 * f['gender_accuracy']:.2f}% -> "
            f"{100 * q['gender_accuracy']:.2f}% ({100 * (q['gender_accuracy'] - f['gender_accuracy']):+.2f} points); "
            f"ethnicity {100 * f['ethnicity_accuracy']:.2f}% -> {100 * q['ethnicity_accuracy']:.2f}%")
    if gender_threshold is None:
        gender_threshold = _choose_threshold(out, _split(crops, "val", data, "--gender-threshold auto"), log)
    elif gender_threshold == 0.5:
        return {**r, "gender_threshold": 0.5}
    from edgeag.quantize.operating_point import set_gender_threshold

    set_gender_threshold(out, gender_threshold)
    if check is not None:
        g = _accuracy(out, check)["gender_accuracy"]
        log(f"{check_split} split with gender threshold {gender_threshold:.3f}: gender "
            f"{100 * q['gender_accuracy']:.2f}% -> {100 * g:.2f}%")
    return {**r, "gender_threshold": gender_threshold}


def _load_crops(config: dict, data, split_file) -> CropSet:
    from edgeag.edge.crop import CropSpec
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset

    crops, _ = load_crops(Dataset(data, split_file), CropSpec.from_dict(config["crop"]), None)
    return crops


def _split(crops: CropSet, split: str, data, why: str = "the check") -> CropSet:
    sub = crops.subset(split)
    if len(sub) == 0:
        raise BadInputError(f"{why} needs a {split} split in {data}")
    return sub


def _keras(model):
    from edgeag.train.evaluate import KerasPredictor

    return KerasPredictor(model)


def _accuracy(predictor_or_path, crops: CropSet, tta: bool = False) -> dict:
    """Overall figures of a predictor (or a .tflite file) on ``crops``."""
    from edgeag.train.evaluate import evaluate_crops, load_predictor

    predictor = predictor_or_path
    if isinstance(predictor_or_path, (str, Path)):
        predictor = load_predictor(predictor_or_path)[0]
    return evaluate_crops(predictor, crops, "", tta_flip=tta)["overall"]


def _choose_threshold(out, val: CropSet, log) -> float:
    from edgeag.quantize.operating_point import accuracy_by_sex, choose_gender_threshold
    from edgeag.train.evaluate import load_predictor, predict_all

    p_val = predict_all(load_predictor(out)[0], val.x)["p_female"]
    threshold, acc, acc_half = choose_gender_threshold(p_val, val.gender)
    before, after = accuracy_by_sex(p_val, val.gender, 0.5), accuracy_by_sex(p_val, val.gender, threshold)
    log(f"gender threshold chosen on val ({len(val)} faces): {threshold:.3f} "
        f"(val accuracy {100 * acc_half:.2f}% at 0.5 -> {100 * acc:.2f}%; men "
        f"{100 * before['male']:.1f}% -> {100 * after['male']:.1f}%, women "
        f"{100 * before['female']:.1f}% -> {100 * after['female']:.1f}%: check the gap)")
    return threshold
