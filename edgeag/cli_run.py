"""`edgeag run` and `edgeag predict` (issue 4). Placeholder until the runtime lands."""

from __future__ import annotations

from edgeag.cli_common import fail, handle_errors


@handle_errors
def run() -> None:
    fail("not implemented yet", 1)


@handle_errors
def predict() -> None:
    fail("not implemented yet", 1)
