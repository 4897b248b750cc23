"""Where the bytes of a .tflite file go: weights, quantization parameters, graph, metadata.

    python -m edgeag.benchmarks.model_size edge/models/edgeag_default.tflite

For a size budget this says what can shrink: int8 weights scale with the channels, and so do the
quantization parameters (a float32 scale and an int64 zero point per output channel of each weight and
bias tensor, one pair per activation tensor); the rest is the graph (operators, tensor records, names)
and the embedded metadata.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeag.benchmarks.common import exits_cleanly
from edgeag.edge.tflite_file import unpack_model
from edgeag.errors import BadInputError


def size_breakdown(path: str | Path) -> dict:
    """Bytes of a TFLite file by kind, and its largest constant tensors."""
    raw = Path(path).read_bytes()
    model = unpack_model(raw)
    const_bytes, scales, zero_points, tensors, largest = 0, 0, 0, 0, []
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            tensors += 1
            buf = model.buffers[t.buffer]
            n = len(buf.data) if buf.data is not None else 0
            if n:
                const_bytes += n
                largest.append((n, [int(d) for d in t.shape]))
            q = t.quantization
            if q is not None:
                scales += 0 if q.scale is None else len(q.scale)
                zero_points += 0 if q.zeroPoint is None else len(q.zeroPoint)
    meta = sum(len(model.buffers[m.buffer].data) for m in model.metadata or []
               if model.buffers[m.buffer].data is not None)
    quant = scales * 4 + zero_points * 8
    largest.sort(reverse=True)
    return {
        "file": len(raw), "constants": const_bytes, "quantization_params": quant, "metadata": meta,
        "graph_and_other": len(raw) - const_bytes - quant - meta,
        "tensors": tensors, "scales": scales, "zero_points": zero_points,
        "largest_constants": [{"bytes": n, "shape": s} for n, s in largest[:5]],
    }


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_file():
        raise BadInputError("usage: python -m edgeag.benchmarks.model_size MODEL.tflite")
    try:
        b = size_breakdown(args[0])
    except Exception as e:  # not a flatbuffer we can read: say so, no traceback
        raise BadInputError(f"{args[0]}: not a readable .tflite file ({e})") from None
    kb = lambda n: f"{n / 1024:.0f} KB"  # noqa: E731
    print(f"{args[0]}: {kb(b['file'])}")
    for k in ("constants", "quantization_params", "metadata", "graph_and_other"):
        print(f"  {k:20s} {kb(b[k]):>8s}  {100 * b[k] / b['file']:4.1f}%")
    print(f"  {b['scales']} quantization scales, {b['zero_points']} zero points, {b['tensors']} tensors")
    print("  largest constants: " + ", ".join(f"{x['shape']} {kb(x['bytes'])}" for x in b["largest_constants"]))
    print(json.dumps(b))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
