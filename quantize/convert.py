"""``edgeag quantize``: convert a trained model folder to TFLite with embedded edgeag metadata.

``int8`` is full-integer: every op from TFLITE_BUILTINS_INT8, uint8 input (the crop as it is), int8
outputs, calibrated on crops of the training split made by the same ``crop_face`` as everything else.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeag._version import __version__
from edgeag.edge.crop import CropSpec
from edgeag.edge.metadata import write_metadata
from edgeag.edge.tflite_file import pack_model, unpack_model
from edgeag.errors import BadInputError, EdgeagError
from edgeag.quantize.output_range import fix_output_ranges
from edgeag.train.cache import CropSet
from edgeag.train.run_folder import load_model_dir

MODES = ("int8", "float16", "dynamic", "float32")


def build_metadata(config: dict, mode: str, extra: dict | None = None) -> dict:
    """The edgeag metadata for a model converted from a folder's ``config.json``."""
    return {
        "edgeag_version": __version__,
        "mode": mode,
        "crop": config["crop"],
        "input": {**config["input"], "dtype": "uint8" if mode == "int8" else "float32"},
        "outputs": {"age": "years (expectation of a softmax over the ages 0..116)"
                    if config.get("model", {}).get("age_head") == "distribution" else "years",
                    "gender": "P(female)", "ethnicity": "probabilities over labels.ethnicity"},
        "labels": config["labels"],
        "age_range": [0, 116],
        "architecture": config["model"],
        "params": config.get("params"),
        "macs": config.get("macs"),
        **({"age_prior": config["age_prior"]} if "age_prior" in config else {}),
        "training": {"data": Path(config["data"]["path"]).name, "split_file": config["data"].get("split_file")
                     and Path(config["data"]["split_file"]).name, "created": config.get("created"),
                     "seed": config.get("train", {}).get("seed"), "licence": "UTKFace: non-commercial research only",
                     # a model soup (`edgeag soup`): the averaged runs; the seed above is the first one's
                     **({"soup_of": [Path(r).name for r in config["soup"]["runs"]]} if "soup" in config else {})},
        "converted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def export_model(model):
    """The graph that goes into the .tflite: the public heads ``age``, ``gender``, ``ethnicity`` only.

    A distribution age head (``--age-loss distribution``) keeps its expectation inside the int8 graph, as a
    fixed fully-connected layer over the softmax: it lost less to int8 than exporting log-probabilities and
    taking the expectation in float at run time (test age MAE 5.345 vs 5.387 for a float model at 5.334;
    ``benchmarks/experiments/age_readout.py``).
    """
    import keras

    inp = keras.Input(model.input_shape[1:], name="image")
    y = model(inp)
    return keras.Model(inp, {k: y[k] for k in ("age", "gender", "ethnicity")}, name=model.name)


def with_flip_tta(model):
    """The model averaged with itself on the mirrored crop (test-time flip), as one graph.

    The crop and its mirror run as one batch of 2N through a single copy of the network, so the .tflite
    holds each op and bias once (two parallel branches would duplicate them) and the interpreter makes
    one pass over the weights.
    """
    import keras

    model = export_model(model)
    inp = keras.Input(model.input_shape[1:], name="image")
    both = keras.ops.concatenate([inp, keras.ops.flip(inp, axis=2)], axis=0)
    y = model(both)
    out = {}
    for k in y:
        a, b = keras.ops.split(y[k], 2, axis=0)
        out[k] = keras.layers.Average(name=k)([a, b])
    return keras.Model(inp, out, name=f"{model.name}_flip")


def convert(model, mode: str, representative: np.ndarray | None = None, per_tensor: bool = False) -> bytes:
    """Keras model -> TFLite bytes (no metadata yet).

    ``per_tensor`` (int8 only): one scale per weight tensor instead of one per output channel. The per-channel
    scales and zero points (float32 + int64 each) are about a quarter of a small model's file.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise BadInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    with tempfile.TemporaryDirectory() as tmp:
        # Keras 3 models convert through a SavedModel; its signature keeps the output names.
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if mode == "int8":
            if representative is None or len(representative) == 0:
                raise BadInputError("int8 conversion needs a non-empty representative data set")

            def rep():
                for x in representative:
                    yield [x[None].astype(np.float32)]

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.int8
            if per_tensor:
                conv._experimental_disable_per_channel = True  # the converter's (private) switch, TF 2.x
        elif mode == "float16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            return conv.convert()
        except Exception as exc:  # converter errors are long C++ dumps: keep the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgeagError(f"TFLite conversion ({mode}) failed: {first}") from None


def shorten_tensor_names(tflite: bytes) -> bytes:
    """A copy of the model whose inner tensors are named ``t<index>``.

    The converter names every tensor after its Keras/TF op path (about 50 KB in a 600 KB model). The
    runtime finds its input and outputs through the signature, by index, and those tensors keep their
    names; inner names only matter to graph viewers. Weights and graph are untouched.
    """
    model = unpack_model(tflite)
    for sg_index, sg in enumerate(model.subgraphs or []):
        keep = set(sg.inputs if sg.inputs is not None else []) | set(sg.outputs if sg.outputs is not None else [])
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == sg_index:
                keep |= {t.tensorIndex for t in (sig.inputs or []) + (sig.outputs or [])}
        for i, t in enumerate(sg.tensors or []):
            if i not in keep:
                t.name = f"t{i}"
    return pack_model(model, len(tflite))


def sample_calibration(crops: CropSet, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` random training-split crops (all crops if there is no train split) to calibrate int8 ranges."""
    if samples < 1:
        raise BadInputError("--samples must be at least 1")
    tr = crops.subset("train")
    pool = tr if len(tr) else crops
    idx = np.random.default_rng(seed).permutation(len(pool))[:samples]
    return pool.x[np.sort(idx)]


def representative_crops(config: dict, data: str | Path | None, split_file: str | Path | None, samples: int,
                         *, seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True) -> np.ndarray:
    """``samples`` random training-split crops (by the model's own crop spec) to calibrate int8 ranges."""
    from edgeag.train.cache import load_crops
    from edgeag.train.datasets import Dataset

    data = data or config["data"]["path"]
    split_file = split_file or config["data"].get("split_file")
    if samples < 1:
        raise BadInputError("--samples must be at least 1")
    spec = CropSpec.from_dict(config["crop"])
    crops, _ = load_crops(Dataset(data, split_file, seed=seed), spec, None, cache_dir=cache_dir, progress=progress)
    return sample_calibration(crops, samples, seed)


def check_mode(mode: str, per_tensor: bool = False) -> None:
    """Refuse an unknown mode, or per-tensor scales for a mode without int8 weights."""
    if mode not in MODES:
        raise BadInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if per_tensor and mode != "int8":
        raise BadInputError(f"--per-tensor applies to int8 weights only, not to mode {mode!r}")


def quantize(model_dir: str | Path, out: str | Path, *, data: str | Path | None = None,
             split_file: str | Path | None = None, mode: str = "int8", samples: int = 300,
             seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True,
             flip_tta: bool = False, per_tensor: bool = False) -> dict:
    """Convert ``model_dir`` to ``out`` (.tflite) with metadata. Returns {"path", "bytes", "mode"}.

    ``flip_tta`` bakes test-time flip into the graph: twice the compute per face, lower error.
    ``per_tensor`` quantizes int8 weights with one scale per tensor (a smaller file; see ``convert``).
    """
    check_mode(mode, per_tensor)
    model, config = load_model_dir(model_dir)
    representative = None
    if mode == "int8":
        representative = representative_crops(config, data, split_file, samples, seed=seed, cache_dir=cache_dir,
                                              progress=progress)
    return write_tflite(model, config, out, mode=mode, representative=representative, flip_tta=flip_tta,
                        per_tensor=per_tensor)


def write_tflite(model, config: dict, out: str | Path, *, mode: str, representative: np.ndarray | None,
                 flip_tta: bool = False, per_tensor: bool = False) -> dict:
    """Convert a loaded Keras model (and its folder's config) to ``out`` with metadata."""
    if flip_tta:
        model = with_flip_tta(model)
        config = {**config, "macs": 2 * config["macs"] if config.get("macs") else None}
    else:
        model = export_model(model)
    tfl = shorten_tensor_names(convert(model, mode, representative, per_tensor=per_tensor))
    if mode == "int8":
        tfl = fix_output_ranges(tfl)
    meta = build_metadata(config, mode, {"calibration_samples": int(len(representative)) if representative is not None
                                         else None, "tta": "flip" if flip_tta else None,
                                         "weight_quantization": ("per-tensor" if per_tensor else "per-channel")
                                         if mode == "int8" else None})
    blob = write_metadata(tfl, meta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    return {"path": str(out), "bytes": len(blob), "mode": mode}
