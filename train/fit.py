"""``edgeag train``: fit a multi-head model on cached crops and write a self-contained model folder.

Folder contents: ``model.keras``, ``config.json`` (everything to rebuild and to preprocess),
``history.csv``, ``metrics.json`` (validation), ``curves.png``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeag._version import __version__
from edgeag.edge.crop import CropSpec
from edgeag.errors import BadInputError
from edgeag.train.cache import CropSet, load_crops
from edgeag.train.config import ModelConfig, TrainConfig  # noqa: F401 - TrainConfig re-exported
from edgeag.train.datasets import Dataset, channel_warning

AGE_LOSSES = ("l1", "mse", "huber", "distribution")
AUGMENTATIONS = ("camera", "jitter", "none")


def _tf_dataset(crops: CropSet, batch: int, shuffle: bool, augment, seed: int, age_logits: bool = False):
    import tensorflow as tf

    y = {"age": crops.age.reshape(-1, 1), "gender": crops.gender.astype(np.float32).reshape(-1, 1),
         "ethnicity": crops.ethnicity.astype(np.int32)}
    if age_logits:  # the distribution head's target is the age itself; the loss spreads it
        y["age_logits"] = y["age"]
    ds = tf.data.Dataset.from_tensor_slices((crops.x, y))
    if shuffle:
        ds = ds.shuffle(len(crops), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, t: (tf.cast(x, tf.float32), t), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda x, t: (augment(x), t), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(2)


def _progress_callback(epochs: int, steps: int):
    import keras
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)

    class RichProgress(keras.callbacks.Callback):
        """One live bar per epoch, then one summary line, so logs stay readable when piped."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()
            self.bar = Progress(TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.description}"), TimeRemainingColumn(), console=console,
                                transient=True, disable=not console.is_terminal)
            self.bar.start()
            self.task = self.bar.add_task("", total=steps)

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.bar.update(self.task, completed=batch + 1,
                            description=f"loss {logs.get('loss', 0):.3f} age MAE {logs.get('age_mae', 0):.2f}")

        def on_epoch_end(self, epoch, logs=None):
            self.bar.stop()
            logs = logs or {}
            console.print(
                f"epoch {epoch + 1:3d}/{epochs}  {time.time() - self.t0:5.0f}s  "
                f"age MAE {logs.get('age_mae', 0):.2f}/{logs.get('val_age_mae', 0):.2f}  "
                f"gender {logs.get('gender_binary_accuracy', 0):.3f}/{logs.get('val_gender_binary_accuracy', 0):.3f}  "
                f"eth {logs.get('ethnicity_sparse_categorical_accuracy', 0):.3f}/"
                f"{logs.get('val_ethnicity_sparse_categorical_accuracy', 0):.3f}  (train/val)", highlight=False)

    return RichProgress()


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 256, seed: int = 0, progress: bool = True,
                          transform=None) -> None:
    """Re-estimate every BatchNorm layer's moving statistics on the training crops, through ``transform(batch,
    seed)`` (the training augmentation, as in an epoch) when given, else as they are.

    During training the moving averages follow the last few augmented batches (momentum 0.9), so at the
    end they describe brightness/contrast-jittered images, not the camera's. Replacing them by the exact
    mean of per-batch statistics over the clean training set removed a +3.1-year bias and lowered val
    age MAE from 7.18 to 6.31 for a model trained on clean crops. A model trained with camera degradations is
    better re-estimated on its own training stream: val age MAE 6.55 -> 6.41 clean and 6.99 -> 6.85 over the
    corruption catalogue against clean crops (MODEL_CARD.md, benchmarks/experiments/bn_stream.py).
    """
    import keras
    from rich.progress import Progress

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    old = [layer.momentum for layer in bns]
    idx = np.random.default_rng(seed).permutation(len(x))
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("recalibrating batch norm", total=len(x))
        for k, i in enumerate(range(0, len(idx), batch_size)):
            for layer in bns:
                layer.momentum = k / (k + 1)  # cumulative mean of batch statistics
            # Training mode only updates the BN statistics here: no loss, no gradient step. Dropout sits
            # after the last BN layer, so it does not disturb them.
            batch = x[np.sort(idx[i:i + batch_size])].astype(np.float32)
            model(batch if transform is None else transform(batch, seed + k), training=True)
            bar.advance(task, min(batch_size, len(x) - i))
    for layer, m in zip(bns, old):
        layer.momentum = m


