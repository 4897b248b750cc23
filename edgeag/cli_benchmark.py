"""`edgeag benchmark` (issue 5). Placeholder until the benchmark lands."""

from __future__ import annotations

from edgeag.cli_common import fail, handle_errors


@handle_errors
def benchmark() -> None:
    fail("not implemented yet", 1)
