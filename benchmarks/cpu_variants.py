"""Variants of a shipped int8 classifier, made from the .tflite file alone (no Keras model, no TensorFlow).

A study tool for issue 22 (which variant is fastest on which CPU): the bundled model is int8 with the
test-time flip inside its graph, and the float model it came from is not in the repository. From the int8
file this writes, with the same weights (the int8 values, dequantised):

- ``float32``: every tensor float32, weights dequantised; the uint8 input is kept (a DEQUANTIZE op replaces
  the input QUANTIZE), so the runtime feeds the crop as it is. Answers differ from the int8 file only by the
  int8 rounding of activations.
- ``float16``: the float32 graph with its weights stored as float16 (DEQUANTIZE ops at load, the way
  ``edgeag quantize --mode float16`` files are made).
- ``noflip``: the graph without the test-time flip (the mirror/concatenate at the input and the
  split/add/halve of every head removed): one pass per face instead of two.

    python benchmarks/cpu_variants.py edge/models/edgeag_default.tflite OUT_DIR [--variants float32,float16,...]

Then time them side by side: ``edgeag benchmark --model IN.tflite --model OUT_DIR/float32.tflite ...``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from edgeag.benchmarks.common import exits_cleanly
from edgeag.edge.tflite_file import op_name, pack_model, unpack_model
from edgeag.errors import BadInputError

VARIANTS = ("float32", "float16", "noflip", "noflip_float32", "noflip_float16")


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, name: str) -> int:
    """Index of the operator code ``name`` (added, version 1, if the model has none)."""
    s = _schema()
    want = getattr(s.BuiltinOperator, name)
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == want:
            return i
    c = s.OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode, c.version = want, min(want, 127), 1
    model.operatorCodes.append(c)
    return len(model.operatorCodes) - 1


def _dequantized(model, t) -> np.ndarray:
    """A constant int8/int32 tensor's values as float32 (per-tensor or per-channel scales)."""
    s = _schema()
    dtype = {s.TensorType.INT8: np.int8, s.TensorType.UINT8: np.uint8, s.TensorType.INT32: np.int32}[t.type]
    q = np.frombuffer(bytes(np.asarray(model.buffers[t.buffer].data, np.uint8)), dtype).astype(np.float32)
    q = q.reshape(t.shape) if len(t.shape) else q.reshape(())
    scale = np.asarray(t.quantization.scale, np.float32)
    zero = np.asarray(t.quantization.zeroPoint, np.float32)
    if scale.size > 1:  # per channel along quantizedDimension
        shape = [1] * q.ndim
        shape[t.quantization.quantizedDimension] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def to_float32(model):
    """Every quantized tensor -> float32 (constants dequantised, activations plain float)."""
    s = _schema()
    m = copy.deepcopy(model)
    g = m.subgraphs[0]
    graph_input = g.inputs[0]
    for op in g.operators:  # the input QUANTIZE (uint8 -> int8) becomes DEQUANTIZE (uint8 -> float32)
        if op_name(m, op) == "QUANTIZE" and op.inputs[0] == graph_input:
            op.opcodeIndex = _opcode(m, "DEQUANTIZE")
            op.builtinOptionsType, op.builtinOptions = 0, None
    for i, t in enumerate(g.tensors):
        q = t.quantization
        if i == graph_input or q is None or q.scale is None or len(q.scale) == 0 or t.type not in (s.TensorType.INT8, s.TensorType.INT32):
            continue
        if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data):
            # a fresh buffer per tensor (int8 constants may share one)
            buf = s.BufferT()
            buf.data = np.frombuffer(_dequantized(m, t).tobytes(), np.uint8)
            m.buffers.append(buf)
            t.buffer = len(m.buffers) - 1
        t.type, t.quantization = s.TensorType.FLOAT32, None
    return m


