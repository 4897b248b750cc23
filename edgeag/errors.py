"""Errors that reach the user as one clear line and an exit code, never a traceback.

Exit codes (stable contract): 0 done, 1 runtime failure, 2 bad usage or bad input
(missing path, unusable data, bad model file), 3 partly done (`predict`, `run --image`: some inputs could
not be read, the others were analysed), 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class EdgeagError(Exception):
    """An expected failure with a message for the user and an exit code."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(EdgeagError):
    """Missing path, unusable data set, corrupt image given directly, bad option value."""

    exit_code = EXIT_BAD_INPUT


class ModelError(EdgeagError):
    """A model file that does not exist, is not a TFLite/Keras model, or lacks edgeag metadata."""

    exit_code = EXIT_BAD_INPUT


class SourceError(EdgeagError):
    """A camera, video or stream that cannot be opened."""

    exit_code = EXIT_BAD_INPUT
