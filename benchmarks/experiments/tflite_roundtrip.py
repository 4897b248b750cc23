"""How close is a model read back from its .tflite (``edgeag train --init-from MODEL.tflite``) to the file?

    python benchmarks/experiments/tflite_roundtrip.py edge/models/edgeag_default.tflite \\
        --data ../shared/data/UTKFace.tar --split-file ../shared/data/utkface_split.csv

The file's weights are read back and its folded batch norms unfolded (``edgeag.train.from_tflite``, through
``edgeag.train.fit.load_weights``, as training does); the recovered float Keras model then answers as the file
does (mirror image averaged in, the file's age prior divided out). On the crops of ``--split``: age MAE and
gender accuracy of both, and the mean absolute difference of their ages and P(female). Writes ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edgeag.benchmarks.common import DataOpt, OutOpt, SplitFileOpt, exits_cleanly, machine_facts, write_json

app = typer.Typer(add_completion=False)


def keras_answers(model, x: np.ndarray, log_prior: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(age, P(female)) of the float model as the file computes them: flip averaged, beta x prior divided out
    (the expectation read-out of age_prior.py, the study beside this one)."""
    from age_prior import readouts

    outs = [model.predict(v.astype(np.float32), batch_size=256, verbose=0) for v in (x, x[:, :, ::-1])]
    age = readouts(tuple(o["age_logits"] for o in outs), log_prior, beta)["expectation"]
    return age, np.mean([o["gender"].reshape(-1) for o in outs], axis=0)


@app.command()
@exits_cleanly
def main(
    model_file: Annotated[Path, typer.Argument(help="A .tflite written by `edgeag quantize`.")],
    data: DataOpt,
    split_file: SplitFileOpt = None,
    split: Annotated[str, typer.Option(help="Split compared on.")] = "val",
    out: OutOpt = Path("benchmarks/results/tflite_roundtrip.json"),
) -> None:
    """File against the Keras model read back from it: age MAE, gender accuracy, per-face differences."""
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.crop import CropSpec
    from edgeag.edge.metadata import read_metadata
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset
    from edgeag.train.fit import load_weights
    from edgeag.train.model import AGE_BINS, DLDL_SIGMA, ModelConfig, build_model, train_log_prior

    meta = read_metadata(model_file)
    crops = load_crops(Dataset(data, split_file), CropSpec.from_dict(meta["crop"]), None)[0]
    train, part = crops.subset("train"), crops.subset(split)
    model = build_model(ModelConfig.from_dict(meta["architecture"]))
    load_weights(model, model_file, train)
    beta = meta.get("age_prior", {}).get("beta", 0.0)
    age_k, female_k = keras_answers(model, part.x, train_log_prior(train.age, AGE_BINS, DLDL_SIGMA), beta)
    answers = AgeGenderClassifier(model_file).predict(part.x)
    age_f, female_f = answers["age"], answers["p_female"]
    is_female = part.gender == 1

    def figures(age, female) -> dict:
        return {"age_mae": float(np.abs(age - part.age).mean()),
                "gender_accuracy": float(((female > 0.5) == is_female).mean())}

    res = {"model": str(model_file), "split": split, "faces": len(part), "file": figures(age_f, female_f),
           "recovered_keras": figures(age_k, female_k),
           "mean_abs_age_difference": float(np.abs(age_k - age_f).mean()),
           "mean_abs_p_female_difference": float(np.abs(female_k - female_f).mean()), "machine": machine_facts()}
    print({k: v for k, v in res.items() if k != "machine"})
    write_json(res, out)


if __name__ == "__main__":
    app()
