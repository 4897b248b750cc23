"""The ``edgeag`` command: one grammar over the life cycle (train, quantize, evaluate, run, serve, benchmark).

Each command is thin: it parses options and calls one library function. Heavy imports happen inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgeag._version import __version__
from edgeag.cli_common import err_console, handle_errors
from edgeag.errors import EXIT_INTERRUPTED

app = typer.Typer(
    name="edgeag",
    help="Face age and gender estimation on edge devices: train, quantize, evaluate, run, serve, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeag {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """edgeag command line."""


@app.command()
@handle_errors
def train(
    data: Path = typer.Option(..., "--data", help="UTKFace folder/.tar/.tar.gz/.zip, or a Kaggle 48x48 CSV."),
    out: Path = typer.Option(..., "--out", help="Folder for the model, config, history, metrics and plots."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="CSV file,split; default: seeded hash split."),
    arch: str = typer.Option("mobilenet", help="mobilenet (default), resnet or efficientnet."),
    input_size: int = typer.Option(80, help="Crop size in pixels."),
    channels: int = typer.Option(3, help="3 = RGB, 1 = grayscale (the Kaggle CSV is grayscale)."),
    width: float = typer.Option(0.75, help="Channel multiplier."),
    depth: float = typer.Option(1.0, help="Block-count multiplier."),
    expansion: int = typer.Option(3, help="Inverted-residual expansion (mobilenet, efficientnet)."),
    dropout: float = typer.Option(0.2),
    epochs: int = typer.Option(30),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(3e-3, help="Peak learning rate (AdamW, warm-up then cosine decay)."),
    age_loss: str = typer.Option("l1", help="l1, mse, huber or distribution (softmax over ages 0-116 with "
                                 "Gaussian targets, plus L1 on its expectation)."),
    patience: int = typer.Option(8, help="Early stopping patience (epochs without val improvement)."),
    gender_weight: float = typer.Option(1.0, help="Loss weight of the gender head (age 0.1, ethnicity 0.5)."),
    gender_smoothing: float = typer.Option(0.0, help="Label smoothing of the gender targets (0.1: 0/1 -> 0.05/0.95)."),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="Ids left out of training (a list, or a CSV "
                                           "with an id column such as `edgeag audit-labels`' suspects.csv)."),
    margin: float = typer.Option(0.1, help="Crop margin around the detector box (fraction of its side)."),
    limit: Optional[int] = typer.Option(None, help="Use a random N training records (and N/4 validation): quick runs."),
    seed: int = typer.Option(0),
    augment: str = typer.Option("camera", help="camera: camera degradations (resolution, blur, exposure, noise, "
                                "JPEG) and crop jitter; jitter: crop jitter and mirror only; none."),
    cache_dir: Optional[Path] = typer.Option(None, help="Crop cache folder (default ~/.cache/edgeag or $EDGEAG_CACHE)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="A finished run's folder: start from its "
                                             "weights with a new warm-up and cosine cycle (same model settings; "
                                             "the input size may differ)."),
) -> None:
    """Train an age/gender/ethnicity model (needs edgeag\\[train]).

    Resumable: an interrupted run (Ctrl-C, a killed job) keeps a per-epoch backup in OUT/backup;
    the same command again continues from the last finished epoch. --init-from trains on from a
    finished run (a warm restart) into a new OUT.
    """
    from edgeag.train.fit import TrainConfig, train as run_train
    from edgeag.train.model import ModelConfig

    _require_tf()
    mcfg = ModelConfig(arch=arch, input_size=input_size, channels=channels, width=width, depth=depth,
                       dropout=dropout, expansion=expansion, stem_stride=1 if input_size <= 64 else 2)
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, age_loss=age_loss, patience=patience,
                       seed=seed, augment=augment, limit=limit,
                       init_from=str(init_from) if init_from else None, gender_smoothing=gender_smoothing,
                       exclude=str(exclude) if exclude else None,
                       loss_weights={"age": 0.1, "gender": gender_weight, "ethnicity": 0.5})
    m = run_train(data, out, split_file=split_file, model_cfg=mcfg, train_cfg=tcfg, crop_margin=margin,
                  cache_dir=cache_dir)
    o = m["overall"]
    if m["training"]["interrupted"]:
        # Everything up to the best epoch is written, but a script must not take this for a finished run.
        err_console.print(f"[yellow]interrupted[/]: best epoch so far written to {out} (val age MAE "
                          f"{o['age_mae']:.2f}); run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    err_console.print(f"[green]done[/]: val age MAE {o['age_mae']:.2f}, CS@5 {100 * o['age_cs5']:.1f}%, "
                      f"gender {100 * o['gender_accuracy']:.1f}%, ethnicity {100 * o['ethnicity_accuracy']:.1f}% "
                      f"-> {out}")


@app.command()
@handle_errors
def soup(
    runs: list[Path] = typer.Argument(..., help="Two or more `edgeag train` folders fine-tuned from one run."),
    data: Path = typer.Option(..., "--data", help="Data set (as for train): batch norm is re-estimated on its "
                              "train split, the soup evaluated on val."),
    out: Path = typer.Option(..., "--out", help="Folder for the averaged model (as written by train)."),
    split_file: Optional[Path] = typer.Option(None, "--split-file"),
    seed: int = typer.Option(0, help="Seed of the hash split (without --split-file)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Crop cache folder."),
) -> None:
    """Average the weights of runs fine-tuned from one ancestor into one model (a model soup; needs edgeag\\[train]).

    Same cost per face as one of them; the first run sets the input size.
    """
    from edgeag.train.soup import soup as run_soup

    _require_tf()
    m = run_soup(runs, data, out, split_file=split_file, seed=seed, cache_dir=cache_dir)
    for ingredient, o in m["ingredients"].items():
        if o:
            err_console.print(f"  {ingredient}: val age MAE {o['age_mae']:.3f}, gender {100 * o['gender_accuracy']:.2f}%, "
                              f"ethnicity {100 * o['ethnicity_accuracy']:.2f}%", highlight=False)
    o = m["overall"]
    err_console.print(f"[green]soup[/]: val age MAE {o['age_mae']:.3f}, CS@5 {100 * o['age_cs5']:.1f}%, "
                      f"gender {100 * o['gender_accuracy']:.2f}%, ethnicity {100 * o['ethnicity_accuracy']:.2f}% "
                      f"-> {out}")


@app.command("audit-labels")
@handle_errors
def audit_labels(
    model: Path = typer.Argument(..., help="A .tflite file or a folder written by `edgeag train`."),
    data: Path = typer.Option(..., "--data", help="Data set (as for train)."),
    out: Path = typer.Option(..., "--out", help="Folder for suspects.csv and the contact sheet suspects.png."),
    split: str = typer.Option("train", help="train, val, test or all."),
    split_file: Optional[Path] = typer.Option(None, "--split-file"),
    min_confidence: float = typer.Option(0.8, help="Only contradictions with |2 p(female) - 1| above this."),
    min_age: float = typer.Option(13, help="Only faces labelled this age or older (children's faces carry little "
                                  "gender signal)."),
    seed: int = typer.Option(0, help="Seed of the hash split (without --split-file)."),
) -> None:
    """List faces whose gender label the model confidently contradicts: likely label errors, to look at
    (suspects.png) and to leave out of training (`edgeag train --exclude OUT/suspects.csv`)."""
    from edgeag.train.audit import audit_labels as run_audit

    s = run_audit(model, data, out, split=split, split_file=split_file, min_confidence=min_confidence,
                  min_age=min_age, seed=seed)
    err_console.print(f"{s['suspects']} of {s['checked']} faces aged {min_age:g}+ in split {split!r}: gender label "
                      f"contradicted with confidence > {min_confidence:g} -> {out}/suspects.csv, suspects.png",
                      highlight=False)


@app.command()
@handle_errors
def evaluate(
    model: Path = typer.Argument(..., help="A .tflite file or a folder written by `edgeag train`."),
    data: Path = typer.Option(..., "--data", help="Data set (as for train), or FG-NET (evaluated whole, through "
                              "the detector, age figures only)."),
    split: str = typer.Option("test", help="train, val or test."),
    split_file: Optional[Path] = typer.Option(None, "--split-file"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write metrics.json, report.md and PNGs here."),
    tta: bool = typer.Option(False, "--tta", help="Average with the mirrored crop (test-time flip)."),
    seed: int = typer.Option(0, help="Seed of the hash split (without --split-file), the corruptions and --limit."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    corruptions: Optional[str] = typer.Option(None, "--corruptions", metavar="all|middle|KIND[:SEVERITY],...",
                                              help="Also evaluate on degraded full images, detected afresh "
                                                   "(kinds and severities: README, train/corruptions.py)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="A seeded random sample of N images, "
                                        "through the runtime's path as with --corruptions (quick checks)."),
) -> None:
    """Evaluate a model: MAE, CS@5, bias, gender and ethnicity accuracy, per age group and ethnicity.

    With --corruptions (and always on FG-NET) each image goes through the runtime's path (detector, largest
    face, crop) clean and degraded: faces found, MAE, CS@5, bias per age bucket, gender, ratios to clean.
    """
    import json

    from edgeag.train.evaluate import evaluate_model

    if corruptions is not None or limit is not None or _is_fgnet(data):
        return _evaluate_robustness(model, data, split, split_file, out, tta, seed, as_json, corruptions, limit)
    m = evaluate_model(model, data, split=split, split_file=split_file, out=out, tta_flip=tta, seed=seed)
    clean = {k: v for k, v in m.items() if not k.startswith("_")}
    if as_json:
        typer.echo(json.dumps(clean, indent=2))
    else:
        _print_report(clean)
    if out:
        err_console.print(f"report written to {out}")


def _is_fgnet(data: Path) -> bool:
    from edgeag.train.datasets import Dataset

    return Dataset(data).evaluation_only


def _evaluate_robustness(model, data, split, split_file, out, tta, seed, as_json, corruptions, limit) -> None:
    import json

    from edgeag.errors import BadInputError
    from edgeag.train.corruptions import parse_corruptions
    from edgeag.train.robustness import evaluate_robustness
    from edgeag.train.robustness_report import print_robustness

    try:
        passes = parse_corruptions(corruptions) if corruptions else []
    except ValueError as exc:
        raise BadInputError(f"--corruptions: {exc}") from None
    m = evaluate_robustness(model, data, split=split, split_file=split_file, corruptions=passes, limit=limit,
                            seed=seed, out=out, tta_flip=tta)
    if as_json:
        typer.echo(json.dumps(m, indent=2))
    else:
        print_robustness(m)
    if out:
        err_console.print(f"report written to {out}")


def _print_report(m: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{m['model']} - {m['data']['path']} [{m['split']}]" + (" +flip" if m.get("tta_flip") else ""))
    for col in ("group", "n", "age MAE", "CS@5", "bias", "gender", "ethnicity"):
        t.add_column(col, justify="left" if col == "group" else "right")

    def add(name, g, style=None):
        if g.get("n"):
            t.add_row(name, str(g["n"]), f"{g['age_mae']:.2f}", f"{100 * g['age_cs5']:.1f}%",
                      f"{g['age_mean_signed_error']:+.2f}", f"{100 * g['gender_accuracy']:.1f}%",
                      f"{100 * g['ethnicity_accuracy']:.1f}%", style=style)

    add("overall", m["overall"], "bold")
    for by, label in (("by_age", "age"), ("by_gender", ""), ("by_ethnicity", "")):
        t.add_section()
        for k, g in m[by].items():
            add(f"{label} {k}".strip(), g)
    Console().print(t)
    ci = m["overall"].get("interval95")
    if ci and ci.get("age_mae"):
        Console().print(f"95% intervals (overall): age MAE {ci['age_mae'][0]:.2f}-{ci['age_mae'][1]:.2f}, "
                        f"CS@5 {100 * ci['age_cs5'][0]:.1f}-{100 * ci['age_cs5'][1]:.1f}%, gender "
                        f"{100 * ci['gender_accuracy'][0]:.1f}-{100 * ci['gender_accuracy'][1]:.1f}%, ethnicity "
                        f"{100 * ci['ethnicity_accuracy'][0]:.1f}-{100 * ci['ethnicity_accuracy'][1]:.1f}% "
                        "(per group: metrics.json, report.md)", highlight=False)
    cov = m.get("gender_by_coverage") or {}
    if len(cov) > 1:
        Console().print("gender on the most confident " + ", ".join(
            f"{100 * float(c):.0f}%: {100 * v['accuracy']:.1f}% (confidence >= {v['min_confidence']:.2f})"
            for c, v in cov.items() if float(c) < 1), highlight=False)
    w = m["worst"]
    Console().print(f"worst age group: {w['by_age']['age_mae'][0]} (MAE {w['by_age']['age_mae'][1]:.2f}, "
                    f"{m['max_bucket_mae_ratio']:.2f}x overall); worst ethnicity: "
                    f"{w['by_ethnicity']['age_mae'][0]} (MAE {w['by_ethnicity']['age_mae'][1]:.2f})", highlight=False)


@app.command()
@handle_errors
def quantize(
    model_dir: Path = typer.Argument(..., help="Folder written by `edgeag train`."),
    out: Path = typer.Option(..., "--out", help="Output .tflite file."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data for calibration and the float-vs-quantized check "
                                        "(default: the training data recorded in config.json)."),
    split_file: Optional[Path] = typer.Option(None, "--split-file"),
    mode: str = typer.Option("int8", help="int8 (full integer), float16, dynamic or float32."),
    samples: int = typer.Option(300, help="Representative crops for int8 calibration."),
    check_split: str = typer.Option("test", help="Split on which float and converted models are compared."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the float-vs-converted evaluation."),
    tta: bool = typer.Option(False, "--tta", help="Bake test-time flip into the model: each face averaged with its "
                             "mirror image (2x compute per face; as evaluate --tta)."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="int8: one weight scale per tensor instead of per "
                                    "output channel (a smaller file; check the printed drop)."),
    gender_threshold: str = typer.Option("0.5", "--gender-threshold",
                                         help="P(female) decision point stored in the model: a number, or 'auto' "
                                              "to choose it on the val split (max. accuracy)."),
) -> None:
    """Convert a trained model to TFLite (full int8 by default) with embedded metadata, and measure the drop."""
    import json

    from edgeag.errors import BadInputError
    from edgeag.quantize.convert import quantize as run_quantize

    _require_tf()
    if out.suffix.lower() != ".tflite":
        raise BadInputError(f"--out must end in .tflite: {out}")
    if gender_threshold != "auto":
        try:
            threshold = float(gender_threshold)
        except ValueError:
            raise BadInputError(f"--gender-threshold must be a number or 'auto', got {gender_threshold!r}") from None
        if not 0.0 < threshold < 1.0:
            raise BadInputError(f"--gender-threshold must be inside (0, 1), got {threshold}")
    r = run_quantize(model_dir, out, data=data, split_file=split_file, mode=mode, samples=samples, flip_tta=tta,
                     per_tensor=per_tensor)
    err_console.print(f"[green]wrote[/] {r['path']} ({r['bytes'] / 1024:.0f} KB, {mode})")
    from edgeag.train.evaluate import evaluate_model

    config = json.loads((model_dir / "config.json").read_text())
    data = data or Path(config["data"]["path"])
    split_file = split_file or (Path(config["data"]["split_file"]) if config["data"].get("split_file") else None)
    if not no_check:  # the conversion's own cost, before any threshold is set
        f = evaluate_model(model_dir, data, split=check_split, split_file=split_file, tta_flip=tta)["overall"]
        q = evaluate_model(out, data, split=check_split, split_file=split_file)["overall"]
        err_console.print(
            f"{check_split} split: age MAE float {f['age_mae']:.3f} -> {mode} {q['age_mae']:.3f} "
            f"(+{q['age_mae'] - f['age_mae']:.3f}); gender float {100 * f['gender_accuracy']:.2f}% -> "
            f"{100 * q['gender_accuracy']:.2f}% ({100 * (q['gender_accuracy'] - f['gender_accuracy']):+.2f} points); "
            f"ethnicity {100 * f['ethnicity_accuracy']:.2f}% -> {100 * q['ethnicity_accuracy']:.2f}%")
    if gender_threshold != "auto" and threshold == 0.5:
        return
    from edgeag.quantize.operating_point import accuracy_by_sex, choose_gender_threshold, set_gender_threshold

    if gender_threshold == "auto":
        from edgeag.train.cache import load_crops
        from edgeag.train.datasets import Dataset
        from edgeag.train.evaluate import load_predictor, predict_all

        predictor, spec, _ = load_predictor(out)
        crops, _ = load_crops(Dataset(data, split_file), spec, None, progress=False)
        val = crops.subset("val")
        if len(val) == 0:
            raise BadInputError(f"--gender-threshold auto needs a val split in {data}")
        p_val = predict_all(predictor, val.x)["p_female"]
        threshold, acc, acc_half = choose_gender_threshold(p_val, val.gender)
        before, after = accuracy_by_sex(p_val, val.gender, 0.5), accuracy_by_sex(p_val, val.gender, threshold)
        err_console.print(f"gender threshold chosen on val ({len(val)} faces): {threshold:.3f} "
                          f"(val accuracy {100 * acc_half:.2f}% at 0.5 -> {100 * acc:.2f}%; men "
                          f"{100 * before['male']:.1f}% -> {100 * after['male']:.1f}%, women "
                          f"{100 * before['female']:.1f}% -> {100 * after['female']:.1f}%: check the gap)")
    set_gender_threshold(out, threshold)
    if not no_check:
        g = evaluate_model(out, data, split=check_split, split_file=split_file)["overall"]["gender_accuracy"]
        err_console.print(f"{check_split} split with gender threshold {threshold:.3f}: gender "
                          f"{100 * q['gender_accuracy']:.2f}% -> {100 * g:.2f}%")


def _require_tf() -> None:
    try:
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:
            raise ImportError
    except ImportError:
        from edgeag.errors import EdgeagError

        raise EdgeagError("this command needs TensorFlow: pip install 'edgeag[train]'", 2) from None


# Commands of the runtime, the server and the benchmark live in their own modules.
from edgeag.cli_run import predict, run  # noqa: E402
from edgeag.cli_serve import serve  # noqa: E402
from edgeag.cli_benchmark import benchmark  # noqa: E402
from edgeag.cli_report import report  # noqa: E402

app.command(help="Analyse frames from a camera, video, stream or images: boxes, age, gender, live.")(run)
app.command(help="Analyse photos: a table, or one JSON object per image with --json.")(predict)
app.command(help="Start the web interface and HTTP API (needs edgeag\\[serve]).")(serve)
app.command(help="Measure per-stage latency, FPS, size and memory on this device.")(benchmark)
app.command(help="Summarise audience events (files or MQTT): table, CSVs, PNG plots, HTML page.")(report)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