def plot_history(history_csv: Path, out_png: Path) -> None:
    """Training curves: loss, age MAE, gender and ethnicity accuracy, train against val."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    h = pd.read_csv(history_csv)
    panels = [("loss", "loss"), ("age_mae", "age MAE (years)"), ("gender_binary_accuracy", "gender accuracy"),
              ("ethnicity_sparse_categorical_accuracy", "ethnicity accuracy")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, title) in zip(axes, panels):
        if key in h:
            ax.plot(h["epoch"] + 1, h[key], label="train")
        if f"val_{key}" in h:
            ax.plot(h["epoch"] + 1, h[f"val_{key}"], label="val")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def _previous_history(history_csv: Path) -> tuple[float | None, int]:
    """(best val_loss, epochs logged) of an earlier run's history.csv; (None, 0) if there is none."""
    if not history_csv.is_file() or history_csv.stat().st_size == 0:
        return None, 0
    import csv

    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    return (min(losses) if losses else None), len(rows)


def starting_config(source: Path, what: str = "--init-from") -> dict:
    """The settings of ``source``: a finished run's config.json, or the metadata of a ``.tflite`` written by
    ``edgeag quantize`` (its ``model`` and ``crop``; train/from_tflite.py reads its weights)."""
    if source.suffix == ".tflite" and source.is_file():
        from edgeag.edge.metadata import read_metadata
        from edgeag.errors import ModelError

        try:
            meta = read_metadata(source)
        except ModelError as exc:
            raise BadInputError(f"{what} {exc}") from None
        if meta.get("mode") not in ("int8", "float32") or "architecture" not in meta:
            raise BadInputError(f"{what} {source}: training on needs an int8 or float32 model written by "
                                f"`edgeag quantize` (this one: {meta.get('mode')})")
        return {"model": meta["architecture"], "crop": meta["crop"]}
    cfg_file, ckpt = source / "config.json", source / "model.keras"
    if not cfg_file.is_file() or not ckpt.is_file():
        raise BadInputError(f"{what} {source}: neither a folder written by `edgeag train` (no config.json/"
                            "model.keras) nor a .tflite written by `edgeag quantize`")
    return json.loads(cfg_file.read_text())


def check_compatible(source: Path, mcfg: ModelConfig, spec: CropSpec, what: str = "--init-from",
                     may_differ: tuple[str, ...] = ("input_size", "size", "exposure_norm")) -> None:
    """Refuse ``source`` (a finished run or a model file; ``what`` names it in the message) unless its
    weights fit ``mcfg``/``spec``.

    The input size may differ: the network ends in global pooling, so no weight's shape depends on it; so may
    ``exposure_norm``, which has no weights.
    Any other difference (width, architecture, heads, crop margin) is refused rather than half-loaded.
    ``may_differ`` names the settings (model or crop keys) allowed to differ.
    """
    prev = starting_config(source, what)

    def size_free(d: dict) -> dict:
        return {k: v for k, v in d.items() if k not in may_differ}

    mine = {**size_free(mcfg.to_dict()), "crop": size_free(spec.to_dict())}
    # Through ModelConfig, so a run written before a setting existed reads as that setting's default.
    theirs = {**size_free(ModelConfig.from_dict(prev.get("model", {})).to_dict()),
              "crop": size_free(prev.get("crop") or {})}
    diff = sorted(k for k in mine if mine[k] != theirs.get(k))
    if diff:
        raise BadInputError(f"{what} {source}: its model differs in {', '.join(diff)} "
                            f"({', '.join(f'{k}={theirs.get(k)}' for k in diff)}); pass the same settings")


BN_UNFOLD_SAMPLES = 2048  # training crops that measure the statistics of batch norms unfolded from a .tflite


def load_weights(model, source: Path, train: CropSet, seed: int = 0) -> None:
    """Set ``model`` to the weights of ``source``: a finished run's model.keras, or a ``.tflite`` written by
    ``edgeag quantize`` (weights read back, batch norm unfolded on ``train``'s crops: train/from_tflite.py).

    Training on from a finished run with a fresh warm-up and cosine cycle is how the epochs of one
    run are extended (a warm restart); at a higher input size it is progressive resizing.
    """
    import keras

    if source.suffix == ".tflite":
        from edgeag.edge.metadata import read_metadata
        from edgeag.train.from_tflite import load_into

        sample = train.sample(min(len(train), BN_UNFOLD_SAMPLES), seed)
        load_into(model, source, read_metadata(source), sample.x, train.age)
    else:
        model.set_weights(keras.models.load_model(source / "model.keras", compile=False).get_weights())


def _check(tcfg: TrainConfig) -> None:
    """Refuse bad settings before any data is read."""
    if tcfg.age_loss not in AGE_LOSSES:
        raise BadInputError(f"unknown age loss {tcfg.age_loss!r}; choose from {', '.join(AGE_LOSSES)}")
    if not 0 <= tcfg.gender_smoothing < 1:
        raise BadInputError(f"--gender-smoothing must be in [0, 1), got {tcfg.gender_smoothing}")
    if tcfg.augment not in AUGMENTATIONS:
        raise BadInputError(f"unknown augmentation {tcfg.augment!r}; choose from {', '.join(AUGMENTATIONS)}")


