"""Every option used by more than one command, declared once (``Annotated`` aliases), and the option groups.

Defaults come from the Python API's own tables (``FaceAnalyzerOptions``, ``TrainConfig``, ``ModelConfig``,
``AudienceOptions``' siblings), so the CLI and the API cannot disagree. An option group is a dataclass
whose fields are options; ``with_groups`` spreads its fields into a command's signature and hands the
command one instance, so a command counts a group as one parameter.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional, get_type_hints

import typer

from edgeag.edge.analyzer import FaceAnalyzerOptions
from edgeag.edge.detector import DETECTORS
from edgeag.errors import BadInputError
from edgeag.train.config import ModelConfig, TrainConfig

_ANALYZER = FaceAnalyzerOptions()
_MODEL = ModelConfig()
_TRAIN = TrainConfig()

# The --detector choices: the bundled BlazeFace models (= edgeag.edge.detector.DETECTORS).
Detector = Enum("Detector", {d: d for d in DETECTORS}, type=str)
DEFAULT_DETECTOR = Detector(_ANALYZER.detector)

# ------------------------------------------------------------------ the runtime (run, predict, serve, benchmark)

Model = Annotated[Optional[Path], typer.Option(
    "--model", metavar="FILE", help="Classifier .tflite made by `edgeag quantize` (default: the bundled int8 model).")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", metavar="N", min=1, help="LiteRT CPU threads per analyzer (Raspberry Pi: 4; default: LiteRT's "
    "choice, 1 per worker in `serve`).")]
# `edgeag benchmark` compares several: the same options, repeated.
Models = Annotated[Optional[List[Path]], typer.Option(
    "--model", "-m", metavar="FILE", help="Classifier .tflite made by `edgeag quantize`; repeat to compare (e.g. "
    "float32, float16, int8). Default: the bundled int8 model.")]
ThreadCounts = Annotated[Optional[List[int]], typer.Option(
    "--threads", "-t", metavar="N", min=1, help="LiteRT CPU threads; repeat to compare: --threads 1 --threads 4. "
    "Default: 1.")]
DetectorChoice = Annotated[Detector, typer.Option(
    "--detector", case_sensitive=False,
    help="Face detector (BlazeFace). auto: finds faces down to about 48 px (2.5 m from a 640x480 webcam): on an "
         "image, the full range on the whole frame and on six overlapping tiles; on video and cameras that search "
         "spread over frames, the faces found followed every frame, at about the cost of one full-range pass. "
         "tiled: the whole search on every frame. full: the full range alone (about half the faces at 2 m). "
         "short: faces within about a metre, close-ups included, the cheapest (README).")]
MinConfidence = Annotated[float, typer.Option(
    "--min-confidence", min=0.0, max=1.0, help="Face detector score threshold.")]
MaxFaces = Annotated[Optional[int], typer.Option(
    "--max-faces", metavar="N", min=1, help="Analyse at most N faces per frame or image (the most confident).")]
# Figures: MODEL_CARD.md (gender reported only above a confidence).
MinGenderConfidence = Annotated[float, typer.Option(
    "--min-gender-confidence", min=0.0, max=1.0,
    help="Leave gender unknown (null; '?' on screen) when its confidence is below this (0: always state it; 0.68 "
         "left 10% of test faces unknown, 95.5% right on the rest).")]
# Figures: README, attributes by face size.
MinFace = Annotated[int, typer.Option(
    "--min-face", metavar="PX", min=0,
    help="Faces narrower than PX pixels keep box, score and track ID but get no age, gender or ethnicity (null; "
         "'?' on screen): below it they are mostly noise. 0: all.")]
JsonOut = Annotated[Optional[str], typer.Option(
    "--json", metavar="FILE|-", help="Write the results as JSON Lines to FILE, or '-' for stdout (messages go to "
    "stderr). FILE is replaced when the command ends, never before.")]
Ethnicity = Annotated[bool, typer.Option("--ethnicity", help="Show ethnicity in captions and tables.")]


@dataclass
class AnalyzerArgs:
    """The options of a ``FaceAnalyzer`` (run, predict, serve)."""

    model: Model = _ANALYZER.model_path
    threads: Threads = _ANALYZER.threads
    detector: DetectorChoice = DEFAULT_DETECTOR
    min_confidence: MinConfidence = _ANALYZER.min_confidence
    max_faces: MaxFaces = _ANALYZER.max_faces
    min_gender_confidence: MinGenderConfidence = _ANALYZER.min_gender_confidence
    min_face: MinFace = _ANALYZER.min_face

    def options(self, **more) -> FaceAnalyzerOptions:
        """``FaceAnalyzerOptions`` from these options (plus ``more``), after checking the model path."""
        if self.model is not None and self.model.is_dir():
            raise BadInputError(f"--model: {self.model} is a folder; give a .tflite file made by `edgeag quantize`")
        if self.model is not None and not self.model.is_file():
            raise BadInputError(f"model file not found: {self.model}")
        return FaceAnalyzerOptions(model_path=self.model, threads=self.threads, detector=self.detector.value,
                                   min_confidence=self.min_confidence, max_faces=self.max_faces,
                                   min_gender_confidence=self.min_gender_confidence, min_face=self.min_face, **more)


# ------------------------------------------------------------------ data (training side, evaluate, benchmark)

_DATA_HELP = "UTKFace folder/.tar/.tar.gz/.zip or a Kaggle 48x48 CSV"
Data = Annotated[Path, typer.Option("--data", help=f"{_DATA_HELP}; for evaluate also FG-NET.")]
OptionalData = Annotated[Optional[Path], typer.Option("--data", help=f"{_DATA_HELP}.")]
SplitFile = Annotated[Optional[Path], typer.Option(
    "--split-file", metavar="CSV", help="CSV file,split for --data (default: a seeded hash split).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the hash split (without --split-file) and sampling.")]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Crop cache folder (default ~/.cache/edgeag or $EDGEAG_CACHE).")]
ModelArg = Annotated[Path, typer.Argument(help="A .tflite file or a folder written by `edgeag train`.")]
Tta = Annotated[bool, typer.Option("--tta", help="Average each face with its mirror image (test-time flip; 2x "
                                   "compute per face).")]


@dataclass
class ArchitectureArgs:
    """The network of `edgeag train` (defaults: ``ModelConfig``)."""

    arch: Annotated[str, typer.Option(help="mobilenet, resnet or efficientnet.")] = _MODEL.arch
    input_size: Annotated[int, typer.Option(help="Crop size in pixels.")] = _MODEL.input_size
    channels: Annotated[int, typer.Option(help="3 = RGB, 1 = grayscale (the Kaggle CSV is grayscale).")] = \
        _MODEL.channels
    width: Annotated[float, typer.Option(help="Channel multiplier.")] = _MODEL.width
    depth: Annotated[float, typer.Option(help="Block-count multiplier.")] = _MODEL.depth
    expansion: Annotated[int, typer.Option(help="Inverted-residual expansion (mobilenet, efficientnet).")] = \
        _MODEL.expansion
    dropout: Annotated[float, typer.Option()] = _MODEL.dropout
    exposure_norm: Annotated[bool, typer.Option("--exposure-norm", help="Standardise each face's brightness and contrast inside the "
                                                "model (no weights; may be added to a model trained without).")] = \
        _MODEL.exposure_norm

    def model_config(self) -> ModelConfig:
        return ModelConfig(arch=self.arch, input_size=self.input_size, channels=self.channels, width=self.width,
                           depth=self.depth, dropout=self.dropout, expansion=self.expansion,
                           exposure_norm=self.exposure_norm)


@dataclass
class ScheduleArgs:
    """How `edgeag train` fits (defaults: ``TrainConfig``)."""

    epochs: Annotated[int, typer.Option()] = _TRAIN.epochs
    batch_size: Annotated[int, typer.Option()] = _TRAIN.batch_size
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine decay).")] = _TRAIN.lr
    age_loss: Annotated[str, typer.Option(help="l1, mse, huber or distribution (softmax over ages 0-116 with "
                                          "Gaussian targets, plus L1 on its expectation).")] = _TRAIN.age_loss
    patience: Annotated[int, typer.Option(help="Early stopping patience (epochs without val improvement).")] = \
        _TRAIN.patience
    gender_weight: Annotated[float, typer.Option(help="Loss weight of the gender head (age 0.1, ethnicity 0.5).")] \
        = _TRAIN.loss_weights["gender"]
    gender_smoothing: Annotated[float, typer.Option(help="Label smoothing of the gender targets (0.1: 0/1 -> "
                                                    "0.05/0.95).")] = _TRAIN.gender_smoothing
    limit: Annotated[Optional[int], typer.Option(help="Use a random N training records (and N/4 validation): "
                                                 "quick runs.")] = _TRAIN.limit
    seed: Seed = _TRAIN.seed
    augment: Annotated[str, typer.Option(help="camera: camera degradations (resolution, blur, exposure, noise, "
                                         "JPEG) and crop jitter; jitter: crop jitter and mirror only; none.")] = \
        _TRAIN.augment
    max_brightening: Annotated[float, typer.Option(
        min=1.0, help="With --augment camera: the largest exposure gain (linear light) a degraded crop gets; 4 "
        "also covers a face in a spotlight (MODEL_CARD.md).")] = _TRAIN.max_brightening

    def train_config(self, **more) -> TrainConfig:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "gender_weight"}
        return TrainConfig(**fields, loss_weights={**_TRAIN.loss_weights, "gender": self.gender_weight}, **more)


# ------------------------------------------------------------------ groups in a command's signature


def with_groups(**groups: type):
    """Give a command option groups: ``@with_groups(analyzer=AnalyzerArgs)`` replaces the parameter
    ``analyzer`` by the fields of ``AnalyzerArgs`` as options, and calls the command with one instance."""

    def decorate(command):
        hints = get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name not in groups]
        spread = {name: dataclasses.fields(cls) for name, cls in groups.items()}
        for name, cls in groups.items():
            field_hints = get_type_hints(cls, include_extras=True)
            own += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                      annotation=field_hints[f.name]) for f in spread[name]]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            for name, cls in groups.items():
                kwargs[name] = cls(**{f.name: kwargs.pop(f.name) for f in spread[name]})
            return command(*args, **kwargs)

        wrapper.__signature__ = inspect.Signature(own)
        wrapper.__annotations__ = {p.name: p.annotation for p in own}
        return wrapper

    return decorate

