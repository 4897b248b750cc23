"""Fixed int8 ranges for the outputs, whatever the calibration faces were.

Full-int8 conversion gives every tensor the range its calibration crops reached. For the age output that is
the oldest age the model predicted on them: the bundled file of 2026-12 ended at 88.3 years, so no face could
come out older; its P(female) ended at 0.974, so a woman's gender confidence could not pass 0.95 while a man's
reached 1. ``fix_output_ranges`` rewrites the quantization of the tensors from the layer that computes each
output to the output itself: from the age layer (a fully-connected layer: the expectation over the age bins, or
the regression head) so that they span 0-116 years (UTKFace's range, the metadata's ``age_range``), and from
the sigmoid and softmax (whose int8 range TFLite fixes at 0-255/256) so that the probabilities span 0-1. The
ranges are carried forward exactly: a split or reshape keeps its input's range, an add sums its inputs' ranges,
a multiplication by a constant scales it (the test-time flip averages the two crops' outputs as add, then times
0.5). An add's range is widened by one step: with a step exactly twice its inputs', every odd sum is a tie, and
int8 rounds ties away from zero, which made every age 0.11 years older on average (val's mean signed error
-0.39 -> -0.29 years). The interpreter derives each op's requantization from these scales when it loads the
file, so no weight changes; an age step becomes about 116/255 = 0.46 years instead of the calibration
range / 255.
"""

from __future__ import annotations

import numpy as np

from edgeag.edge.tflite_file import op_name, pack_model, unpack_model
from edgeag.errors import EdgeagError

AGE_RANGE = (0.0, 116.0)
KEEPS_RANGE = {"SPLIT", "RESHAPE", "SQUEEZE", "CONCATENATION"}
PROBABILITIES = {"LOGISTIC", "SOFTMAX"}  # int8 outputs TFLite gives a fixed range (0 to 255/256)


def int8_params(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of an int8 tensor spanning [low, high] (stretched to hold 0, as TFLite requires)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0
    return scale, int(np.clip(round(-128 - low / scale), -128, 127))


def fix_output_ranges(tflite: bytes, age_range: tuple[float, float] = AGE_RANGE) -> bytes:
    """A copy of an int8 model whose ``age`` output spans ``age_range`` years and whose probability outputs
    (``gender``, ``ethnicity``) span 0-1, with the tensors leading to them."""
    model = unpack_model(tflite)
    outputs = {_text(o.name): (s, o.tensorIndex) for s in model.signatureDefs or [] for o in s.outputs or []}
    if "age" not in outputs:
        raise EdgeagError("the model has no age output in its signature; cannot fix its range")
    for name, (sig, tensor) in outputs.items():
        graph = _Graph(model, model.subgraphs[sig.subgraphIndex])
        ranges: dict[int, tuple[float, float]] = {}
        graph.range_of(tensor, age_range if name == "age" else None, ranges)
        for t, (lo, hi) in ranges.items():
            scale, zero = int8_params(lo, hi)
            q = graph.sg.tensors[t].quantization
            q.scale, q.zeroPoint, q.min, q.max = [scale], [zero], None, None
    return pack_model(model, len(tflite))


class _Graph:
    """One subgraph of a TFLite model, for carrying value ranges forward from the layer that computes an output."""

    def __init__(self, model, sg):
        self.model, self.sg = model, sg
        self.producer = {t: op for op in sg.operators for t in op.outputs}

    def is_const(self, t: int) -> bool:
        return t not in self.producer and t not in self.sg.inputs

    def scalar(self, t: int) -> float:
        """The value of a constant int8 scalar tensor."""
        tensor = self.sg.tensors[t]
        raw = np.frombuffer(bytes(bytearray(self.model.buffers[tensor.buffer].data)), np.int8)
        if raw.size != 1:
            raise EdgeagError("an output is multiplied by a non-scalar constant; cannot fix its range")
        q = tensor.quantization
        return float((raw[0] - q.zeroPoint[0]) * q.scale[0])

    def own_range(self, t: int) -> tuple[float, float]:
        q = self.sg.tensors[t].quantization
        return float((-128 - q.zeroPoint[0]) * q.scale[0]), float((127 - q.zeroPoint[0]) * q.scale[0])

    def range_of(self, t: int, fc_range: tuple[float, float] | None, ranges: dict) -> tuple[float, float]:
        """The range of tensor ``t`` if the fully-connected layer before it spans ``fc_range`` (None: ``t`` must
        come from a sigmoid or softmax); records every tensor on the way in ``ranges``."""
        if t in ranges:
            return ranges[t]
        op = self.producer[t]
        name = op_name(self.model, op)
        if name in PROBABILITIES:
            return self.own_range(t)  # already fixed by TFLite: left as it is
        if name == "FULLY_CONNECTED" and fc_range is not None:
            ranges[t] = fc_range
            return fc_range
        data = [i for i in op.inputs if i >= 0 and not self.is_const(i)]
        if name == "FULLY_CONNECTED" or not data:
            raise EdgeagError(f"unexpected {name} op before an output; cannot fix its range")
        inputs = [self.range_of(i, fc_range, ranges) for i in data]
        if name in KEEPS_RANGE:  # these ops copy bytes: inputs and output share one range
            r = (min(lo for lo, _ in inputs), max(hi for _, hi in inputs))
            ranges.update({i: r for i in data if i in ranges})
        elif name == "ADD":
            lo, hi = sum(lo for lo, _ in inputs), sum(hi for _, hi in inputs)
            r = (lo, hi + (hi - lo) / 255)  # one step wider: see the module's docstring
        elif name == "MUL" and len(data) == 1:
            c = self.scalar(next(i for i in op.inputs if self.is_const(i)))
            r = tuple(sorted(c * v for v in inputs[0]))
        else:
            raise EdgeagError(f"unexpected {name} op before an output; cannot fix its range")
        ranges[t] = r
        return r


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else name
