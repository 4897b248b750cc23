"""What every CLI command shares: clean errors with exit codes, lazy-import discipline, stderr messages, and
``--json FILE|-`` output.

Command modules import heavy libraries (TensorFlow, MediaPipe, LiteRT) inside the command function,
never at module top: `edgeag --help` must stay instant and an edge device has no TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from edgeag.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EdgeagError

# soft_wrap: a one-line error stays one line when stderr is a file or a pipe (rich would wrap it at 80 columns).
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def warn(msg: str) -> None:
    """A warning on stderr, in yellow, printed as is (no markup)."""
    err_console.print(msg, style="yellow", highlight=False, markup=False, soft_wrap=True)


def note(msg: str) -> None:
    """A message on stderr, printed as is (no markup)."""
    err_console.print(msg, highlight=False, markup=False, soft_wrap=True)


def quiet_native_logs() -> None:
    """Quiet TensorFlow/absl/OpenCV/FFmpeg chatter on stderr (set before those libraries load); LiteRT and
    MediaPipe, which ignore the environment, are silenced where they load (edge/native_logs.py)."""
    from edgeag.edge.native_logs import quiet_env

    quiet_env()


def require_tf() -> None:
    """Exit 2 with the install hint when TensorFlow (edgeag[train]) is missing."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise EdgeagError("this command needs TensorFlow: pip install 'edgeag[train]'", 2)


@contextlib.contextmanager
def json_output(target: str | None) -> Iterator[Any]:
    """The sink of ``--json FILE|-`` (None without it): JSON Lines on stdout, or in FILE, written under a
    temporary name and renamed into place when the block ends; if the block fails, an earlier FILE stays as
    it was. Opened before the work, so a bad path fails at once."""
    if target is None:
        yield None
        return
    from edgeag.edge.sinks import JsonlSink

    sink = JsonlSink(target)
    try:
        yield sink
    except BaseException:
        sink.abort()
        raise
    sink.close()


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
