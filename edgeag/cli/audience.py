"""The audience options of `edgeag run` (visits, aggregates, --events, --mqtt): one option group."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Optional

import typer

from edgeag.edge.audience import AudienceOptions

_DEFAULTS = AudienceOptions()

@dataclass
class AudienceArgs:
    """Visits and per-interval aggregates of a video, camera or stream (``edgeag.edge.audience_session``)."""

    events: Annotated[Optional[str], typer.Option(
        "--events", metavar="FILE|-", help="Write visits and per-interval aggregates as JSON Lines (\"type\": "
        "\"visit\" | \"aggregate\") to FILE or '-' (stdout).")] = None
    mqtt: Annotated[Optional[str], typer.Option(
        "--mqtt", metavar="URL", help="Publish visits and aggregates (QoS 1) to mqtt\\[s]://\\[user:pass@]host"
        "\\[:port]/PREFIX\\[?ca=FILE&cert=FILE&key=FILE] under PREFIX/DEVICE/{visits,aggregates}, with a retained "
        "PREFIX/DEVICE/status (needs edgeag\\[mqtt]).")] = None
    mqtt_spool: Annotated[Optional[str], typer.Option(
        "--mqtt-spool", metavar="DIR", help="Keep messages the memory queue cannot hold, and those undelivered at "
        "exit, in DIR (sent first next time) instead of dropping.")] = None
    device: Annotated[Optional[str], typer.Option(
        "--device", metavar="NAME", help="Device name in events and topics (default: host name).")] = None
    aggregate_only: Annotated[bool, typer.Option(
        "--aggregate-only", help="Send and write aggregates only, no per-visit records.")] = False
    interval: Annotated[float, typer.Option(
        "--interval", min=1.0, metavar="SECONDS",
        help="Aggregate period, aligned on the clock (60: every minute on the minute).")] = _DEFAULTS.interval_s
    min_dwell: Annotated[float, typer.Option(
        "--min-dwell", min=0.0, metavar="SECONDS",
        help="Shorter tracks are counted (short_tracks) but not reported as visits.")] = _DEFAULTS.min_dwell_s
    age_brackets: Annotated[str, typer.Option(
        "--age-brackets", metavar="EDGES", help="Lower edges of the age brackets after 0 (default: 0-12, 13-17, "
        "18-24, 25-34, 35-44, 45-54, 55-64, 65+).")] = ",".join(map(str, _DEFAULTS.bracket_edges))
    start_time: Annotated[Optional[str], typer.Option(
        "--start-time", metavar="ISO8601", help="For video files: the wall-clock time of the first frame (default: "
        "now); event times follow the video's own timeline.")] = None

    @property
    def wanted(self) -> bool:
        return self.events is not None or self.mqtt is not None

    def open(self, **context):
        """An ``AudienceSession`` when --events or --mqtt is given, else None (``open_audience``)."""
        from edgeag.edge.audience_session import open_audience

        return open_audience(**asdict(self), **context)
