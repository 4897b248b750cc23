"""`edgeag evaluate`: a model's figures on a split, clean or through the runtime's path with corruptions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeag.cli.common import err_console, handle_errors, json_output
from edgeag.cli.options import Data, JsonOut, ModelArg, SplitFile, Tta


@handle_errors
def evaluate(
    model: ModelArg,
    data: Data,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    split_file: SplitFile = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics.json, report.md and PNGs here.")] = None,
    tta: Tta = False,
    seed: Annotated[int, typer.Option(help="Seed of the hash split (without --split-file), the corruptions and "
                                      "--limit.")] = 0,
    json_out: JsonOut = None,
    corruptions: Annotated[Optional[str], typer.Option(
        "--corruptions", metavar="all|middle|KIND[:SEVERITY],...", help="Also evaluate on degraded full images, "
        "detected afresh (kinds and severities: README, train/corruptions.py).")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="A seeded random sample of N images, through the runtime's path as with "
        "--corruptions (quick checks).")] = None,
) -> None:
    """Evaluate a model: MAE, CS@5, bias, gender and ethnicity accuracy, per age group and ethnicity.

    With --corruptions (and always on FG-NET) each image goes through the runtime's path (detector, largest
    face, crop) clean and degraded: faces found, MAE, CS@5, bias per age bucket, gender, ratios to clean.
    """
    with json_output(json_out) as sink:
        if corruptions is not None or limit is not None or _is_fgnet(data):
            m = _evaluate_robustness(model, data, split, split_file, out, tta, seed, corruptions, limit)
            show = _print_robustness
        else:
            from edgeag.train.evaluate import evaluate_model

            m = evaluate_model(model, data, split=split, split_file=split_file, out=out, tta_flip=tta, seed=seed)
            m = {k: v for k, v in m.items() if not k.startswith("_")}
            show = _print_report
        if sink is not None:
            sink.write(m, None)
    if json_out != "-":
        show(m)
    if out:
        err_console.print(f"report written to {out}")


def _is_fgnet(data: Path) -> bool:
    from edgeag.train.datasets import Dataset

    return Dataset(data).evaluation_only


def _evaluate_robustness(model, data, split, split_file, out, tta, seed, corruptions, limit) -> dict:
    from edgeag.errors import BadInputError
    from edgeag.train.corruptions import parse_corruptions
    from edgeag.train.robustness import evaluate_robustness

    try:
        passes = parse_corruptions(corruptions) if corruptions else []
    except ValueError as exc:
        raise BadInputError(f"--corruptions: {exc}") from None
    return evaluate_robustness(model, data, split=split, split_file=split_file, corruptions=passes, limit=limit,
                               seed=seed, out=out, tta_flip=tta)


def _print_robustness(m: dict) -> None:
    from edgeag.train.robustness_report import print_robustness

    print_robustness(m)


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
    console = Console()
    console.print(t)
    _print_intervals(console, m)


def _print_intervals(console, m: dict) -> None:
    ci = m["overall"].get("interval95")
    if ci and ci.get("age_mae"):
        console.print(f"95% intervals (overall): age MAE {ci['age_mae'][0]:.2f}-{ci['age_mae'][1]:.2f}, "
                      f"CS@5 {100 * ci['age_cs5'][0]:.1f}-{100 * ci['age_cs5'][1]:.1f}%, gender "
                      f"{100 * ci['gender_accuracy'][0]:.1f}-{100 * ci['gender_accuracy'][1]:.1f}%, ethnicity "
                      f"{100 * ci['ethnicity_accuracy'][0]:.1f}-{100 * ci['ethnicity_accuracy'][1]:.1f}% "
                      "(per group: metrics.json, report.md)", highlight=False)
    cov = m.get("gender_by_coverage") or {}
    if len(cov) > 1:
        console.print("gender on the most confident " + ", ".join(
            f"{100 * float(c):.0f}%: {100 * v['accuracy']:.1f}% (confidence >= {v['min_confidence']:.2f})"
            for c, v in cov.items() if float(c) < 1), highlight=False)
    w = m["worst"]
    console.print(f"worst age group: {w['by_age']['age_mae'][0]} (MAE {w['by_age']['age_mae'][1]:.2f}, "
                  f"{m['max_bucket_mae_ratio']:.2f}x overall); worst ethnicity: "
                  f"{w['by_ethnicity']['age_mae'][0]} (MAE {w['by_ethnicity']['age_mae'][1]:.2f})", highlight=False)
