"""``edgeag evaluate``: honest metrics overall and per age bucket, gender and ethnicity.

Keras and TFLite models go through the same path: cached crops -> ``predictor.predict`` -> metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeag.train.cache import CropSet
from edgeag.train.datasets import ETHNICITIES, GENDERS

AGE_BUCKETS = ((0, 3), (4, 8), (9, 18), (19, 28), (29, 40), (41, 60), (61, 80), (81, 200))


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 200 else f"{lo}-{hi}"


class Predictor(Protocol):
    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 crops (N, S, S, C) -> {"age": (N,), "p_female": (N,), "ethnicity": (N, 5)}."""


class KerasPredictor:
    """Adapts a Keras multi-head model to the ``Predictor`` protocol."""

    def __init__(self, model, batch_size: int = 256) -> None:
        self.model = model
        self.batch_size = batch_size

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model.predict(x.astype(np.float32), batch_size=self.batch_size, verbose=0)
        return {"age": np.asarray(out["age"]).reshape(-1), "p_female": np.asarray(out["gender"]).reshape(-1),
                "ethnicity": np.asarray(out["ethnicity"])}


def predict_all(predictor: Predictor, x: np.ndarray, tta_flip: bool = False, batch: int = 512,
                progress: bool = False) -> dict[str, np.ndarray]:
    """Predictions for all crops, in batches, optionally averaged with the mirrored crop."""
    from rich.progress import Progress

    parts: list[dict[str, np.ndarray]] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("predicting", total=len(x))
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            p = predictor.predict(xb)
            if tta_flip:
                q = predictor.predict(np.ascontiguousarray(xb[:, :, ::-1]))
                p = {k: (p[k] + q[k]) / 2 for k in p}
            parts.append(p)
            bar.advance(task, len(xb))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a proportion k/n: sound at small n and near 0 or 1."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def bootstrap_mean_interval(x: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean of ``x`` (seeded: the same data gives the same interval).
    None for fewer than two values."""
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(0, resamples, 100):  # in blocks: bounded memory for large splits
        idx = rng.integers(0, len(x), (min(100, resamples - i), len(x)))
        means[i:i + len(idx)] = x[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def _group(age_t, age_p, g_t, g_p, e_t, e_p) -> dict:
    """Figures of one group; ``g_t`` None (a data set without gender/ethnicity labels): age figures only."""
    err = age_p - age_t
    n = len(age_t)
    if n == 0:
        return {"n": 0}
    cs5 = int((np.abs(err) <= 5).sum())
    # How far each figure could move on another sample of the same size: the test split is finite
    # (2,370 faces; 38 in 81+), so a difference inside these is not evidence of a better model.
    out = {"n": int(n), "age_mae": float(np.abs(err).mean()), "age_cs5": cs5 / n,
           "age_mean_signed_error": float(err.mean()),
           "interval95": {"age_mae": bootstrap_mean_interval(np.abs(err)), "age_cs5": wilson_interval(cs5, n)}}
    if g_t is not None:
        g_ok = int(((g_p >= 0.5).astype(int) == g_t).sum())
        e_ok = int((e_p.argmax(1) == e_t).sum())
        out.update(gender_accuracy=g_ok / n, ethnicity_accuracy=e_ok / n)
        out["interval95"].update(gender_accuracy=wilson_interval(g_ok, n), ethnicity_accuracy=wilson_interval(e_ok, n))
    return out


COVERAGES = (1.0, 0.95, 0.9, 0.8)


def gender_by_coverage(g_t: np.ndarray, g_p: np.ndarray, coverages: tuple[float, ...] = COVERAGES) -> dict:
    """Gender accuracy on the most confident share of faces: what an application gets if it reports gender only
    when ``gender_confidence`` (the ``Face`` field, max(p, 1 - p)) is at least ``min_confidence``."""
    n = len(g_t)
    if n == 0:
        return {}
    confidence = np.maximum(g_p, 1 - g_p)
    order = np.argsort(-confidence, kind="stable")
    correct = ((g_p >= 0.5).astype(int) == g_t)[order]
    out = {}
    for c in coverages:
        k = max(1, int(np.ceil(c * n)))
        out[f"{c:.2f}"] = {"faces": k, "accuracy": float(correct[:k].mean()),
                           "min_confidence": float(confidence[order[k - 1]])}
    return out


def _age_only_metrics(a_t: np.ndarray, a_p: np.ndarray) -> dict:
    res = {"overall": _group(a_t, a_p, None, None, None, None), "by_age": {}}
    for lo, hi in AGE_BUCKETS:
        m = (a_t >= lo) & (a_t <= hi)
        res["by_age"][bucket_name(lo, hi)] = _group(a_t[m], a_p[m], None, None, None, None)
    groups = {k: v for k, v in res["by_age"].items() if v["n"]}
    wa = max(groups, key=lambda k: groups[k]["age_mae"])
    res["worst"] = {"by_age": {"age_mae": [wa, groups[wa]["age_mae"]]}}
    res["max_bucket_mae_ratio"] = groups[wa]["age_mae"] / max(res["overall"]["age_mae"], 1e-9)
    return res


def compute_metrics(age_true: np.ndarray, gender_true: np.ndarray | None, eth_true: np.ndarray | None,
                    pred: dict[str, np.ndarray]) -> dict:
    """Overall metrics and the same per age bucket, gender and ethnicity, with the worst groups named.

    ``gender_true`` None (a data set with ages only, e.g. FG-NET): age figures overall and per age bucket only.
    """
    a_t, a_p = age_true.astype(np.float64), pred["age"].astype(np.float64)
    if gender_true is None:
        return _age_only_metrics(a_t, a_p)
    g_t, e_t = gender_true.astype(int), eth_true.astype(int)
    g_p, e_p = pred["p_female"], pred["ethnicity"]
    args = lambda m: (a_t[m], a_p[m], g_t[m], g_p[m], e_t[m], e_p[m])  # noqa: E731
    everyone = np.ones(len(a_t), bool)
    res = {"overall": _group(*args(everyone)), "by_age": {}, "by_gender": {}, "by_ethnicity": {}}
    for lo, hi in AGE_BUCKETS:
        res["by_age"][bucket_name(lo, hi)] = _group(*args((a_t >= lo) & (a_t <= hi)))
    for gi, name in enumerate(GENDERS):
        res["by_gender"][name] = _group(*args(g_t == gi))
    for ei, name in enumerate(ETHNICITIES):
        res["by_ethnicity"][name] = _group(*args(e_t == ei))
    conf = np.zeros((5, 5), int)
    np.add.at(conf, (e_t, e_p.argmax(1)), 1)
    gconf = np.zeros((2, 2), int)
    np.add.at(gconf, (g_t, (g_p >= 0.5).astype(int)), 1)
    res["confusion"] = {"gender": gconf.tolist(), "ethnicity": conf.tolist()}
    res["gender_by_coverage"] = gender_by_coverage(g_t, g_p)
    worst = {}
    for by in ("by_age", "by_gender", "by_ethnicity"):
        groups = {k: v for k, v in res[by].items() if v.get("n", 0) > 0}
        wa = max(groups, key=lambda k: groups[k]["age_mae"])
        wg = min(groups, key=lambda k: groups[k]["gender_accuracy"])
        worst[by] = {"age_mae": [wa, groups[wa]["age_mae"]], "gender_accuracy": [wg, groups[wg]["gender_accuracy"]]}
    res["worst"] = worst
    res["max_bucket_mae_ratio"] = worst["by_age"]["age_mae"][1] / max(res["overall"]["age_mae"], 1e-9)
    return res


def evaluate_crops(predictor: Predictor, crops: CropSet, split: str, tta_flip: bool = False,
                   progress: bool = False) -> dict:
    pred = predict_all(predictor, crops.x, tta_flip=tta_flip, progress=progress)
    m = compute_metrics(crops.age, crops.gender, crops.ethnicity, pred)
    m["split"] = split
    m["tta_flip"] = tta_flip
    m["_pred"] = pred  # kept in memory for plots; dropped before writing JSON
    return m


def markdown_table(m: dict) -> str:
    """The report as Markdown: one row per group."""
    lines = ["| group | n | age MAE (95% interval) | CS@5 | mean signed error | gender acc. (95% interval) | "
             "ethnicity acc. |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def row(name, g):
        if not g.get("n"):
            return f"| {name} | 0 | | | | | |"
        ci = g.get("interval95") or {}
        a, gi = ci.get("age_mae"), ci.get("gender_accuracy")
        a_txt = f" ({a[0]:.2f}-{a[1]:.2f})" if a else ""
        g_txt = f" ({100 * gi[0]:.1f}-{100 * gi[1]:.1f})" if gi else ""
        return (f"| {name} | {g['n']} | {g['age_mae']:.2f}{a_txt} | {100 * g['age_cs5']:.1f}% | "
                f"{g['age_mean_signed_error']:+.2f} | {100 * g['gender_accuracy']:.1f}%{g_txt} | "
                f"{100 * g['ethnicity_accuracy']:.1f}% |")

    lines.append(row("**overall**", m["overall"]))
    for by, label in (("by_age", "age"), ("by_gender", "gender"), ("by_ethnicity", "ethnicity")):
        for k, g in m[by].items():
            lines.append(row(f"{label} {k}", g))
    w = m["worst"]
    lines.append("")
    lines.append(f"Worst age bucket by MAE: {w['by_age']['age_mae'][0]} ({w['by_age']['age_mae'][1]:.2f} years, "
                 f"{m['max_bucket_mae_ratio']:.2f}x overall). Worst ethnicity by MAE: "
                 f"{w['by_ethnicity']['age_mae'][0]} ({w['by_ethnicity']['age_mae'][1]:.2f}); by gender accuracy: "
                 f"{w['by_ethnicity']['gender_accuracy'][0]} ({100 * w['by_ethnicity']['gender_accuracy'][1]:.1f}%).")
    cov = m.get("gender_by_coverage") or {}
    if len(cov) > 1:
        lines.append("")
        lines.append("Gender reported only above a confidence (the `gender_confidence` field):")
        lines.append("")
        lines.append("| share of faces kept | min. confidence | gender acc. |")
        lines.append("| ---: | ---: | ---: |")
        for c, v in cov.items():
            lines.append(f"| {100 * float(c):.0f}% | {v['min_confidence']:.2f} | {100 * v['accuracy']:.1f}% |")
    return "\n".join(lines) + "\n"


def write_report(m: dict, out_dir: str | Path, age_true: np.ndarray | None = None, title: str = "") -> list[Path]:
    """metrics.json, report.md and PNGs (error by age, confusion matrices) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = m.get("_pred")
    clean = {k: v for k, v in m.items() if not k.startswith("_")}
    files = [out / "metrics.json", out / "report.md"]
    files[0].write_text(json.dumps(clean, indent=2))
    files[1].write_text(f"# {title or 'Evaluation'}\n\n" + markdown_table(clean))

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    names = list(clean["by_age"])
    maes = [clean["by_age"][k].get("age_mae", 0) for k in names]
    bias = [clean["by_age"][k].get("age_mean_signed_error", 0) for k in names]
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, maes, 0.4, label="MAE")
    axes[0].bar(x + 0.2, bias, 0.4, label="mean signed error")
    axes[0].axhline(clean["overall"]["age_mae"], color="k", ls="--", lw=1, label="overall MAE")
    axes[0].set_xticks(x, names)
    axes[0].set_title("age error by true age")
    axes[0].set_ylabel("years")
    axes[0].legend()
    for ax, key, labels in ((axes[1], "gender", GENDERS), (axes[2], "ethnicity", ETHNICITIES)):
        c = np.array(clean["confusion"][key], float)
        cn = c / np.maximum(c.sum(1, keepdims=True), 1)
        ax.imshow(cn, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{100 * cn[i, j]:.0f}%\n({int(c[i, j])})", ha="center", va="center", fontsize=8,
                        color="white" if cn[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{key} confusion")
    if title:  # across the figure: a long model/data name overflowed the first panel's title
        fig.suptitle(title)
    fig.tight_layout()
    files.append(out / "error_by_age.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    if pred is not None and age_true is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(age_true, pred["age"], s=3, alpha=0.3)
        ax.plot([0, 100], [0, 100], "k--", lw=1)
        ax.set_xlabel("true age")
        ax.set_ylabel("predicted age")
        ax.set_title("predicted vs. true age")
        fig.tight_layout()
        files.append(out / "age_scatter.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


def load_predictor(model: str | Path, threads: int | None = None):
    """(predictor, CropSpec, description) for a ``.tflite`` file or an ``edgeag train`` folder."""
    from edgeag.edge.crop import CropSpec
    from edgeag.errors import ModelError

    p = Path(model)
    if p.is_dir():
        from edgeag.train.run_folder import load_model_dir

        keras_model, config = load_model_dir(p)
        return KerasPredictor(keras_model), CropSpec.from_dict(config["crop"]), f"{p.name} (Keras float32)"
    if p.suffix.lower() == ".tflite" or p.is_file():
        from edgeag.edge.classifier import AgeGenderClassifier

        clf = AgeGenderClassifier(p, threads=threads)
        return clf, clf.crop_spec, f"{p.name} (TFLite {clf.metadata.get('mode', '?')})"
    raise ModelError(f"model not found: {p} (give a .tflite file or a folder written by `edgeag train`)")


def _say_on_screen(warnings: list[str | None]) -> None:
    from rich.console import Console

    for w in filter(None, warnings):
        Console(stderr=True, soft_wrap=True).print(f"warning: {w}", style="yellow", highlight=False, markup=False)


def evaluate_model(model: str | Path, data: str | Path, *, split: str = "test", split_file: str | Path | None = None,
                   out: str | Path | None = None, tta_flip: bool = False, seed: int = 0,
                   cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Evaluate a Keras folder or TFLite file on one split; write the report to ``out`` if given."""
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset, channel_warning

    predictor, spec, desc = load_predictor(model)
    dataset = Dataset(data, split_file, seed=seed)
    crops, skipped = load_crops(dataset, spec, None, cache_dir=cache_dir, progress=progress)
    _say_on_screen([channel_warning(dataset, spec.channels, "the model"),
                    f"{Path(data).name}: {skipped.summary()} (malformed or unreadable)" if skipped.total else None])
    sub = crops.subset(split)
    if len(sub) == 0:
        from edgeag.errors import BadInputError

        raise BadInputError(f"no records of split {split!r} in {data}")
    m = evaluate_crops(predictor, sub, split, tta_flip=tta_flip, progress=progress)
    m["model"] = desc
    m["data"] = {"path": Path(data).name, "split_file": Path(split_file).name if split_file else None,
                 "n": len(sub), "no_face_fallback": int(sub.fallback.sum()), "skipped": skipped.total}
    if out:
        write_report(m, out, sub.age, title=f"{desc} on {Path(data).name} [{split}]")
    return m
