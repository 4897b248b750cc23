"""`edgeag report`: visits and aggregates from JSON Lines files or an MQTT broker -> table, CSVs, PNGs, HTML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import typer

from edgeag.cli.common import err_console, handle_errors
from edgeag.errors import BadInputError


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise BadInputError(f"--for: a duration such as 90s, 5m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


@handle_errors
def report(
    events: Optional[List[Path]] = typer.Argument(None, metavar="EVENTS.jsonl...", help="Files written by "
                                                  "`edgeag run --events` (one or many devices).", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Folder for CSVs, PNGs and report.html."),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", metavar="URL", help="Collect from a broker instead: "
                                       "mqtt\\[s]://\\[user:pass@]host\\[:port]/PREFIX (all devices under PREFIX)."),
    duration: Optional[str] = typer.Option(None, "--for", metavar="DURATION", help="With --mqtt: how long to "
                                           "listen (90s, 5m, 1h); Ctrl-C stops early and keeps what came."),
) -> None:
    """Summarise audience events: a table here; CSVs, PNG plots and an HTML page in --out."""
    from edgeag.edge.report import dedupe, load_events, summarize, write_report

    warn = lambda m: err_console.print(m, style="yellow", markup=False, highlight=False)  # noqa: E731
    if bool(events) == bool(mqtt):
        raise BadInputError("give EVENTS.jsonl files or --mqtt URL --for DURATION")
    if mqtt:
        if duration is None:
            raise BadInputError("--mqtt needs --for DURATION")
        evs = _collect(mqtt, parse_duration(duration))
    else:
        if duration is not None:
            raise BadInputError("--for applies to --mqtt")
        evs = load_events(events, warn)
    visits, aggs = dedupe(evs)
    rows = summarize(visits, aggs)
    _print_table(rows)
    if out is not None:
        files = write_report(visits, aggs, out, warn)
        err_console.print(f"wrote {len(files)} files to {out}: " + ", ".join(p.name for p in files),
                          markup=False, highlight=False)


def _collect(url: str, seconds: float) -> list[dict]:
    from edgeag.edge.report import collect_mqtt
    from edgeag.edge.runner import deferred_interrupts

    with deferred_interrupts() as stop:  # Ctrl-C ends the listening; what came is reported
        return collect_mqtt(url, seconds, lambda m: err_console.print(m, markup=False, highlight=False),
                            stop=stop.is_set)


def _print_table(rows: list[dict]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Audience by device", box=box.SIMPLE_HEAD, pad_edge=False, caption="dwell: median s; attention: share of visit time facing "
              "the camera; short: tracks under --min-dwell; lost: MQTT messages dropped")
    cols = {"device": "device", "visits": "visits", "female": "female", "male": "male", "unknown": "?",
            "dwell_median_s": "dwell", "attention_share": "attention", "short_tracks": "short", "frames": "frames",
            "fps_median": "FPS", "messages_dropped": "lost"}
    for c, head in cols.items():
        t.add_column(head, justify="left" if c == "device" else "right", no_wrap=c == "device")
    keys = list(cols)
    for r in rows:
        t.add_row(*["" if r[c] is None else str(r[c]) for c in keys])
    if len(rows) > 1:
        t.add_row("all", *[str(sum(r[c] for r in rows)) for c in keys[1:5]], *[""] * (len(keys) - 5))
    Console().print(t)
