"""Where should a distribution age head take its expectation? Measured on a trained model.

    python -m edgeag.benchmarks.age_readout RUN_FOLDER \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

A model trained with ``--age-loss distribution`` predicts a softmax over the ages 0..116. Its age is the
expectation of that distribution, which can be computed

- **inside the int8 graph** (a fixed fully-connected layer over the int8 softmax): the probabilities are
  rounded to steps of 1/256, so the many small tail probabilities round to zero or double;
- **in the runtime, in float**: the graph ends in LOG_SOFTMAX, whose int8 output covers [-16, 0] in steps
  of 1/16, and ``AgeGenderClassifier`` takes softmax and expectation of 117 numbers per face in NumPy.

The second looked safer on paper; the first measured better, so ``edgeag quantize`` ships it.

Both files are converted from the same model with the same calibration crops and scored on the same split
as the float model. Writes ``--out`` (JSON).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    model_dir: Path = typer.Argument(..., help="An `edgeag train` folder trained with --age-loss distribution."),
    data: Path = typer.Option(..., "--data"),
    split_file: Path = typer.Option(None, "--split-file"),
    split: str = typer.Option("test"),
    samples: int = typer.Option(300, help="Calibration crops (as `edgeag quantize`)."),
    out: Path = typer.Option(Path("benchmarks/results/age_readout.json"), "--out"),
) -> None:
    """Test age MAE of the float model and of int8 files with either age readout."""
    from rich.console import Console

    from edgeag.edge.metadata import write_metadata
    from edgeag.errors import BadInputError
    from edgeag.quantize.convert import build_metadata, convert, export_model, load_model_dir, representative_crops
    from edgeag.train.evaluate import evaluate_model

    console = Console(stderr=True)
    model, config = load_model_dir(model_dir)
    if config.get("model", {}).get("age_head") != "distribution":
        raise SystemExit(f"{model_dir} has no distribution age head (train it with --age-loss distribution)")
    rep = representative_crops(config, data, split_file, samples)
    meta = build_metadata(config, "int8")
    res = {"model": str(model_dir), "split": split}
    kw = dict(split=split, split_file=split_file)
    try:
        res["float"] = evaluate_model(model_dir, data, **kw)["overall"]["age_mae"]
        with tempfile.TemporaryDirectory() as tmp:
            for name, readout in (("int8_expectation_in_graph", "graph"), ("int8_log_probs_runtime", "runtime")):
                graph = export_model(model, age_readout=readout)
                f = Path(tmp) / f"{name}.tflite"
                f.write_bytes(write_metadata(convert(graph, "int8", rep), meta))
                res[name] = evaluate_model(f, data, **kw)["overall"]["age_mae"]
                console.print(f"{name}: {f.stat().st_size / 1024:.0f} KB", highlight=False)
    except BadInputError as exc:
        raise SystemExit(str(exc)) from None
    for k in ("float", "int8_expectation_in_graph", "int8_log_probs_runtime"):
        console.print(f"{k:28s} {split} age MAE {res[k]:.3f}", highlight=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    app()
