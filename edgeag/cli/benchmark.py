"""``edgeag benchmark`` (issue 5): per-stage latency, FPS, size, memory and accuracy on this device.

Thin: parses options and calls ``edgeag.benchmarks.bench``; heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeag.cli.common import err_console, handle_errors, json_output
from edgeag.cli.options import DEFAULT_DETECTOR, DetectorChoice, JsonOut, Models, OptionalData, SplitFile, ThreadCounts


@handle_errors
def benchmark(
    model: Models = None,
    threads: ThreadCounts = None,
    frames: Annotated[int, typer.Option("--frames", "-n", help="Timed frames per run (after the warm-up).")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed frames before timing.")] = 20,
    faces: Annotated[int, typer.Option("--faces", "-k", help="Faces per frame (K).")] = 3,
    json_out: JsonOut = None,
    plot_out: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG chart here.")] = None,
    data: OptionalData = None,
    split_file: SplitFile = None,
    split: Annotated[str, typer.Option(help="Split used for faces and accuracy (with --data: real faces are "
                                       "pasted into the clip and each model's accuracy reported).")] = "test",
    no_accuracy: Annotated[bool, typer.Option("--no-accuracy", help="With --data: paste faces but skip the "
                                              "evaluation.")] = False,
    width: Annotated[int, typer.Option(help="Frame width of the generated clip.")] = 640,
    height: Annotated[int, typer.Option(help="Frame height of the generated clip.")] = 480,
    detector: DetectorChoice = DEFAULT_DETECTOR,
) -> None:
    """Measure per-stage latency (p50/p90/p99), FPS, size, MACs and memory of the run pipeline on this device."""
    from rich.console import Console

    from edgeag.benchmarks.bench import BenchConfig, plot, print_report, run_benchmark

    if plot_out is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            from edgeag.errors import BadInputError

            raise BadInputError("--plot needs matplotlib: pip install matplotlib (or leave out --plot)")
    cfg = BenchConfig(models=list(model or []), threads=list(dict.fromkeys(threads or [1])), frames=frames,
                      warmup=warmup, faces=faces, width=width, height=height, data=data, split_file=split_file,
                      split=split, detector=detector.value, accuracy=not no_accuracy)
    with json_output(json_out) as sink:
        result = run_benchmark(cfg, log=lambda s: err_console.print(f"[dim]{s}[/]", highlight=False))
        # Tables go to stderr when stdout carries the JSON, so `edgeag benchmark --json - | jq` works.
        console = err_console if json_out == "-" else Console()
        if not console.is_terminal:
            console.width = max(console.width, 180)
        print_report(result, console)
        if sink is not None:
            sink.write(result, None)
    if json_out not in (None, "-"):
        err_console.print(f"JSON written to {json_out}")
    if plot_out is not None:
        err_console.print(f"plot written to {plot(result, plot_out)}")
