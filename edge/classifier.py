"""The age/gender/ethnicity classifier on LiteRT, driven by the metadata inside the model file.

Outputs are found by name through the model's signature (the converter does not keep Keras's output
order); tensors are set and read directly so that a stable number of faces per call costs no
re-allocation.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from edgeag.edge.crop import CropSpec
from edgeag.edge.metadata import read_metadata
from edgeag.edge.native_logs import native_logs_silenced
from edgeag.errors import ModelError

DEFAULT_MODEL = "edgeag_default.tflite"


def bundled_model_path() -> Path:
    """The int8 classifier shipped in the package (see MODEL_CARD.md)."""
    return Path(str(resources.files("edgeag.edge.models") / DEFAULT_MODEL))


class _Quant:
    """Affine (de)quantisation of one tensor; identity for float tensors."""

    def __init__(self, detail: dict) -> None:
        self.dtype = detail["dtype"]
        scale, zero = detail.get("quantization", (0.0, 0))
        self.scale, self.zero = float(scale), int(zero)
        self.quantized = self.dtype in (np.int8, np.uint8, np.int16) and self.scale > 0


class AgeGenderClassifier:
    """Runs the classifier on uint8 crops made by ``crop_face`` with ``self.crop_spec``.

    Args:
        model_path: a ``.tflite`` made by ``edgeag quantize``; None for the bundled default.
        threads: CPU threads for LiteRT (None: LiteRT's default).
    """

    def __init__(self, model_path: str | Path | None = None, threads: int | None = None) -> None:
        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        buf = path.read_bytes()
        self.path = path
        self.metadata = read_metadata(buf, name=str(path))
        self.crop_spec = CropSpec.from_dict(self.metadata["crop"])
        self.labels = self.metadata["labels"]
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_logs_silenced():  # "Created TensorFlow Lite XNNPACK delegate" from C++
                self._interp = Interpreter(model_content=buf, num_threads=threads)
            sigs = self._interp._get_full_signature_list()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with C++ text
            raise ModelError(f"cannot load model {path}: {exc}") from None
        if not sigs:
            raise ModelError(f"{path} has no signature: re-convert it with `edgeag quantize`")
        sig = sigs.get("serving_default") or next(iter(sigs.values()))
        if len(sig["inputs"]) != 1:
            raise ModelError(f"{path}: expected one input, found {list(sig['inputs'])}")
        self._in_index = next(iter(sig["inputs"].values()))
        outs = sig["outputs"]
        heads = ("age", "gender", "ethnicity")
        missing = [h for h in heads if h not in outs]
        if missing:
            raise ModelError(f"{path}: model outputs {sorted(outs)} lack {', '.join(missing)}")
        self._out_index = {h: outs[h] for h in heads}
        details = {d["index"]: d for d in self._interp.get_tensor_details()}
        self._in_q = _Quant(details[self._in_index])
        self._out_q = {h: _Quant(details[i]) for h, i in self._out_index.items()}
        # Gender operating point chosen on validation (``edgeag quantize --gender-threshold``): P(female) is
        # re-centred with a logit shift so that 0.5 is the decision point everywhere downstream.
        t = float(self.metadata.get("gender_threshold", 0.5))
        if not 0.0 < t < 1.0:
            raise ModelError(f"{path}: gender_threshold {t} in the metadata is not inside (0, 1)")
        self.gender_threshold = t
        self._gender_shift = float(np.log(t / (1.0 - t)))
        self._batch = 0
        with native_logs_silenced():  # the first allocation applies XNNPACK, which says so from C++
            self._resize(1)
        # uint8 input with scale 1 and zero point 0 takes the crop as it is (no copy, no arithmetic).
        q = self._in_q
        self._passthrough = q.dtype == np.uint8 and abs(q.scale - 1.0) < 1e-6 and q.zero == 0
        self._int8_shift = q.dtype == np.int8 and abs(q.scale - 1.0) < 1e-6 and q.zero == -128

    @property
    def input_dtype(self) -> type:
        return self._in_q.dtype

    def output_range(self, head: str) -> tuple[float, float]:
        """The smallest and largest value an output head (age, gender, ethnicity) can represent; for an int8
        output its quantization range (age 0-116 years, probabilities 0-1: quantize/output_range.py), for a
        float one unbounded."""
        q = self._out_q[head]
        if not q.quantized:
            return float("-inf"), float("inf")
        info = np.iinfo(q.dtype)
        return (info.min - q.zero) * q.scale, (info.max - q.zero) * q.scale

    def _resize(self, n: int) -> None:
        if n != self._batch:
            s = self.crop_spec
            self._interp.resize_tensor_input(self._in_index, [n, s.size, s.size, s.channels])
            self._interp.allocate_tensors()
            self._batch = n

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        q = self._in_q
        if self._passthrough:
            return crops
        if self._int8_shift:
            return (crops ^ np.uint8(0x80)).view(np.int8)  # x - 128 without widening
        if q.quantized:
            info = np.iinfo(q.dtype)
            return np.clip(np.round(crops / q.scale + q.zero), info.min, info.max).astype(q.dtype)
        return crops.astype(q.dtype)

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 crops (N, S, S, C) -> {"age": (N,), "p_female": (N,), "ethnicity": (N, 5)}."""
        if crops.ndim == 3:
            crops = crops[None]
        n = len(crops)
        if n == 0:
            return {"age": np.zeros(0, np.float32), "p_female": np.zeros(0, np.float32),
                    "ethnicity": np.zeros((0, len(self.labels["ethnicity"])), np.float32)}
        self._resize(n)
        self._interp.set_tensor(self._in_index, np.ascontiguousarray(self._prepare(crops)))
        self._interp.invoke()
        out = {}
        for head, idx in self._out_index.items():
            v = self._interp.get_tensor(idx)
            q = self._out_q[head]
            out[head] = (v.astype(np.float32) - q.zero) * q.scale if q.quantized else v.astype(np.float32)
        p_female = out["gender"].reshape(n)
        if self._gender_shift:
            p = np.clip(p_female, 1e-6, 1 - 1e-6)
            p_female = (1.0 / (1.0 + np.exp(self._gender_shift - np.log(p / (1.0 - p))))).astype(np.float32)
        return {"age": out["age"].reshape(n), "p_female": p_female, "ethnicity": out["ethnicity"]}
