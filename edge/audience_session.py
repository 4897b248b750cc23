"""The audience outputs of a run (visits, aggregates, ``--events``, ``--mqtt``) wired to the run loop.

``open_audience`` turns `edgeag run`'s audience options into an ``AudienceSession`` whose ``on_frame`` the
run loop calls and whose ``close`` flushes open visits and the last aggregate (end of video, Ctrl-C, a lost
camera alike).
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Optional

from edgeag.errors import BadInputError


class AudienceSession:
    """Counter + outputs for one run. ``on_frame(frame, faces)`` per frame; ``close()`` once."""

    def __init__(self, counter, writer, publisher, start_epoch: float, source) -> None:
        self.counter, self.writer, self.publisher = counter, writer, publisher
        self.start_epoch = start_epoch
        self.source = source
        self._skipped = 0
        self._closed = False
        self.undelivered = 0
        self.tracker = None  # the analyzer's Tracker, once it exists: its retired tracks end visits

    def on_frame(self, frame, faces) -> None:
        skipped = self.source.stats.skipped
        ended = [t.id for t in self.tracker.retired] if self.tracker is not None else None
        self.counter.update(self.start_epoch + frame.timestamp_ms / 1000.0, faces, ended=ended,
                            frames_dropped=skipped - self._skipped)
        self._skipped = skipped

    def close(self) -> None:
        """Flush open visits and the last aggregate, then the outputs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.counter.close()
        finally:
            if self.writer is not None:
                self.writer.close()
            if self.publisher is not None:
                self.undelivered = self.publisher.close()

    def loss_message(self) -> str | None:
        """One line when MQTT messages could not be delivered by the end of the run (shown even with -q)."""
        if not self.undelivered:
            return None
        spool = self.publisher._spool
        where = f"kept in {spool.path}, sent first next time" if spool else "lost; --mqtt-spool DIR keeps them"
        return f"MQTT: {self.undelivered} message(s) not delivered ({where})"


def open_audience(*, events: Optional[str], mqtt: Optional[str], mqtt_spool: Optional[str],
                  device: Optional[str], aggregate_only: bool, interval: float, min_dwell: float,
                  age_brackets: str, start_time: Optional[str], min_gender_confidence: float,
                  ethnicity: bool, source, live: bool, warn: Callable[[str], None]) -> AudienceSession | None:
    """An ``AudienceSession`` when --events or --mqtt is given, else None. Bad values: BadInputError."""
    from edgeag.edge.audience import AudienceCounter, AudienceOptions, parse_bracket_edges, parse_iso_utc
    from edgeag.edge.sinks import JsonlSink

    if events is None and mqtt is None:
        for flag, v in (("--mqtt-spool", mqtt_spool), ("--device", device), ("--start-time", start_time)):
            if v is not None:
                raise BadInputError(f"{flag} needs --events or --mqtt")
        return None
    try:
        edges = parse_bracket_edges(age_brackets)
        start = time.time() if start_time is None else parse_iso_utc(start_time)
    except ValueError as exc:
        what = "--start-time" if "brackets" not in str(exc) else "--age-brackets"
        raise BadInputError(f"{what}: {exc}") from None
    if start_time is not None and live:
        raise BadInputError("--start-time applies to video files only (live sources use the clock)")
    if mqtt_spool is not None and mqtt is None:
        raise BadInputError("--mqtt-spool needs --mqtt")
    name = device or socket.gethostname() or "edge"
    publisher = _open_publisher(mqtt, name, mqtt_spool, warn) if mqtt else None
    try:
        writer = JsonlSink(events, option="--events") if events is not None else None
    except BaseException:
        if publisher is not None:
            publisher.close(timeout_s=1.0)
        raise

    def emit(event: dict) -> None:
        if aggregate_only and event["type"] == "visit":
            return
        if writer is not None:
            writer.write(event, None)
        if publisher is not None:
            publisher.publish("visits" if event["type"] == "visit" else "aggregates", event)

    options = AudienceOptions(device=name, interval_s=interval, min_dwell_s=min_dwell, bracket_edges=edges,
                              min_gender_confidence=min_gender_confidence, ethnicity=ethnicity)
    counter = AudienceCounter(options, emit, publisher.take_dropped if publisher else None)
    return AudienceSession(counter, writer, publisher, start, source)


def _open_publisher(url: str, device: str, spool: Optional[str], warn):
    from edgeag.edge.mqtt import MqttPublisher, parse_mqtt_url

    publisher = MqttPublisher(parse_mqtt_url(url), device, spool_dir=spool, warn=warn)
    publisher.start()  # unknown host, refused credentials: BadInputError here, before any output is opened
    return publisher
