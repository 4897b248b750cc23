"""Does post-hoc calibration help a trained model? Measured, not assumed.

    python benchmarks/experiments/post_hoc.py edge/models/edgeag_default.tflite \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

Two cheap fixes people reach for after training, both fitted on the validation split only and then scored
once on the test split:

- **age calibration**: a monotone piecewise-linear map from predicted to true age through the medians of
  ``--bins`` quantile bins of the prediction (slope 1 outside them). It can only help where the age head is
  biased for a given prediction; an L1-trained head already predicts a conditional median.
- **gender threshold**: P(female) >= t instead of 0.5, t chosen on validation by the same function as
  ``edgeag quantize --gender-threshold auto`` (so run this on a file quantized without it).
- **gender threshold by predicted age**: one threshold for faces predicted younger than ``--child-cut`` years
  and one for the rest (children's P(female) sits nearer 0.5 and may be biased), each chosen on validation.

A 2-fold check inside validation (fit on one half, score the other) shows whether a gain is real or noise.
Writes ``--out`` (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False)


def fit_age_map(pred: np.ndarray, true: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x = median prediction, y = median true age) of ``bins`` quantile bins, y made monotone."""
    edges = np.quantile(pred, np.linspace(0, 1, bins + 1))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (pred >= lo) & (pred <= hi)
        xs.append(np.median(pred[m]))
        ys.append(np.median(true[m]))
    return np.asarray(xs), np.maximum.accumulate(np.asarray(ys))


def apply_age_map(pred: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Interpolate inside the knots; shift by the end knots' offset outside them."""
    out = np.interp(pred, xs, ys)
    out = np.where(pred < xs[0], pred + ys[0] - xs[0], out)
    return np.where(pred > xs[-1], pred + ys[-1] - xs[-1], out)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def _acc(p: np.ndarray, g: np.ndarray, t: float | np.ndarray) -> float:
    return float(((p >= t) == (g == 1)).mean())


@app.command()
def main(
    model: Path = typer.Argument(..., help="A .tflite file or an `edgeag train` folder."),
    data: Path = typer.Option(..., "--data"),
    split_file: Path = typer.Option(None, "--split-file"),
    bins: str = typer.Option("5,8,12,16,24", help="Bin counts to try for the age map."),
    child_cut: float = typer.Option(9.0, help="Predicted age below which faces get their own gender threshold."),
    out: Path = typer.Option(Path("benchmarks/results/post_hoc.json"), "--out"),
) -> None:
    """Fit age calibration and a gender threshold on val; report val 2-fold and test effects."""
    from edgeag.quantize.operating_point import accuracy_by_sex, choose_gender_threshold
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.evaluate import load_predictor, predict_all

    predictor, spec, desc = load_predictor(model)
    crops, _ = load_crops(Dataset(data, split_file), spec, None)
    va, te = crops.subset("val"), crops.subset("test")
    pv, pt = predict_all(predictor, va.x), predict_all(predictor, te.x)
    half = np.random.default_rng(0).permutation(len(va))
    a, b = half[: len(va) // 2], half[len(va) // 2:]

    res: dict = {"model": desc, "n_val": len(va), "n_test": len(te),
                 "age_mae": {"val": _mae(pv["age"], va.age), "test": _mae(pt["age"], te.age),
                             "val_half_b": _mae(pv["age"][b], va.age[b])},
                 "age_map": {}, "gender_threshold": {}}
    for k in (int(s) for s in bins.split(",")):
        xs, ys = fit_age_map(pv["age"], va.age, k)
        xa, ya = fit_age_map(pv["age"][a], va.age[a], k)
        res["age_map"][k] = {"test_mae": _mae(apply_age_map(pt["age"], xs, ys), te.age),
                             "val_half_b_mae": _mae(apply_age_map(pv["age"][b], xa, ya), va.age[b])}
    best_t, val_acc, val_acc_half = choose_gender_threshold(pv["p_female"], va.gender)  # what quantize uses
    res["gender_threshold"] = {"chosen_on_val": best_t, "val_at_0.5": val_acc_half, "val_at_chosen": val_acc,
                               "test_at_0.5": _acc(pt["p_female"], te.gender, 0.5),
                               "test_at_chosen": _acc(pt["p_female"], te.gender, best_t),
                               "test_by_sex_at_0.5": accuracy_by_sex(pt["p_female"], te.gender, 0.5),
                               "test_by_sex_at_chosen": accuracy_by_sex(pt["p_female"], te.gender, best_t)}
    young_v, young_t = pv["age"] < child_cut, pt["age"] < child_cut
    t_young = choose_gender_threshold(pv["p_female"][young_v], va.gender[young_v])[0]
    t_rest = choose_gender_threshold(pv["p_female"][~young_v], va.gender[~young_v])[0]
    by_age_t = lambda young: np.where(young, t_young, t_rest)  # noqa: E731
    res["gender_threshold_by_age"] = {"child_cut": child_cut, "young": t_young, "rest": t_rest,
                                      "val_at_chosen": _acc(pv["p_female"], va.gender, by_age_t(young_v)),
                                      "test_at_chosen": _acc(pt["p_female"], te.gender, by_age_t(young_t))}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"{desc}: test age MAE {res['age_mae']['test']:.3f} raw; with the val-fitted age map: "
          + ", ".join(f"{k} bins {v['test_mae']:.3f}" for k, v in res["age_map"].items()))
    print(f"val 2-fold, half B raw {res['age_mae']['val_half_b']:.3f}; mapped: "
          + ", ".join(f"{k} bins {v['val_half_b_mae']:.3f}" for k, v in res["age_map"].items()))
    g = res["gender_threshold"]
    print(f"gender threshold chosen on val {g['chosen_on_val']}: test {100 * g['test_at_chosen']:.2f}% "
          f"vs {100 * g['test_at_0.5']:.2f}% at 0.5; men {100 * g['test_by_sex_at_0.5']['male']:.1f}% -> "
          f"{100 * g['test_by_sex_at_chosen']['male']:.1f}%, women {100 * g['test_by_sex_at_0.5']['female']:.1f}% -> "
          f"{100 * g['test_by_sex_at_chosen']['female']:.1f}%")
    g = res["gender_threshold_by_age"]
    print(f"gender thresholds by predicted age (< {child_cut:g}: {g['young']}, else {g['rest']}), chosen on val: "
          f"val {100 * g['val_at_chosen']:.2f}%, test {100 * g['test_at_chosen']:.2f}% -> {out}")


if __name__ == "__main__":
    app()
