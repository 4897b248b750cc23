"""What the benchmark scripts share: one way out on an error, the machine they ran on, JSON and PNG output."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeag.errors import EdgeagError

# Options shared by the benchmark commands (declared once; defaults stay with each command).
DataOpt = Annotated[Path, typer.Option("--data", help="UTKFace folder or archive.")]
SplitFileOpt = Annotated[Optional[Path], typer.Option("--split-file", help="CSV file,split (default: hashed split).")]
DetectorsOpt = Annotated[str, typer.Option("--detectors", help="Comma-separated detector names.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="LiteRT threads.")]
SeedOpt = Annotated[int, typer.Option("--seed")]
OutOpt = Annotated[Path, typer.Option("--out", help="JSON results.")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="PNG of the curves.")]


def exits_cleanly(main):
    """Decorate a script's entry point: an ``EdgeagError`` (``BadInputError``, ``ModelError``, ...) leaves as one
    line on stderr and the error's exit code (2 bad input or model, 1 runtime failure), never as a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except EdgeagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None

    return wrapper


def machine_facts() -> dict:
    """Platform, CPU model and features, CPU count, load and library versions of this machine."""
    import cv2
    import numpy as np

    from edgeag.edge.cpu import cpu_features

    versions = {"numpy": np.__version__, "opencv": cv2.__version__}
    for mod, key in (("ai_edge_litert", "litert"), ("mediapipe", "mediapipe")):
        try:
            from importlib.metadata import version

            versions[key] = version(mod.replace("_", "-"))
        except Exception:
            versions[key] = None
    cpu = platform.processor()
    try:  # Linux: x86 kernels give a "model name", some ARM kernels only a "Hardware" line
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.lower().startswith(("model name", "hardware"))),
                       cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": cpu,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "versions": versions, "cpu": cpu_features()}


def write_json(result: dict, out: str | Path, indent: int = 2) -> Path:
    """``result`` as JSON at ``out`` (folders made as needed); returns the path."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=indent) + "\n")
    return p


def save_figure(fig, out: str | Path) -> Path:
    """A matplotlib figure as a PNG at ``out`` (laid out, folders made, figure closed); returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
