"""`edgeag run` (camera, video, stream or images, live) and `edgeag predict` (photos -> table or JSON).

Both are the run loop (``edgeag.edge.runner``) over a source: `predict` is `run --image` with a table on
stdout instead of a window. Every message goes to stderr, so `--json -` leaves stdout pure JSON Lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, List, Optional

import typer

from edgeag.cli.audience import AudienceArgs
from edgeag.cli.common import err_console, handle_errors, note, warn
from edgeag.cli.options import AnalyzerArgs, Ethnicity, JsonOut, with_groups
from edgeag.edge.face import MAX_GAP_S
from edgeag.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_RUNTIME, BadInputError


@dataclass
class SourceArgs:
    """Where `edgeag run` reads frames."""

    source: Annotated[Optional[List[str]], typer.Argument(
        metavar="SOURCE", show_default=False, help="Camera index, video file, images (files, folder, glob) or "
        "stream URL: guessed, or use an option below. Default: camera 0.")] = None
    camera: Annotated[Optional[str], typer.Option(
        "--camera", metavar="N|DEVICE", help="Camera index (0, 1, ...) or device (/dev/video0).")] = None
    video: Annotated[Optional[Path], typer.Option("--video", metavar="FILE", help="Video file.")] = None
    image: Annotated[Optional[List[str]], typer.Option(
        "--image", metavar="PATH", help="Image file, folder or glob (repeatable).")] = None
    stream: Annotated[Optional[str], typer.Option(
        "--stream", metavar="URL", help="Stream URL: rtsp://, http(s)://, tcp://, udp://.")] = None
    size: Annotated[Optional[str], typer.Option(
        "--size", metavar="WxH", help="Camera capture size, e.g. 640x480.")] = None
    reconnect: Annotated[int, typer.Option(
        "--reconnect", min=0, help="Reconnection attempts when a camera/stream drops.")] = 5

    def kind_and_target(self) -> tuple[str, object]:
        """The one source given (camera 0 when none)."""
        from edgeag.edge.sources import parse_source

        source, image = list(self.source or []), list(self.image or [])
        # A shell-expanded glob (`--image photos/*.jpg`, `edgeag run *.jpg`) arrives as several arguments.
        if source and (image or len(source) > 1):
            image, source = image + source, []
        given = [(k, v) for k, v in (("camera", self.camera), ("video", self.video), ("images", image),
                                     ("stream", self.stream)) if v not in (None, [])]
        if source:
            given.append(parse_source(source[0]))
        if len(given) > 1:
            raise BadInputError("give one source: SOURCE, --camera, --video, --image or --stream")
        if not given:
            return "camera", 0  # the bare command does something useful
        kind, value = given[0]
        if kind == "images" and not isinstance(value, list):
            value = [value]
        return kind, str(value) if kind == "video" else value

    def capture_size(self, kind: str) -> Optional[tuple[int, int]]:
        if not self.size:
            return None
        if kind != "camera":
            raise BadInputError("--size applies to cameras only")
        try:
            w, h = (int(v) for v in self.size.lower().split("x"))
            if w > 0 and h > 0:
                return w, h
        except ValueError:
            pass
        raise BadInputError(f"--size must look like 640x480, got {self.size!r}")


@handle_errors
@with_groups(src=SourceArgs, analyzer=AnalyzerArgs, audience=AudienceArgs)
def run(
    src: SourceArgs, analyzer: AnalyzerArgs, audience: AudienceArgs,
    max_gap: Annotated[float, typer.Option(
        "--max-gap", metavar="SECONDS", min=0.0,
        help="A face unseen for longer (detector misses, occlusion) loses its track ID.")] = MAX_GAP_S,
    headless: Annotated[bool, typer.Option(
        "--headless", help="No window (automatic when no display is available).")] = False,
    json_out: JsonOut = None,
    append: Annotated[bool, typer.Option(
        "--append", help="Add the records to the end of the --json FILE instead of replacing it.")] = False,
    save: Annotated[Optional[Path], typer.Option(
        "--save", metavar="FILE|DIR", help="Annotated video (FILE.mp4/.avi); with images, a folder.")] = None,
    ethnicity: Ethnicity = False,
    no_smooth: Annotated[bool, typer.Option(
        "--no-smooth", help="Raw per-frame predictions (IDs are still tracked).")] = False,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Stop after N frames.")] = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only errors and the final summary on stderr.")] = False,
) -> None:
    """Analyse frames from a camera, video, stream or images: boxes, age, gender, live."""
    from edgeag.edge.sources import open_source

    kind, target = src.kind_and_target()
    capture_size = src.capture_size(kind)
    if append and json_out in (None, "-"):
        raise BadInputError("--append needs --json FILE")
    if audience.events == "-" and json_out == "-":
        raise BadInputError("--json - and --events - cannot both write to stdout")
    if audience.wanted and kind == "images":
        raise BadInputError("--events/--mqtt need a video, camera or stream (visits are tracks over time)")
    say = (lambda m: None) if quiet else warn
    options = analyzer.options(video=kind != "images", smooth=not no_smooth, max_gap_s=max_gap)
    source = open_source(kind, target, warn=say, reconnect=src.reconnect, capture_size=capture_size)

    def open_outputs(sinks: list, audience_on: bool) -> bool:
        window = _open_sinks(sinks, source, kind, json_out, append, save, headless, quiet, audience_on)
        return not (window or quiet or json_out == "-")

    plan = RunPlan(kind, ethnicity, say, describe=not quiet, max_frames=max_frames, no_smooth=no_smooth)
    summary, signal_name, loss = plan.execute(source, options, open_outputs, audience)
    _print_summary(summary, kind, json_out, save, signal_name)
    if loss:
        warn(loss)
    _exit_for(summary, kind)


@handle_errors
@with_groups(analyzer=AnalyzerArgs)
def predict(
    images: Annotated[List[str], typer.Argument(metavar="IMAGES", help="Image files, folders or globs.")],
    analyzer: AnalyzerArgs,
    json_out: JsonOut = None,
    ethnicity: Ethnicity = False,
    save: Annotated[Optional[Path], typer.Option(
        "--save", metavar="DIR", help="Folder for annotated copies of the images.")] = None,
) -> None:
    """Analyse photos: a table on stdout, or with --json one JSON record per image (as `run --image`)."""
    from edgeag.cli.table import TableSink
    from edgeag.edge.sinks import ImageDirSink, JsonlSink
    from edgeag.edge.sources import open_source

    options = analyzer.options()
    source = open_source("images", images, warn=warn)

    def open_outputs(sinks: list, audience_on: bool) -> bool:
        if json_out is not None:
            sinks.append(JsonlSink(json_out))
        if json_out != "-":
            sinks.append(TableSink(ethnicity))
        if save is not None:
            sinks.append(ImageDirSink(save))
        return False

    summary, _, _ = RunPlan("images", ethnicity, warn).execute(source, options, open_outputs)
    _print_summary(summary, "images", json_out, save)
    _exit_for(summary, "images")


@dataclass
class RunPlan:
    """How a source is run through the analyzer into outputs (shared by `run` and `predict`)."""

    kind: str
    ethnicity: bool
    warn: Callable[[str], None]
    describe: bool = False  # a line about the source and the model first
    max_frames: Optional[int] = None
    no_smooth: bool = False

    def execute(self, source, options, open_outputs: Callable[[list, bool], bool],
                audience: AudienceArgs | None = None):
        """Run to the end; returns (summary, signal that ended it or "", MQTT loss message or None).
        ``open_outputs(sinks, audience_on)`` appends the sinks and says whether to print status lines."""
        from edgeag.edge.analyzer import FaceAnalyzer
        from edgeag.edge.runner import deferred_interrupts, run_loop
        from edgeag.edge.sinks import WindowSink

        sinks: list = []
        session = None
        try:
            if audience is not None:
                session = audience.open(ethnicity=self.ethnicity, min_gender_confidence=options.min_gender_confidence,
                                        source=source, live=self.kind != "video", warn=self.warn)
            with_status = open_outputs(sinks, session is not None)
            with FaceAnalyzer(options) as analyzer:
                if session is not None:
                    session.tracker = analyzer.tracker  # visits end when the tracker retires their track
                self._describe(source, analyzer, any(isinstance(s, WindowSink) for s in sinks))
                # Ctrl-C, SIGTERM (systemd, docker stop) and SIGHUP (terminal closed) end the run after the
                # current frame; outputs are finalised.
                with deferred_interrupts() as stop:
                    summary = run_loop(source, analyzer, sinks, track=self.kind != "images", ethnicity=self.ethnicity,
                                       max_frames=self.max_frames, warn=self.warn, stop=stop,
                                       status=_status if with_status else None,
                                       on_frame=session.on_frame if session else None)
        except BaseException:
            _abort(sinks)
            raise
        finally:
            if session is not None:  # open visits and the last aggregate, also after Ctrl-C
                session.close()
            source.close()
        if summary.frames == 0 and summary.skipped:  # unreadable inputs only: their records went beside
            _report_partial(sinks)
        return summary, getattr(stop, "signal_name", ""), session.loss_message() if session else None

    def _describe(self, source, analyzer, window: bool) -> None:
        if not self.describe:
            return
        is_images = self.kind == "images"
        mode = "per image" if is_images else "tracking" + ("" if self.no_smooth else " + smoothing")
        note(f"{source.description}: {self.kind}, model {analyzer.classifier.path.name} "
             f"(input {analyzer.spec.size}x{analyzer.spec.size}), {mode}")
        if window:
            note("q or Esc in the window to stop" + (", any other key: next image" if is_images else ""))


def _status(s, fps: float, n_faces: int) -> None:
    note(f"frame {s.frames}: {fps:.1f} FPS, {n_faces} face(s)")


def _abort(sinks: list) -> None:
    """Earlier outputs stay as they were; what a crashed run wrote is kept beside them."""
    for s in sinks:
        try:
            getattr(s, "abort", s.close)()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
    _report_partial(sinks)


def _report_partial(sinks: list) -> None:
    for s in sinks:
        if getattr(s, "saved_to", None):
            warn(f"partial result kept in {s.saved_to}")


def _open_sinks(sinks: list, src, kind: str, json_out: Optional[str], append: bool, save: Optional[Path],
                headless: bool, quiet: bool, events: bool = False) -> bool:
    """Append the requested outputs to ``sinks`` (so the caller can abort them); True if a window is shown."""
    import os

    from edgeag.edge.sinks import ImageDirSink, JsonlSink, VideoSink, WindowSink, display_available

    is_images = kind == "images"
    if json_out is not None:
        sinks.append(JsonlSink(json_out, append=append))
    if save is not None:
        sinks.append(ImageDirSink(save) if is_images and not save.suffix else VideoSink(save, src.fps))
    show_window = not headless and display_available()
    if show_window:
        sinks.append(WindowSink(f"edgeag - {src.description}", wait_ms=0 if is_images else 1))
    elif not headless and not quiet:
        d = os.environ.get("DISPLAY")
        why = f"no X server answers on DISPLAY={d}" if d else "no display found"
        note(f"{why}: running headless (--headless hides this note)")
    if not sinks and not events and not quiet:
        note("nothing to show or write: add --json FILE|- or --save FILE.mp4 (a summary is printed at the end)")
    return show_window


def _exit_for(summary, kind: str) -> None:
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.lost:
        raise typer.Exit(EXIT_RUNTIME)
    if kind == "images" and summary.frames == 0:
        err_console.print("[red]error:[/] no image could be read")
        raise typer.Exit(EXIT_BAD_INPUT)
    if kind == "images" and summary.skipped:
        raise typer.Exit(EXIT_PARTIAL)


def _print_summary(s, kind: str, json_out: Optional[str], save: Optional[Path], signal_name: str = "") -> None:
    """One line: how the run ended, then what it did."""
    unit = "images" if kind == "images" else "frames"
    if kind == "images" and s.frames == 0 and not s.interrupted:
        return  # nothing was read: `_exit_for` says so in one line (exit 2), not "partly done"
    parts = [f"{s.frames} {unit} in {s.elapsed_s:.1f} s ({s.fps:.1f}/s)", f"{s.faces} faces"]
    if s.skipped and kind != "images":
        parts.append(f"{s.skipped} unreadable {unit} skipped")
    if s.reconnects:
        parts.append(f"{s.reconnects} reconnection(s)")
    outs = [str(p) for p in (json_out if json_out not in (None, "-") else None, save) if p]
    if outs:
        parts.append("wrote " + ", ".join(outs))
    if s.interrupted:
        head = f"interrupted ({signal_name})" if signal_name else "interrupted"
    elif s.lost:
        head = "source lost"
    elif kind == "images" and s.skipped:
        head = f"partly done ({s.skipped} of {s.frames + s.skipped} images unreadable; exit code {EXIT_PARTIAL})"
    else:
        head = "done"
    err_console.print(f"{head}: " + "; ".join(parts), highlight=False, markup=False, soft_wrap=True,
                      style="yellow" if head != "done" else None)