def _training_crops(data, split_file, spec: CropSpec, tcfg: TrainConfig, cache_dir, progress: bool, console):
    """(train crops, val crops, info for config.json): cached crops, less ``--exclude``d ids, ``--limit``ed."""
    t_prep = time.time()
    dataset = Dataset(data, split_file, seed=tcfg.seed)
    if dataset.evaluation_only:
        raise BadInputError(f"{data} is FG-NET, an evaluation set only: train on UTKFace and evaluate on it "
                            "with `edgeag evaluate MODEL --data FGNET.tar`")
    crops, skipped = load_crops(dataset, spec, None, cache_dir=cache_dir, progress=progress)
    tr, va = crops.subset("train"), crops.subset("val")
    excluded = 0
    if tcfg.exclude:
        from edgeag.train.audit import read_id_list

        drop = np.isin(tr.ids, sorted(read_id_list(tcfg.exclude)))
        excluded = int(drop.sum())
        tr = tr.select(~drop)
        console.print(f"--exclude: left {excluded} training records out (validation untouched)", highlight=False)
    if tcfg.limit:
        tr, va = tr.sample(tcfg.limit, tcfg.seed), va.sample(max(1, tcfg.limit // 4), tcfg.seed)
    if len(tr) == 0 or len(va) == 0:
        raise BadInputError(f"{data}: need train and val records, found {len(tr)} train and {len(va)} val")
    console.print(f"data: {len(tr)} train, {len(va)} val crops of {spec.size}x{spec.size}x{spec.channels} "
                  f"({int(crops.fallback.sum())} without a detected face used whole; {skipped.summary()}) "
                  f"in {time.time() - t_prep:.0f}s", highlight=False)
    if warning := channel_warning(dataset, spec.channels, "the model being trained (--channels 3)"):
        console.print(f"warning: {warning}", style="yellow", highlight=False)
    info = {"path": str(Path(data)), "split_file": str(split_file) if split_file else None, "train": len(tr),
            "val": len(va), "no_face_fallback": int(crops.fallback.sum()), "excluded_from_train": excluded}
    return tr, va, info


def _compiled_model(mcfg: ModelConfig, tcfg: TrainConfig, spec: CropSpec, tr: CropSet, steps: int):
    """The model (fresh, or a finished run's weights), compiled with AdamW, warm-up + cosine decay and the
    losses by head."""
    import keras

    from edgeag.train.model import age_distribution_loss, build_model

    keras.utils.set_random_seed(tcfg.seed)
    # Start the age head at the loss's best constant (median for L1, mean otherwise).
    start_age = float(np.median(tr.age) if tcfg.age_loss in ("l1", "distribution") else tr.age.mean())
    model = build_model(mcfg, mean_age=start_age)
    if tcfg.init_from:  # checked against mcfg and spec in train()
        load_weights(model, Path(tcfg.init_from), tr, tcfg.seed)
    schedule = keras.optimizers.schedules.CosineDecay(
        tcfg.lr / 10, decay_steps=max(1, steps * tcfg.epochs - steps), warmup_target=tcfg.lr, warmup_steps=steps)
    age_loss = {"l1": "mean_absolute_error", "mse": "mean_squared_error", "distribution": "mean_absolute_error",
                "huber": keras.losses.Huber(delta=3.0)}[tcfg.age_loss]
    losses = {"age": age_loss, "gender": keras.losses.BinaryCrossentropy(label_smoothing=tcfg.gender_smoothing),
              "ethnicity": "sparse_categorical_crossentropy"}
    weights = dict(tcfg.loss_weights)
    if mcfg.age_head == "distribution":
        losses["age_logits"] = age_distribution_loss
        weights.setdefault("age_logits", 1.0)
        tcfg.loss_weights = weights
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=tcfg.weight_decay), loss=losses,
                  loss_weights=weights, metrics={"age": ["mae"], "gender": ["binary_accuracy"],
                                                 "ethnicity": ["sparse_categorical_accuracy"]})
    return model


