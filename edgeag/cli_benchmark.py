"""``edgeag benchmark`` (issue 5): per-stage latency, FPS, size, memory and accuracy on this device.

Thin: parses options and calls ``edgeag.benchmarks.bench``; heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgeag.cli_common import Detector, detector_option, err_console, handle_errors


@handle_errors
def benchmark(
    model: Optional[List[Path]] = typer.Option(
        None, "--model", "-m", help="Classifier .tflite to time (repeat to compare, e.g. float32, float16, int8). "
        "Default: the bundled model."),
    threads: str = typer.Option("1", "--threads", "-t", help="LiteRT threads for the classifier, e.g. 1,2,4."),
    frames: int = typer.Option(200, "--frames", "-n", help="Timed frames per run (after the warm-up)."),
    warmup: int = typer.Option(20, "--warmup", help="Untimed frames before timing."),
    faces: int = typer.Option(3, "--faces", "-k", help="Faces per frame (K)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here ('-' for stdout)."),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG chart here."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTKFace folder/archive or Kaggle CSV: paste real faces "
                                        "into the clip and report each model's accuracy on --split."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="CSV file,split for --data."),
    split: str = typer.Option("test", help="Split used for faces and accuracy (with --data)."),
    no_accuracy: bool = typer.Option(False, "--no-accuracy", help="With --data: paste faces but skip the evaluation."),
    width: int = typer.Option(640, help="Frame width of the generated clip."),
    height: int = typer.Option(480, help="Frame height of the generated clip."),
    detector: Detector = detector_option(),
) -> None:
    """Measure per-stage latency (p50/p90/p99), FPS, size, MACs and memory of the run pipeline on this device."""
    import sys

    from rich.console import Console

    from edgeag.benchmarks.bench import BenchConfig, parse_threads, plot, print_report, run_benchmark, write_json

    to_stdout = json_out is not None and str(json_out) == "-"
    if plot_out is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            from edgeag.errors import BadInputError

            raise BadInputError("--plot needs matplotlib: pip install matplotlib (or leave out --plot)")
    cfg = BenchConfig(models=list(model or []), threads=parse_threads(threads), frames=frames, warmup=warmup,
                      faces=faces, width=width, height=height, data=data, split_file=split_file, split=split,
                      detector=detector.value, accuracy=not no_accuracy)
    result = run_benchmark(cfg, log=lambda s: err_console.print(f"[dim]{s}[/]", highlight=False))
    # Tables go to stderr when stdout carries the JSON, so `edgeag benchmark --json - | jq` works.
    console = err_console if to_stdout else Console()
    if not console.is_terminal:
        console.width = max(console.width, 180)
    print_report(result, console)
    if json_out is not None:
        if to_stdout:
            import json

            sys.stdout.write(json.dumps(result, indent=2) + "\n")
        else:
            err_console.print(f"JSON written to {write_json(result, json_out)}")
    if plot_out is not None:
        err_console.print(f"plot written to {plot(result, plot_out)}")
