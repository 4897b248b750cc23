"""A .tflite file as an editable object: unpack, edit, pack (the flatbuffer schema that ships with LiteRT).

Used where a model file is rewritten rather than run: metadata (`edge/metadata.py`), short tensor names and
fixed output ranges at conversion (`quantize/`), the CPU variants of `benchmarks/cpu_variants.py`.
"""

from __future__ import annotations

import functools


def unpack_model(tflite: bytes):
    """The model as a mutable ``ModelT``."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))


def pack_model(model, size_hint: int = 1024) -> bytes:
    """``ModelT`` -> .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_name(model, op) -> str:
    """The builtin operator name of ``op`` (e.g. ``FULLY_CONNECTED``)."""
    code = model.operatorCodes[op.opcodeIndex]
    return _op_names()[max(code.builtinCode, code.deprecatedBuiltinCode)]


@functools.lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
