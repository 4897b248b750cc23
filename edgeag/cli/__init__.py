"""The ``edgeag`` command line (entry point ``edgeag.cli:main``; also ``python -m edgeag.cli``)."""

from edgeag.cli.app import app, main

__all__ = ["app", "main"]