def to_float16(model_f32):
    """float32 constants of conv/depthwise/fully-connected weights stored as float16, dequantised at load."""
    s = _schema()
    m = copy.deepcopy(model_f32)
    g = m.subgraphs[0]
    deq = _opcode(m, "DEQUANTIZE")
    weights = {op.inputs[1] for op in g.operators if op_name(m, op) in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                         "FULLY_CONNECTED")}
    new_ops = []
    for i in sorted(weights):
        t = g.tensors[i]
        values = np.frombuffer(bytes(np.asarray(m.buffers[t.buffer].data, np.uint8)), np.float32)
        half = s.TensorT()
        half.shape, half.type, half.name = list(t.shape), s.TensorType.FLOAT16, t.name + b"_fp16"
        buf = s.BufferT()
        buf.data = np.frombuffer(values.astype(np.float16).tobytes(), np.uint8)
        m.buffers.append(buf)
        half.buffer = len(m.buffers) - 1
        g.tensors.append(half)
        m.buffers[t.buffer].data = None  # the float32 tensor is now computed, not stored
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = deq, [len(g.tensors) - 1], [i]
        new_ops.append(op)
    g.operators = new_ops + list(g.operators)
    return m


def strip_flip(model):
    """The graph without the baked-in test-time flip: input -> network -> heads, one pass per face."""
    m = copy.deepcopy(model)
    g = m.subgraphs[0]
    ops = list(g.operators)
    by_name = [(op_name(m, op), op) for op in ops]
    rev = next(op for n, op in by_name if n == "REVERSE_V2")
    cat = next(op for n, op in by_name if n == "CONCATENATION" and rev.outputs[0] in op.inputs)
    unflipped, doubled = cat.inputs[0], cat.outputs[0]
    drop = {id(rev), id(cat)}
    for op in ops:  # consumers of the doubled batch read the original one
        op.inputs = [unflipped if i == doubled else i for i in op.inputs]
    for out_index, out in enumerate(list(g.outputs)):
        mul = next(op for op in ops if out in op.outputs)
        add = next(op for op in ops if mul.inputs[0] in op.outputs)
        split = next(op for op in ops if add.inputs[0] in op.outputs)
        head = split.inputs[1]  # SPLIT(axis, value)
        drop |= {id(mul), id(add), id(split)}
        g.outputs[out_index] = head
        for sig in m.signatureDefs:
            for tm in sig.outputs:
                if tm.tensorIndex == out:
                    tm.tensorIndex = head
    g.operators = [op for op in ops if id(op) not in drop]
    return m


def drop_unused_buffers(model) -> None:
    """Empty the buffers no tensor refers to any more (the int8 originals of dequantised constants)."""
    used = {t.buffer for g in model.subgraphs for t in g.tensors}
    for i, b in enumerate(model.buffers):
        if i not in used:
            b.data = None


def make_variant(buf: bytes, name: str) -> tuple[bytes, dict]:
    """(the variant's .tflite bytes, its metadata changes) for one of VARIANTS."""
    from edgeag.edge.metadata import read_metadata, write_metadata

    meta = read_metadata(buf)
    m = unpack_model(buf)
    if name.startswith("noflip"):
        m = strip_flip(m)
        meta["tta"] = None
        if meta.get("macs"):
            meta["macs"] = int(meta["macs"]) // 2  # one pass per face instead of two
    if name.endswith("float32") or name.endswith("float16"):
        m = to_float32(m)
        if name.endswith("float16"):
            m = to_float16(m)
        meta["mode"] = name.rsplit("_", 1)[-1]
        meta["derived_from"] = "the int8 file's weights, dequantised (benchmarks/cpu_variants.py)"
    drop_unused_buffers(m)
    return write_metadata(pack_model(m), meta), meta


@exits_cleanly
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    names = a.variants.split(",")
    if not set(names) <= set(VARIANTS):
        raise BadInputError(f"--variants: choose from {', '.join(VARIANTS)}")
    if not a.model.is_file():
        raise BadInputError(f"model file not found: {a.model}")
    buf = a.model.read_bytes()
    a.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        data, meta = make_variant(buf, name)
        out = a.out / f"{name}.tflite"
        out.write_bytes(data)
        print(f"{out}: {len(data) / 1024:.0f} KB, mode {meta['mode']}, tta {meta.get('tta')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
