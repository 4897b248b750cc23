"""The runtime loop: frames from one source -> FaceAnalyzer (track or analyze) -> sinks.

One loop for camera, video, stream and images (`edgeag run`, and `edgeag predict` with a table sink). Per
frame it builds the JSON record (the form written by ``--json``), draws the annotated image once if a sink
needs it, and hands both to every sink; an image that could not be read gets a record that says why
(``{"frame", "file", "error"}``) in its place. Whatever
ends the run (end of video, q in the window, Ctrl-C, a lost camera) the sinks and the source are closed,
so JSON is flushed and an MP4 finalised.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from edgeag.edge.analyzer import FaceAnalyzer
from edgeag.edge.face import Face
from edgeag.edge.images import scale_boxes
from edgeag.edge.sinks import Sink, WindowSink, annotate
from edgeag.edge.sources import Frame, FrameSource


@dataclass
class RunSummary:
    """What happened in a run (printed at the end on stderr)."""

    frames: int = 0  # frames analysed
    faces: int = 0  # faces over all frames
    elapsed_s: float = 0.0
    skipped: int = 0  # unreadable frames or images
    reconnects: int = 0
    lost: bool = False  # a live source dropped for good
    stopped: bool = False  # the user closed the window or pressed q
    interrupted: bool = False  # Ctrl-C / SIGTERM

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[threading.Event]:
    """Turn Ctrl-C (SIGINT), SIGTERM and SIGHUP (terminal closed) into a flag that ``run_loop`` checks
    between frames; ``stop.signal_name`` says which arrived.

    A KeyboardInterrupt raised in the middle of a MediaPipe call leaves its native result half-released,
    and MediaPipe's freeing thread then crashed the process (SIGSEGV, about 1 run in 7 here) before the
    outputs were closed. With the flag, the frame in flight finishes and the loop ends cleanly. A second
    signal raises KeyboardInterrupt at once, for a source that blocks (a stalled stream). Main thread only.
    """
    stop = threading.Event()

    stop.signal_name = ""

    def _handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name
        stop.set()

    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    old = {sig: signal.signal(sig, _handler) for sig in sigs}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_loop(source: FrameSource, analyzer: FaceAnalyzer, sinks: list[Sink], *, track: bool = True,
             ethnicity: bool = False, max_frames: int | None = None, warn: Callable[[str], None] | None = None,
             status: Callable[[RunSummary, float, int], None] | None = None,
             status_every_s: float = 5.0, stop: threading.Event | None = None,
             on_frame: Callable[[Frame, list[Face]], None] | None = None) -> RunSummary:
    """Analyse every frame of ``source`` and write the results to ``sinks``; always closes both (as after a crash
    when only unreadable inputs came: their records never replace an earlier result).

    Args:
        track: keep face IDs across frames and smooth per track (``FaceAnalyzer.track``); False analyses
            every frame independently (still images).
        ethnicity: show ethnicity in the drawn captions (the JSON always has it).
        max_frames: stop after this many analysed frames.
        warn: where messages go (stderr in the CLI).
        status: called every ``status_every_s`` seconds with (summary so far, current FPS, faces in frame).
        stop: when set (see ``deferred_interrupts``), the run ends after the current frame as interrupted.
        on_frame: called with each analysed frame and its faces (e.g. ``AudienceCounter`` via the CLI).
    """
    warn = warn or (lambda msg: None)
    s = RunSummary()
    rate = _DisplayRate()
    outputs = _Outputs(sinks, warn)
    failed = True
    try:
        it = iter(source)
        while max_frames is None or s.frames < max_frames:
            if stop is not None and stop.is_set():
                s.interrupted = True
                break
            rate.next_frame()
            frame = next(it, None)
            if frame is None:
                break
            if frame.error is not None:  # an unreadable image: its record says why, in its place
                record, image = error_record(frame), None
            else:
                faces, record = analyse_frame(analyzer, frame, track, rate.t_frame)
                if on_frame is not None:
                    on_frame(frame, faces)
                s.frames += 1
                s.faces += len(faces)
                fps = rate.tick()
                image = outputs.draw(frame.bgr, faces, fps if source.live or track else None, ethnicity)
            if not outputs.write(record, image):
                s.stopped = True
                break
            if status is not None and frame.error is None and rate.due(status_every_s):
                s.elapsed_s = rate.now - rate.t_start
                status(s, fps, len(faces))
        failed = False
    except KeyboardInterrupt:
        s.interrupted = True
        failed = False
    finally:
        s.elapsed_s = time.perf_counter() - rate.t_start
        outputs.close(failed or (s.frames == 0 and source.stats.skipped > 0))
        source.close()
        st = source.stats
        s.skipped, s.reconnects, s.lost = st.skipped, st.reconnects, st.lost
    return s


def analyse_frame(analyzer: FaceAnalyzer, frame: Frame, track: bool,
                  t0: float) -> tuple[list[Face], dict]:
    """The faces of one frame (boxes in the decoded image's pixels, as drawn) and its JSON record (boxes in the
    file's pixels, per-stage milliseconds since ``t0``, when the frame was asked for)."""
    rgb = frame.rgb  # decode + colour conversion both count as "read"
    t_read = time.perf_counter()
    faces = analyzer.track(rgb, frame.timestamp_ms) if track else analyzer.analyze(rgb)
    t_done = time.perf_counter()
    lt = faces.timings_ms
    latency = {"read": (t_read - t0) * 1e3, "detect": lt.get("detect_ms", 0.0), "crop": lt.get("crop_ms", 0.0),
               "classify": lt.get("classify_ms", 0.0)}
    if track:
        latency["track"] = lt.get("track_ms", 0.0)
    latency["total"] = (t_done - t0) * 1e3
    record = {"frame": frame.index, "timestamp_ms": frame.timestamp_ms}
    if frame.name is not None:
        record["file"] = frame.name
    h, w = frame.bgr.shape[:2]
    record.update(width=int(round(w / frame.scale)), height=int(round(h / frame.scale)),
                  faces=scale_boxes([f.to_dict() for f in faces], frame.scale),
                  latency_ms={k: round(v, 2) for k, v in latency.items()})
    return faces, record


def error_record(frame: Frame) -> dict:
    """The record of an input that gave no image: which one, and why."""
    return {"frame": frame.index, "file": frame.name, "error": frame.error}


class _DisplayRate:
    """Frames per second as the user sees them: an EMA over the whole loop (read, analyse, draw, write)."""

    def __init__(self) -> None:
        self.t_start = self.t_frame = self.now = time.perf_counter()
        self._prev = self._t_status = self.t_start
        self._ema: float | None = None

    def tick(self) -> float:
        self.now = time.perf_counter()
        inst = 1.0 / max(self.now - self._prev, 1e-6)
        self._ema = inst if self._ema is None else 0.9 * self._ema + 0.1 * inst
        self._prev = self.now
        return self._ema

    def next_frame(self) -> None:
        self.t_frame = time.perf_counter()

    def due(self, every_s: float) -> bool:
        """True once every ``every_s`` seconds (for status lines)."""
        if self.now - self._t_status < every_s:
            return False
        self._t_status = self.now
        return True


class _Outputs:
    """The sinks of a run: a window that cannot open is dropped with a warning; the others must work."""

    def __init__(self, sinks: list[Sink], warn: Callable[[str], None]) -> None:
        self.sinks, self.active, self.warn = sinks, list(sinks), warn

    def draw(self, bgr, faces: list[dict], fps: float | None, ethnicity: bool):
        """The annotated frame if a sink shows or saves images, else None (not drawn)."""
        return annotate(bgr, faces, fps, ethnicity) if any(k.needs_image for k in self.active) else None

    def write(self, record: dict, image) -> bool:
        """Hand one record (and the annotated image) to every sink; False when one asks to stop."""
        keep_going = True
        for sink in list(self.active):
            try:
                keep_going &= sink.write(record, image)
            except Exception as exc:  # noqa: BLE001 - only a window may fail this way
                if not isinstance(sink, WindowSink):
                    raise
                self.warn(f"cannot show a window ({str(exc).strip().splitlines()[-1][:120]}); "
                          "continuing headless (use --headless to skip the window)")
                self.active.remove(sink)
        return keep_going

    def close(self, failed: bool) -> None:
        """A crash drops the outputs (earlier results stay); any other end keeps them. Every sink is closed."""
        errors = []
        for sink in self.sinks:
            try:
                getattr(sink, "abort", sink.close)() if failed else sink.close()
            except Exception as exc:  # noqa: BLE001 - close every sink even if one fails
                errors.append(exc)
        if errors:
            self.warn(f"could not finish an output: {errors[0]}")
