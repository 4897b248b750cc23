"""Facts of a classifier file for ``edgeag benchmark``: size, mode, input, parameters and MACs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgeag.errors import ModelError

_CONV, _DEPTHWISE, _FULLY_CONNECTED, _TRANSPOSE_CONV, _BATCH_MATMUL = 3, 4, 9, 67, 126


def _constant_elements(m, g) -> int:
    """Elements of the constant tensors (weights, biases) of subgraph ``g`` of model ``m``."""
    params = 0
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        b = t.Buffer()
        if b > 0 and b < m.BuffersLength():
            buffer = m.Buffers(b)
            if buffer.DataLength() > 0 or buffer.Size() > 0:  # inline data, or data past the 2 GB offset form
                params += int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
    return params


def _op_macs(builtin: int, ins, out: list[int], shape) -> int:
    """MACs per input item of one conv, depthwise, dense, transpose-conv or batch-matmul operator."""
    out_per_item = int(np.prod(out[1:])) if len(out) > 1 else int(np.prod(out) or 0)
    if builtin == _CONV:
        w = shape(int(ins[1]))  # [out, kh, kw, in]
        return out_per_item * int(np.prod(w[1:]))
    if builtin == _DEPTHWISE:
        w = shape(int(ins[1]))  # [1, kh, kw, out]
        return out_per_item * w[1] * w[2]
    if builtin == _FULLY_CONNECTED:
        w = shape(int(ins[1]))  # [out, in]
        return out_per_item * w[-1]
    if builtin == _TRANSPOSE_CONV:
        w = shape(int(ins[1]))  # [out, kh, kw, in]; input at ins[2]
        x = shape(int(ins[2]))
        return int(np.prod(x[1:])) * w[0] * w[1] * w[2]
    a = shape(int(ins[0]))  # batch matmul: [.., n, k] x [.., k, m]
    return out_per_item * (a[-1] if a else 0)


def tflite_graph_stats(buf: bytes) -> dict:
    """Parameters (elements of constant tensors) and MACs per input (conv, depthwise, dense ops) of a TFLite graph.

    Counted from the flatbuffer with LiteRT's schema (no TensorFlow). Folded batch norms make ``params``
    a little smaller than the Keras count; MACs match the Keras count of the same layers.
    """
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(buf, 0)
    g = m.Subgraphs(0)

    def shape(idx: int) -> list[int]:
        t = g.Tensors(idx)
        return [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []

    macs = 0
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.DeprecatedBuiltinCode()), int(code.BuiltinCode()))
        if builtin in (_CONV, _DEPTHWISE, _FULLY_CONNECTED, _TRANSPOSE_CONV, _BATCH_MATMUL):
            macs += _op_macs(builtin, op.InputsAsNumpy(), shape(int(op.OutputsAsNumpy()[0])), shape)
    return {"params": int(_constant_elements(m, g)), "macs": int(macs)}


def model_facts(path: Path) -> dict:
    """Size, mode, input shape, parameters and MACs of a classifier file (metadata first, else the graph)."""
    from edgeag.edge.metadata import read_metadata

    buf = path.read_bytes()
    meta = read_metadata(buf)
    crop = meta["crop"]
    arch = meta.get("architecture") or {}
    # Files converted from the same trained folder share architecture, crop and creation time: variants.
    family = json.dumps([arch, crop, (meta.get("training") or {}).get("created")], sort_keys=True)
    facts = {"path": str(path), "name": path.name, "mode": meta.get("mode"), "size_bytes": len(buf),
             "input": [int(crop["size"]), int(crop["size"]), int(crop["channels"])],
             "architecture": " ".join(f"{k}={arch[k]}" for k in ("arch", "width", "depth") if k in arch) or None,
             "family": hashlib.sha1(family.encode()).hexdigest()[:8]}
    try:
        graph = tflite_graph_stats(buf)
    except Exception:  # an exotic graph must not stop the timing; say n/a instead
        graph = {"params": None, "macs": None}
    for key in ("params", "macs"):
        if meta.get(key):
            facts[key], facts[f"{key}_source"] = int(meta[key]), "metadata"
        elif graph[key]:
            facts[key], facts[f"{key}_source"] = graph[key], "graph"
        else:
            facts[key], facts[f"{key}_source"] = None, "n/a"
    return facts


def check_models(paths: list[Path]) -> list[Path]:
    """Fail early and clearly (ModelError, exit 2) on a model that is missing or not an edgeag .tflite."""
    from edgeag.edge.metadata import read_metadata

    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            raise ModelError(f"{p} is a folder: the benchmark times .tflite files (convert it with `edgeag quantize`)")
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        read_metadata(p)  # raises ModelError for a non-TFLite file or one without edgeag metadata
        out.append(p)
    return out