def _run_config(mcfg: ModelConfig, tcfg: TrainConfig, spec: CropSpec, data_info: dict, model) -> dict:
    """config.json: everything to rebuild the model and to prepare its input."""
    from edgeag.train.model import count_macs

    return {
        "edgeag_version": __version__, "model": mcfg.to_dict(), "crop": spec.to_dict(), "train": asdict(tcfg),
        "input": {"dtype": "uint8", "range": [0, 255], "normalisation": "inside the model: x / 127.5 - 1",
                  "color": "RGB" if spec.channels == 3 else "gray"},
        "heads": {"age": "years (regression)", "gender": "P(female)", "ethnicity": "softmax over labels"},
        "labels": {"gender": ["male", "female"], "ethnicity": ["White", "Black", "Asian", "Indian", "Others"]},
        "data": data_info, "params": model.count_params(), "macs": count_macs(model),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _fit(model, ds_tr, ds_va, out: Path, tcfg: TrainConfig, steps: int, progress: bool, console) -> dict:
    """Fit with a best checkpoint, early stopping and a per-epoch backup (a killed run resumes where it
    stopped; Keras deletes the backup when fit() completes). Returns the run's timing for config.json."""
    import keras

    ckpt, backup = out / "model.keras", out / "backup"
    best_so_far, epochs_before = _previous_history(out / "history.csv") if backup.is_dir() else (None, 0)
    if epochs_before:
        console.print(f"resuming after epoch {epochs_before} from {backup}", highlight=False)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup)),
        keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=tcfg.patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(out / "history.csv", append=bool(epochs_before)),
    ] + ([_progress_callback(tcfg.epochs, steps)] if progress else [])
    t0, interrupted = time.time(), False
    try:
        model.fit(ds_tr, validation_data=ds_va, epochs=tcfg.epochs, callbacks=callbacks, verbose=0)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: keeping the best epoch so far[/]")
    wall = time.time() - t0
    if not ckpt.is_file():
        model.save(ckpt)  # interrupted during the first epoch: save what there is
    if (out / "history.csv").is_file() and (out / "history.csv").stat().st_size > 0:
        plot_history(out / "history.csv", out / "curves.png")
    epochs_run = _previous_history(out / "history.csv")[1]
    return dict(train_seconds=round(wall, 1), epochs_run=epochs_run, interrupted=interrupted,
                seconds_per_epoch=round(wall / max(1, epochs_run - epochs_before), 1),
                resumed_after_epoch=epochs_before)


def train(data: str | Path, out: str | Path, *, split_file: str | Path | None = None,
          model_cfg: ModelConfig | None = None, train_cfg: TrainConfig | None = None,
          crop_margin: float = 0.1, cache_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train on ``data`` and write the model folder ``out``. Returns the validation metrics.

    Ctrl-C stops training and still writes everything from the best epoch so far.
    """
    mcfg, tcfg = model_cfg or ModelConfig(), train_cfg or TrainConfig()
    _check(tcfg)
    # The age loss decides the head: a label distribution needs the softmax-over-ages head.
    mcfg.age_head = "distribution" if tcfg.age_loss == "distribution" else "regression"
    spec = CropSpec(size=mcfg.input_size, channels=mcfg.channels, margin=crop_margin)
    if tcfg.init_from:  # before any data is read
        check_compatible(Path(tcfg.init_from), mcfg, spec)
    from rich.console import Console

    console = Console(stderr=True)
    tr, va, data_info = _training_crops(data, split_file, spec, tcfg, cache_dir, progress, console)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    steps = int(np.ceil(len(tr) / tcfg.batch_size))
    model = _compiled_model(mcfg, tcfg, spec, tr, steps)
    config = _run_config(mcfg, tcfg, spec, data_info, model)
    (out / "config.json").write_text(json.dumps(config, indent=2))  # --init-from and resuming read it

    augment = transform = None
    if tcfg.augment != "none":
        from edgeag.train.augment import augmenter, batch_augmentation

        transform = batch_augmentation(tcfg.augment, spec.margin, tcfg.max_brightening)
        augment = augmenter(transform)
    dist = mcfg.age_head == "distribution"
    config.update(_fit(model, _tf_dataset(tr, tcfg.batch_size, True, augment, tcfg.seed, age_logits=dist),
                       _tf_dataset(va, 256, False, None, tcfg.seed, age_logits=dist), out, tcfg, steps, progress,
                       console))
    return _finish(out, config, tr, va, tcfg.seed, progress, transform)


def _finish(out: Path, config: dict, tr: CropSet, va: CropSet, seed: int, progress: bool, transform) -> dict:
    """Batch norm re-estimated on the training stream, config.json completed, validation report."""
    import keras

    from edgeag.train.evaluate import KerasPredictor, evaluate_crops, write_report

    best = keras.models.load_model(out / "model.keras")
    t_bn = time.time()
    recalibrate_batchnorm(best, tr.x, seed=seed, progress=progress, transform=transform)
    best.save(out / "model.keras")
    config.update(bn_recalibrated=True, bn_recalibration_seconds=round(time.time() - t_bn, 1))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    metrics = evaluate_crops(KerasPredictor(best), va, split="val")
    metrics["training"] = {k: config[k] for k in ("train_seconds", "epochs_run", "seconds_per_epoch", "interrupted")}
    write_report(metrics, out, va.age, title="validation")
    return metrics
