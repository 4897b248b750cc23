"""The edgeag description embedded in a ``.tflite`` file, so a model file is self-describing.

Stored as a TFLite ``Metadata`` entry named ``edgeag`` whose buffer holds UTF-8 JSON. Read and written
with the flatbuffer schema that ai-edge-litert ships: no TensorFlow needed on the device.

Keys (stable contract): ``format`` (=1), ``edgeag_version``, ``crop`` {size, channels, margin, version},
``input`` {dtype, color, normalisation}, ``outputs`` {head: meaning}, ``labels`` {gender, ethnicity},
``age_range``, ``mode`` (int8|float16|float32|dynamic), ``training`` {data, split, date, ...}, ``metrics``;
optional ``gender_threshold`` (P(female) decision point chosen on val; the classifier re-centres on it).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from edgeag.edge.tflite_file import pack_model, unpack_model
from edgeag.errors import ModelError

METADATA_NAME = "edgeag"
METADATA_FORMAT = 1
REQUIRED_KEYS = ("format", "crop", "outputs", "labels")


def read_metadata(model: bytes | str | Path, name: str | None = None) -> dict:
    """The edgeag JSON inside a TFLite model (bytes or path). Raises ModelError, naming ``name`` or the path."""
    from ai_edge_litert import schema_py_generated as schema

    buf = model if isinstance(model, (bytes, bytearray)) else _read(Path(model))
    name = name or ("model" if isinstance(model, (bytes, bytearray)) else str(model))
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{name} is not a TFLite model (no TFL3 identifier)")
    try:
        m = schema.Model.GetRootAs(buf, 0)
        for i in range(m.MetadataLength()):
            entry = m.Metadata(i)
            if entry.Name() and entry.Name().decode() == METADATA_NAME:
                data = m.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
                meta = json.loads(data.decode("utf-8"))
                break
        else:
            raise ModelError(f"{name} has no edgeag metadata: convert it with `edgeag quantize` "
                             "(a plain TFLite file does not say how to crop and what its outputs mean)")
    except ModelError:
        raise
    except (struct.error, IndexError):  # an offset past the end: the file was cut short or overwritten
        raise ModelError(f"{name} is truncated or damaged ({len(buf)} bytes; not a complete TFLite model)") from None
    except Exception as exc:  # malformed flatbuffer, bad JSON
        raise ModelError(f"{name}: cannot read model metadata ({type(exc).__name__})") from None
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{name}: edgeag metadata lacks {', '.join(missing)}")
    return meta


def write_metadata(tflite: bytes, meta: dict) -> bytes:
    """A copy of the model with ``meta`` embedded (replacing any earlier edgeag entry)."""
    from ai_edge_litert import schema_py_generated as schema

    meta = {"format": METADATA_FORMAT, **meta}
    model = unpack_model(tflite)
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(meta, sort_keys=True).encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    return pack_model(model, len(tflite) + 4096)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from None
