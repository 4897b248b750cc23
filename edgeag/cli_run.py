"""`edgeag run` (camera, video, stream or images, live) and `edgeag predict` (photos -> table or JSON).

Thin: options are parsed here, the work is done by edgeag.edge.{sources,runner,sinks} and FaceAnalyzer.
Every message goes to stderr, so `--json -` leaves stdout pure JSON Lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgeag import cli_audience as aud
from edgeag.cli_common import MIN_FACE_OPTION, MIN_GENDER_CONFIDENCE_HELP, Detector, detector_option, err_console, \
    handle_errors
from edgeag.edge.face import MAX_GAP_S
from edgeag.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_RUNTIME, BadInputError

_MODEL_HELP = "Classifier .tflite made by `edgeag quantize` (default: the bundled int8 model)."


def _warn(msg: str) -> None:
    err_console.print(msg, style="yellow", highlight=False, markup=False, soft_wrap=True)


def _note(msg: str) -> None:
    err_console.print(msg, highlight=False, markup=False, soft_wrap=True)


def _parse_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    raise BadInputError(f"--size must look like 640x480, got {text!r}")


def _choose_source(source: Optional[List[str]], camera: Optional[str], video: Optional[Path],
                   image: Optional[List[str]], stream: Optional[str]) -> tuple[str, object]:
    from edgeag.edge.sources import parse_source

    source = list(source or [])
    image = list(image or [])
    # A shell-expanded glob (`--image photos/*.jpg`, `edgeag run *.jpg`) arrives as several arguments.
    if source and (image or len(source) > 1):
        image, source = image + source, []
    given = [(k, v) for k, v in (("camera", camera), ("video", video), ("images", image), ("stream", stream))
             if v not in (None, [])]
    if source:
        given.append(parse_source(source[0]))
    if len(given) > 1:
        raise BadInputError("give one source: SOURCE, --camera, --video, --image or --stream")
    if not given:
        return "camera", 0  # the bare command does something useful
    kind, value = given[0]
    if kind == "images" and not isinstance(value, list):
        value = [value]
    if kind == "video":
        value = str(value)
    return kind, value


@handle_errors
def run(
    source: Optional[List[str]] = typer.Argument(None, metavar="SOURCE", help="Camera index, video file, images (files, folder, "
                                                 "glob) or stream URL: guessed, or use an option below. "
                                                 "Default: camera 0.", show_default=False),
    camera: Optional[str] = typer.Option(None, "--camera", metavar="N|DEVICE", help="Camera index (0, 1, ...) or device (/dev/video0)."),
    video: Optional[Path] = typer.Option(None, "--video", metavar="FILE", help="Video file."),
    image: Optional[List[str]] = typer.Option(None, "--image", metavar="PATH", help="Image file, folder or glob (repeatable)."),
    stream: Optional[str] = typer.Option(None, "--stream", metavar="URL", help="Stream URL: rtsp://, http(s)://, tcp://, udp://."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="FILE", help=_MODEL_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="LiteRT CPU threads (Raspberry Pi: 4)."),
    detector: Detector = detector_option(),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0.0, max=1.0,
                                         help="Face detector score threshold."),
    max_faces: Optional[int] = typer.Option(None, "--max-faces", min=1, help="Analyse at most N faces per frame."),
    min_gender_confidence: float = typer.Option(0.0, "--min-gender-confidence", min=0.0, max=1.0,
                                                help=MIN_GENDER_CONFIDENCE_HELP),
    min_face: int = MIN_FACE_OPTION,
    max_gap: float = typer.Option(MAX_GAP_S, "--max-gap", metavar="SECONDS", min=0.0,
                                  help="A face unseen for longer (detector misses, occlusion) loses its track ID."),
    headless: bool = typer.Option(False, "--headless", help="No window (automatic when no display is available)."),
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE|-", help="Write JSON Lines (one record per frame) to FILE, "
                                           "or '-' for stdout. FILE is replaced when the run ends, never before."),
    append: bool = typer.Option(False, "--append", help="Add the records to the end of the --json FILE "
                                "instead of replacing it."),
    save: Optional[Path] = typer.Option(None, "--save", metavar="FILE|DIR", help="Annotated video (FILE.mp4/.avi); with images, a folder."),
    ethnicity: bool = typer.Option(False, "--ethnicity", help="Show ethnicity in the captions."),
    no_smooth: bool = typer.Option(False, "--no-smooth", help="Raw per-frame predictions (IDs are still tracked)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after N frames."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Camera capture size, e.g. 640x480."),
    reconnect: int = typer.Option(5, "--reconnect", min=0, help="Reconnection attempts when a camera/stream drops."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the final summary on stderr."),
    events: Optional[str] = aud.EVENTS, mqtt: Optional[str] = aud.MQTT, mqtt_spool: Optional[str] = aud.MQTT_SPOOL,
    device: Optional[str] = aud.DEVICE, aggregate_only: bool = aud.AGGREGATE_ONLY, interval: float = aud.INTERVAL,
    min_dwell: float = aud.MIN_DWELL, age_brackets: str = aud.AGE_BRACKETS, start_time: Optional[str] = aud.START_TIME,
) -> None:
    """Analyse frames from a camera, video, stream or images: boxes, age, gender, live."""
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions
    from edgeag.edge.runner import deferred_interrupts, run_loop
    from edgeag.edge.sources import open_source

    kind, target = _choose_source(source, camera, video, image, stream)
    capture_size = _parse_size(size)
    if capture_size and kind != "camera":
        raise BadInputError("--size applies to cameras only")
    if append and json_out in (None, "-"):
        raise BadInputError("--append needs --json FILE")
    if events == "-" and json_out == "-":
        raise BadInputError("--json - and --events - cannot both write to stdout")
    if (events or mqtt) and kind == "images":
        raise BadInputError("--events/--mqtt need a video, camera or stream (visits are tracks over time)")
    warn = (lambda m: None) if quiet else _warn
    _check_model(model)
    src = open_source(kind, target, warn=warn, reconnect=reconnect, capture_size=capture_size)
    is_images = kind == "images"
    sinks: list = []
    audience = None
    try:
        audience = aud.open_audience(events=events, mqtt=mqtt, mqtt_spool=mqtt_spool, device=device,
                                     aggregate_only=aggregate_only, interval=interval, min_dwell=min_dwell,
                                     age_brackets=age_brackets, start_time=start_time, ethnicity=ethnicity,
                                     min_gender_confidence=min_gender_confidence, source=src,
                                     live=kind != "video", warn=warn)
        show_window = _open_sinks(sinks, src, kind, json_out, append, save, headless, quiet, audience is not None)
        options = FaceAnalyzerOptions(model_path=model, threads=threads, detector=detector.value,
                                      min_confidence=min_confidence, max_faces=max_faces, video=not is_images,
                                      smooth=not no_smooth, min_gender_confidence=min_gender_confidence,
                                      min_face=min_face, max_gap_s=max_gap)
        with FaceAnalyzer(options) as analyzer:
            if audience is not None:
                audience.tracker = analyzer.tracker  # visits end when the tracker retires their track
            if not quiet:
                mode = "per image" if is_images else "tracking" + ("" if no_smooth else " + smoothing")
                _note(f"{src.description}: {kind}, model {analyzer.classifier.path.name} "
                      f"(input {analyzer.spec.size}x{analyzer.spec.size}), {mode}")
                if show_window:
                    _note("q or Esc in the window to stop" + (", any other key: next image" if is_images else ""))

            def status(s, fps, n_faces):
                _note(f"frame {s.frames}: {fps:.1f} FPS, {n_faces} face(s)")

            # Ctrl-C, SIGTERM (systemd, docker stop) and SIGHUP (terminal closed) end the run after the
            # current frame; outputs are finalised.
            with deferred_interrupts() as stop:
                summary = run_loop(src, analyzer, sinks, track=not is_images, ethnicity=ethnicity,
                                   max_frames=max_frames, warn=warn, stop=stop,
                                   status=None if (show_window or quiet or json_out == "-") else status,
                                   on_frame=audience.on_frame if audience else None)
    except BaseException:
        for s in sinks:  # earlier outputs stay as they were; what a crashed run wrote is kept beside them
            try:
                getattr(s, "abort", s.close)()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            if getattr(s, "saved_to", None):
                _warn(f"partial result kept in {s.saved_to}")
        raise
    finally:
        if audience is not None:  # open visits and the last aggregate, also after Ctrl-C
            audience.close()
        src.close()
    _print_summary(summary, kind, json_out, save, getattr(stop, "signal_name", ""))
    if audience is not None and audience.loss_message():
        _warn(audience.loss_message())
    _exit_for(summary, kind)


def _check_model(model: Optional[Path]) -> None:
    if model is not None and model.is_dir():
        raise BadInputError(f"--model: {model} is a folder; give a .tflite file made by `edgeag quantize`")
    if model is not None and not model.is_file():
        raise BadInputError(f"model file not found: {model}")


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
        _note(f"{why}: running headless (--headless hides this note)")
    if not sinks and not events and not quiet:
        _note("nothing to show or write: add --json FILE|- or --save FILE.mp4 (a summary is printed at the end)")
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


@handle_errors
def predict(
    images: List[str] = typer.Argument(..., metavar="IMAGES", help="Image files, folders or globs."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line and image: "
                                 '{"file": ..., "faces": [...]} (or "error").'),
    model: Optional[Path] = typer.Option(None, "--model", metavar="FILE", help=_MODEL_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="LiteRT CPU threads."),
    detector: Detector = detector_option(),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0.0, max=1.0,
                                         help="Face detector score threshold."),
    max_faces: Optional[int] = typer.Option(None, "--max-faces", min=1, help="At most N faces per image."),
    min_gender_confidence: float = typer.Option(0.0, "--min-gender-confidence", min=0.0, max=1.0,
                                                help=MIN_GENDER_CONFIDENCE_HELP),
    min_face: int = MIN_FACE_OPTION,
    ethnicity: bool = typer.Option(False, "--ethnicity", help="Show the ethnicity column in the table."),
    save: Optional[Path] = typer.Option(None, "--save", metavar="DIR", help="Folder for annotated copies of the images."),
) -> None:
    """Analyse photos: a table, or one JSON object per image with --json."""
    import json

    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions
    from edgeag.edge.images import ImageError, read_image, scale_boxes
    from edgeag.edge.sinks import ImageDirSink, annotate
    from edgeag.edge.sources import expand_images

    _check_model(model)
    # Inputs in the order given; an argument that yields no image becomes an error entry in its place.
    entries: list[Path | dict] = []
    for arg in images:
        files, problems = expand_images([arg])
        entries.extend(files)
        entries.extend({"file": name, "error": why} for name, why in problems)
    results: list[dict] = []
    n_ok = 0
    fa = None
    sink = ImageDirSink(save) if save else None
    try:
        for entry in entries:
            decoded = None
            if isinstance(entry, dict):
                r = entry
            else:
                try:
                    decoded = read_image(entry)
                except ImageError as exc:
                    r = {"file": str(entry), "error": str(exc)}
            if decoded is not None:
                if fa is None:  # models load only once an image was read
                    fa = FaceAnalyzer(FaceAnalyzerOptions(model_path=model, threads=threads,
                                                          detector=detector.value,
                                                          min_confidence=min_confidence, max_faces=max_faces,
                                                          min_gender_confidence=min_gender_confidence,
                                                          min_face=min_face))
                found = fa.analyze(decoded.rgb)
                faces = [f.to_dict() for f in found]
                r = {"file": str(entry), "faces": scale_boxes(faces, decoded.scale)}  # in the file's pixels
                n_ok += 1
                if sink:
                    sink.write(r, annotate(decoded.bgr, found, None, ethnicity))
            _emit(r, as_json, json)
            results.append(r)
    finally:
        if fa is not None:
            fa.close()
    if not as_json:
        _print_table(results, ethnicity)
    _predict_exit(len(results), n_ok)


def _predict_exit(n: int, n_ok: int) -> None:
    if n_ok == 0:
        err_console.print(f"[red]error:[/] no image could be read ({n} input(s))")
        raise typer.Exit(EXIT_BAD_INPUT)
    if n_ok < n:
        err_console.print(f"[yellow]partly done:[/] {n_ok} of {n} images analysed, {n - n_ok} could not be read "
                          f"(exit code {EXIT_PARTIAL})", highlight=False)
        raise typer.Exit(EXIT_PARTIAL)


def _emit(r: dict, as_json: bool, json) -> None:
    """JSON mode streams one line per image as soon as it is done; errors also go to stderr."""
    if as_json:
        try:
            typer.echo(json.dumps(r, separators=(",", ":")))
        except BrokenPipeError:  # `edgeag predict ... --json | head`: the reader is gone
            from edgeag.edge.sinks import _silence_stdout

            _silence_stdout()
            raise typer.Exit(0) from None
    if "error" in r:
        _warn(f"skipped {r['file']}: {r['error']}")


def _num(v: float | None, fmt: str) -> str:
    """A number for the table, '?' when unknown (null)."""
    return "?" if v is None else fmt.format(v)


def _print_table(results: list[dict], ethnicity: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for col in ("file", "#", "box x,y,w,h", "score", "age", "gender"):
        t.add_column(col, justify="left" if col in ("file", "gender", "box x,y,w,h") else "right",
                     overflow="fold" if col == "file" else "ellipsis")
    if ethnicity:
        t.add_column("ethnicity")
    for r in results:
        name = Path(r["file"]).name
        if "error" in r:
            t.add_row(name, "", f"[red]{r['error']}[/]", "", "", "", *([""] if ethnicity else []))
            continue
        if not r["faces"]:
            t.add_row(name, "0", "[dim]no face[/]", "", "", "", *([""] if ethnicity else []))
        for i, f in enumerate(r["faces"], 1):
            row = [name if i == 1 else "", str(i), ",".join(str(v) for v in f["box"]), f"{f['score']:.2f}",
                   _num(f["age"], "{:.0f}"), f"{f['gender'] or '?'} ({_num(f['gender_confidence'], '{:.0%}')})"]
            if ethnicity:
                row.append(f"{f['ethnicity'] or '?'} ({_num(f['ethnicity_confidence'], '{:.0%}')})")
            t.add_row(*row)
    Console().print(t)
