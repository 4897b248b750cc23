"""`edgeag serve` (issue 6). Placeholder until the server lands."""

from __future__ import annotations

from edgeag.cli_common import fail, handle_errors


@handle_errors
def serve() -> None:
    fail("not implemented yet", 1)
