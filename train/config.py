"""The one table of training defaults: ``ModelConfig`` (the network) and ``TrainConfig`` (the schedule).

Plain dataclasses with no TensorFlow import, so the ``edgeag train`` options read their defaults from here
(the CLI and the Python API cannot disagree) without slowing ``edgeag --help``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgeag.train.augment import DegradeConfig


@dataclass
class ModelConfig:
    arch: str = "mobilenet"
    input_size: int = 80
    channels: int = 3
    width: float = 0.75  # channel multiplier
    depth: float = 1.0  # block-count multiplier
    dropout: float = 0.2
    stem_stride: int | None = None  # None: 1 for inputs of 64 px or less (keeps their resolution), else 2
    expansion: int = 3  # inverted-residual expansion (MobileNetV2 uses 6; 3 trains ~1.5x faster here)
    fused_stages: int = 0  # leading stages built as Fused-MBConv instead of depthwise blocks
    age_head: str = "regression"  # or "distribution" (label-distribution learning, see build_model)
    exposure_norm: bool = False  # each face's brightness and contrast standardised in the model (ExposureNorm)

    def __post_init__(self) -> None:
        if self.stem_stride is None:
            self.stem_stride = 1 if self.input_size <= 64 else 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.02
    age_loss: str = "l1"
    # "distribution" adds the age_logits head's loss (weight 1.0) to L1 on the expected age.
    loss_weights: dict = field(default_factory=lambda: {"age": 0.1, "gender": 1.0, "ethnicity": 0.5})
    patience: int = 8  # epochs without validation improvement before early stopping
    seed: int = 0
    augment: str = "camera"  # camera: degradations + crop jitter (train/augment.py); jitter: crop jitter only; none
    max_brightening: float = DegradeConfig.gain[1]  # camera: the largest linear exposure gain (over-exposure)
    limit: int | None = None  # a random N training records (N/4 validation): quick runs, tests
    init_from: str | None = None  # a finished run's folder: start from its weights (a new learning-rate cycle)
    gender_smoothing: float = 0.0  # label smoothing of the gender targets (0.1: 0/1 become 0.05/0.95)
    exclude: str | None = None  # file of ids left out of training (e.g. `edgeag audit-labels` suspects)
