"""`edgeag quantize`: thin; the work is ``edgeag.quantize.workflow.quantize_and_check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeag.cli.common import err_console, handle_errors, require_tf
from edgeag.cli.options import OptionalData, SplitFile, Tta
from edgeag.errors import BadInputError


@handle_errors
def quantize(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `edgeag train`.")],
    out: Annotated[Path, typer.Option("--out", help="Output .tflite file.")],
    data: OptionalData = None,
    split_file: SplitFile = None,
    mode: Annotated[str, typer.Option(help="int8 (full integer), float16, dynamic or float32.")] = "int8",
    samples: Annotated[int, typer.Option(help="Representative crops for int8 calibration.")] = 300,
    check_split: Annotated[str, typer.Option(help="Split on which float and converted models are compared.")] = "test",
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the float-vs-converted evaluation.")] = False,
    tta: Tta = False,
    per_tensor: Annotated[bool, typer.Option(
        "--per-tensor", help="int8: one weight scale per tensor instead of per output channel (a smaller file; "
        "check the printed drop).")] = False,
    gender_threshold: Annotated[str, typer.Option(
        "--gender-threshold", help="P(female) decision point stored in the model: a number, or 'auto' to choose "
        "it on the val split (max. accuracy).")] = "0.5",
    age_prior: Annotated[float, typer.Option(
        "--age-prior", help="Divide this much of the training split's age prior out of a "
        "distribution age head (0 = as trained, 1 = every age equally likely): the oldest pulled less towards "
        "the crowded ages, at some cost on test sets shaped like the training set. MODEL_CARD.md.")] = 0.0,
) -> None:
    """Convert a trained model to TFLite (full int8 by default) with embedded metadata, and measure the drop.

    --data defaults to the training data recorded in the model's config.json; --tta bakes the test-time flip
    into the model (as evaluate --tta)."""
    from edgeag.quantize.workflow import quantize_and_check

    require_tf()
    if out.suffix.lower() != ".tflite":
        raise BadInputError(f"--out must end in .tflite: {out}")
    threshold = None
    if gender_threshold != "auto":
        try:
            threshold = float(gender_threshold)
        except ValueError:
            raise BadInputError(f"--gender-threshold must be a number or 'auto', got {gender_threshold!r}") from None
    quantize_and_check(model_dir, out, data=data, split_file=split_file, mode=mode, samples=samples, tta=tta,
                       per_tensor=per_tensor, check_split=None if no_check else check_split,
                       gender_threshold=threshold, age_prior=age_prior, log=err_console.print)
