"""What every CLI command shares: clean errors with exit codes, and lazy-import discipline.

Command modules import heavy libraries (TensorFlow, MediaPipe, LiteRT) inside the command function,
never at module top: `edgeag --help` must stay instant and an edge device has no TensorFlow.
"""

from __future__ import annotations

import functools
import os
from enum import Enum

import typer
from rich.console import Console
from rich.markup import escape

from edgeag.edge.face import MIN_FACE_PX
from edgeag.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EdgeagError

# soft_wrap: a one-line error stays one line when stderr is a file or a pipe (rich would wrap it at 80 columns).
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


# One text for `run`, `predict` and `serve` (figures: MODEL_CARD.md, gender reported only above a confidence).
MIN_GENDER_CONFIDENCE_HELP = ("Leave gender unknown (null; '?' on screen) when its confidence is below this (0: always "
                              "state it; 0.72 left 10% of test faces unknown, 96% right on the rest).")

# `--min-face` of `run`, `predict` and `serve`, declared once (figures: README, attributes by face size).
MIN_FACE_OPTION = typer.Option(MIN_FACE_PX, "--min-face", metavar="PX", min=0,
                               help="Faces narrower than PX pixels keep box, score and track ID but get no age, "
                               "gender or ethnicity (null; '?' on screen): below it they are mostly noise. 0: all.")


class Detector(str, Enum):
    """The --detector choices: the bundled BlazeFace models (= edgeag.edge.detector.DETECTORS, tested)."""

    auto = "auto"
    full = "full"
    short = "short"


DEFAULT_DETECTOR = Detector.auto  # = edgeag.edge.detector.DEFAULT_DETECTOR (chosen by measurement, README)


def detector_option():
    """The one declaration of --detector (run, predict, serve, benchmark); a wrong value exits 2 with the choices."""
    return typer.Option(DEFAULT_DETECTOR, "--detector", case_sensitive=False,
                        help="Face detector (BlazeFace): full range sees faces across a room (85% at 1.2 m, about "
                             "half at 2 m from a 640x480 webcam) but misses faces that fill the frame; short range "
                             "finds faces within about a metre, close-ups included, at a quarter of the cost; auto = "
                             "full range, then short range on frames where it finds none (README).")


def quiet_native_logs() -> None:
    """Quiet TensorFlow/absl/OpenCV/FFmpeg chatter on stderr (set before those libraries load); LiteRT and
    MediaPipe, which ignore the environment, are silenced where they load (edge/native_logs.py)."""
    from edgeag.edge.native_logs import quiet_env

    quiet_env()


def handle_errors(fn):
    """Turn expected failures into one red line and an exit code; Ctrl-C into exit 130. No tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_native_logs()
        try:
            return fn(*args, **kwargs)
        except EdgeagError as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MemoryError:
            err_console.print("[red]error:[/] out of memory")
            raise typer.Exit(EXIT_RUNTIME) from None
        except Exception as exc:  # last resort: a bug, but still no traceback for the user
            err_console.print(f"[red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}")
            if os.environ.get("EDGEAG_DEBUG"):
                raise
            err_console.print("set EDGEAG_DEBUG=1 to see the traceback")
            raise typer.Exit(EXIT_RUNTIME) from None

    return wrapper
