"""Silence what LiteRT, MediaPipe and XNNPACK print on stderr from C++ ("Created TensorFlow Lite XNNPACK
delegate", "Input tensor memory is not aligned", "DestroyAccelerator ...").

Their loggers ignore the environment variables that quiet TensorFlow (``TF_CPP_MIN_LOG_LEVEL``,
``GLOG_minloglevel``: measured, see tests/test_bad_inputs.py::test_quiet_run_prints_only_its_summary), so the
file descriptor 2 itself is pointed at /dev/null while a model loads, runs its first frame and closes:
the only moments they speak. Python-level messages written in that window are lost too, so the windows are
short and happen at set-up and shutdown. ``EDGEAG_DEBUG=1`` keeps everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


def quiet_env() -> None:
    """Environment that quiets the libraries that do listen (TensorFlow, absl, OpenCV, FFmpeg); set early."""
    for key, value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "2"),
                       ("OPENCV_LOG_LEVEL", "SILENT"), ("OPENCV_FFMPEG_LOGLEVEL", "-8")):
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null for the duration (re-entrant and thread-safe; a no-op with EDGEAG_DEBUG)."""
    global _depth, _saved_fd
    if os.environ.get("EDGEAG_DEBUG"):
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # no fd 2 (embedded interpreters): nothing to do
                _saved_fd = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
