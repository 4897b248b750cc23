"""Where should a distribution age head take its expectation? Measured on a trained model.

    python benchmarks/experiments/age_readout.py RUN_FOLDER \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

A model trained with ``--age-loss distribution`` predicts a softmax over the ages 0..116. Its age is the
expectation of that distribution, which can be computed

- **inside the int8 graph** (a fixed fully-connected layer over the int8 softmax): the probabilities are
  rounded to steps of 1/256, so the many small tail probabilities round to zero or double;
- **in the runtime, in float**: the graph ends in LOG_SOFTMAX, whose int8 output covers [-16, 0] in steps
  of 1/16, and the runtime takes softmax and expectation of 117 numbers per face in NumPy (``LogProbAges``
  below: the product runtime only reads ``age`` in years).

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


def export_log_probs(model):
    """The model with its age head exported as log-probabilities over the ages (``age_logits``)."""
    import keras

    inp = keras.Input(model.input_shape[1:], name="image")
    y = model(inp)
    out = {"gender": y["gender"], "ethnicity": y["ethnicity"],
           "age_logits": keras.layers.Activation("log_softmax", name="age_logits")(y["age_logits"])}
    return keras.Model(inp, out, name=model.name)


class LogProbAges:
    """A ``Predictor`` for a file from ``export_log_probs``: the expectation is taken here, in float."""

    def __init__(self, path: Path) -> None:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        self.np = np
        self.runner = Interpreter(model_path=str(path)).get_signature_runner()
        details = self.runner.get_output_details()
        self.quant = {k: d["quantization"] for k, d in details.items()}
        self.in_detail = next(iter(self.runner.get_input_details().values()))

    def predict(self, x):
        np = self.np
        out = {}
        for i in range(len(x)):
            res = self.runner(image=x[i:i + 1].astype(self.in_detail["dtype"]))
            for k, v in res.items():
                s, z = self.quant[k]
                out.setdefault(k, []).append((v.astype(np.float32) - z) * s if s else v.astype(np.float32))
        o = {k: np.concatenate(v) for k, v in out.items()}
        p = np.exp(o["age_logits"] - o["age_logits"].max(axis=1, keepdims=True))
        age = (p @ np.arange(p.shape[1], dtype=np.float32)) / p.sum(axis=1)
        return {"age": age, "p_female": o["gender"].reshape(-1), "ethnicity": o["ethnicity"]}


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
    from edgeag.edge.crop import CropSpec
    from edgeag.quantize.convert import build_metadata, convert, export_model, representative_crops
    from edgeag.train.run_folder import load_model_dir
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.evaluate import evaluate_model, predict_all

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
            f = Path(tmp) / "graph.tflite"
            f.write_bytes(write_metadata(convert(export_model(model), "int8", rep), meta))
            res["int8_expectation_in_graph"] = evaluate_model(f, data, **kw)["overall"]["age_mae"]
            g = Path(tmp) / "runtime.tflite"
            g.write_bytes(convert(export_log_probs(model), "int8", rep))
            crops = load_crops(Dataset(data, split_file), CropSpec.from_dict(config["crop"]), None)[0].subset(split)
            pred = predict_all(LogProbAges(g), crops.x)
            res["int8_log_probs_runtime"] = float(abs(pred["age"] - crops.age).mean())
    except BadInputError as exc:
        raise SystemExit(str(exc)) from None
    for k in ("float", "int8_expectation_in_graph", "int8_log_probs_runtime"):
        console.print(f"{k:28s} {split} age MAE {res[k]:.3f}", highlight=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    app()
