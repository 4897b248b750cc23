"""Frame sources behind one iterator: camera, video file, stream URL, or still images.

Every source yields ``Frame`` records (BGR as decoded, RGB on demand) and keeps ``stats``: frames read,
unreadable frames or images skipped, reconnections. Faults are handled here, so the loop stays simple:
- a camera or stream that cannot be opened raises ``SourceError`` (exit code 2);
- a live source that stops delivering is reopened up to ``reconnect`` times, then ends (``stats.lost``);
- an unreadable frame of a video file is skipped by seeking past it (bounded), then the video ends;
- an unreadable image is skipped with a warning.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edgeag.errors import BadInputError, SourceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")

Warn = Callable[[str], None]


def _quiet_opencv() -> None:
    """OpenCV and FFmpeg log every failed probe to stderr; our own messages say what matters."""
    from edgeag.edge.native_logs import quiet_env

    quiet_env()  # OPENCV_FFMPEG_LOGLEVEL=-8 (AV_LOG_QUIET) is read when FFmpeg opens
    import cv2

    if not os.environ.get("EDGEAG_DEBUG"):
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # very old OpenCV
            pass


@dataclass
class Frame:
    """One frame: ``bgr`` as decoded by OpenCV; ``rgb`` (for the models) converted once, on first use.
    An image that could not be read has no pixels and says why in ``error``."""

    bgr: np.ndarray | None
    index: int  # position in the source (skipped frames keep their numbers)
    timestamp_ms: int  # media time for files, time since start for live sources
    name: str | None = None  # file name (images mode)
    scale: float = 1.0  # decoded pixels per pixel of the file (big images are decoded reduced)
    error: str | None = None  # why an image could not be read (then ``bgr`` is None)
    _rgb: np.ndarray | None = field(default=None, repr=False)

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            import cv2

            self._rgb = cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)
        return self._rgb


@dataclass
class SourceStats:
    read: int = 0  # frames or images delivered
    skipped: int = 0  # unreadable frames or images
    reconnects: int = 0  # successful reopenings of a live source
    lost: bool = False  # a live source ended because it could not be reopened


class FrameSource:
    """Base class: iterate to get frames; ``close()`` releases the device (also done at the end)."""

    kind = "source"
    live = False  # camera or stream: frames come in real time, drops are retried

    def __init__(self, warn: Warn | None = None) -> None:
        self.stats = SourceStats()
        self.warn: Warn = warn or (lambda msg: None)
        self.fps: float | None = None
        self.description = ""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A camera (index or device path), a video file or a stream URL, through ``cv2.VideoCapture``."""

    HEALTHY_S = 10.0  # seconds of frames after a reconnection that restore the full reconnection budget

    def __init__(self, target: int | str, kind: str, *, warn: Warn | None = None, reconnect: int = 5,
                 capture_size: tuple[int, int] | None = None, open_timeout_ms: int = 10000,
                 max_bad_frames: int = 250) -> None:
        super().__init__(warn)
        _quiet_opencv()
        self.target = target
        self.kind = kind
        self.live = kind in ("camera", "stream")
        self.reconnect = reconnect
        self.capture_size = capture_size
        self.open_timeout_ms = open_timeout_ms
        self.max_bad_frames = max_bad_frames
        self.description = f"camera {target}" if kind == "camera" else str(target)
        if kind == "video" and Path(str(target)).is_dir():
            raise SourceError(f"{target} is a folder, not a video file (use --image for a folder of images)")
        if kind == "video" and not Path(str(target)).is_file():
            raise SourceError(f"video not found: {target}")
        self._cap = self._open_first()
        fps = self._cap.get(_cv2().CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 240.0 else None
        count = self._cap.get(_cv2().CAP_PROP_FRAME_COUNT) if kind in ("video", "stream") else 0
        self.frame_count = int(count) if count and count > 0 else None
        if kind == "stream" and self.frame_count:  # a file served over HTTP: it ends, it does not drop
            self.live = False
        self._attempts_used = 0  # reconnection attempts of the current run of outages
        self._last_reconnect = -1e9

    def _open_first(self):
        """Open the source; a camera or stream still booting gets the ``reconnect`` attempts too."""
        cap = self._open()
        attempt = 0
        while cap is None and self.live and attempt < self.reconnect:
            attempt += 1
            self.warn(f"{self.description}: cannot open yet; retrying ({attempt}/{self.reconnect})")
            time.sleep(min(0.5 * attempt, 3.0))
            cap = self._open()
        if cap is None:
            raise SourceError(self._open_failure_message() + (f"; gave up after {attempt + 1} attempts" if attempt
                                                                else ""))
        return cap

    def _open_failure_message(self) -> str:
        if self.kind == "camera":
            return (f"cannot open camera {self.target}: no such device, or it is busy "
                    "(check `ls /dev/video*`; on a Raspberry Pi see docs/RASPBERRY_PI.md)")
        if self.kind == "stream":
            return f"cannot open stream {self.target} (unreachable, wrong URL, or unsupported protocol)"
        return f"cannot open video {self.target}: not a video, or damaged (a truncated MP4 loses its index)"

    def _open(self):
        cv2 = _cv2()
        params: list[int] = []
        if self.kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.open_timeout_ms]
        try:
            cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, params) if params else cv2.VideoCapture(self.target)
        except cv2.error:
            return None
        if not cap.isOpened():
            cap.release()
            return None
        if self.kind == "camera" and self.capture_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.capture_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.capture_size[1])
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # analyse the newest frame, not a backlog (where supported)
        return cap

    def __iter__(self) -> Iterator[Frame]:
        if self.live:
            yield from self._iter_live()
        else:
            yield from self._iter_file()

    def _iter_file(self) -> Iterator[Frame]:
        cv2 = _cv2()
        fps = self.fps or 30.0
        index = 0
        bad_run = 0
        while self._cap is not None:
            ok, bgr = self._cap.read()
            if ok and bgr is not None:
                if bad_run:
                    self.warn(f"{self.target}: skipped {bad_run} unreadable frame(s) before frame {index}")
                bad_run = 0
                self.stats.read += 1
                yield Frame(bgr, index, int(round(index * 1000.0 / fps)))
                index += 1
                continue
            # End of file, or a damaged frame: the container's frame count tells them apart. Seeking past
            # a damaged stretch reaches the next keyframe; a truncated file fails until the count runs out.
            if self.frame_count is None or index >= self.frame_count - 1 or bad_run >= self.max_bad_frames:
                missing = self.frame_count - index if self.frame_count and index < self.frame_count else 0
                self.stats.skipped += missing
                if bad_run or missing > 1:
                    self.warn(f"{self.target}: the last {bad_run + missing} of {self.frame_count} frames are "
                              "unreadable (file truncated or damaged)")
                return
            bad_run += 1
            self.stats.skipped += 1
            index += 1
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)

    def _iter_live(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            if ok and bgr is not None:
                self.stats.read += 1
                yield Frame(bgr, index, int((time.monotonic() - start) * 1000))
                index += 1
                continue
            if not self._reopen():
                self.stats.lost = True
                return

    def _reopen(self) -> bool:
        """Reconnect a dropped camera or stream, with a growing pause; False when the attempts are used up.

        The ``reconnect`` budget is shared by outages that follow each other within ``HEALTHY_S``
        seconds, so a source that comes back only to drop again at once cannot loop forever.
        """
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if time.monotonic() - self._last_reconnect > self.HEALTHY_S:
            self._attempts_used = 0
        while self._attempts_used < self.reconnect:
            self._attempts_used += 1
            attempt = self._attempts_used
            self.warn(f"{self.description}: no frame; reconnecting ({attempt}/{self.reconnect})")
            time.sleep(min(0.5 * attempt, 3.0))
            cap = self._open()
            if cap is not None:
                ok, _ = cap.read()
                if ok:
                    self._cap = cap
                    self.stats.reconnects += 1
                    self._last_reconnect = time.monotonic()
                    self.warn(f"{self.description}: reconnected")
                    return True
                cap.release()
        self.warn(f"{self.description}: lost after {self.reconnect} reconnection attempts; stopping")
        return False

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource(FrameSource):
    """Still images: files, folders (their image files, sorted) and glob patterns, in the order given.

    An input that gives no image (not found, undecodable, a folder without images) comes as a ``Frame`` with
    ``error`` set and no pixels, in its place, so every output can say what became of every input.
    """

    kind = "images"

    def __init__(self, paths: list[str | Path], *, warn: Warn | None = None) -> None:
        super().__init__(warn)
        self.inputs = [expand_images([p]) for p in paths]  # per argument: (image files, problems)
        if not any(files or problems for files, problems in self.inputs):
            raise BadInputError("no images found in " + ", ".join(str(p) for p in paths))
        self.description = f"{sum(len(files) for files, _ in self.inputs)} image(s)"

    def __iter__(self) -> Iterator[Frame]:
        from edgeag.edge.images import ImageError, read_image

        index = 0
        for files, problems in self.inputs:
            for name, problem in problems:
                yield self._skip(index, name, problem)
                index += 1
            for path in files:
                try:
                    decoded = read_image(path)
                except ImageError as exc:
                    yield self._skip(index, str(path), str(exc))
                else:
                    self.stats.read += 1
                    yield Frame(decoded.bgr, index, 0, name=str(path), scale=decoded.scale)
                index += 1

    def _skip(self, index: int, name: str, why: str) -> Frame:
        self.stats.skipped += 1
        self.warn(f"skipped {name}: {why}")
        return Frame(None, index, 0, name=name, error=why)


def expand_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders and glob patterns -> (image files, [(argument, problem)] for arguments that give none).

    Folders contribute their files with an image suffix (sorted, not recursive); a file named
    explicitly is kept whatever its suffix, so that a wrongly named image still gets a clear error.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((str(p), "no image files in folder"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif glob.has_magic(str(arg)):
            found = sorted(Path(f) for f in glob.glob(str(arg)) if Path(f).is_file())
            if not found:
                problems.append((str(arg), "pattern matches no file"))
            files.extend(found)
        else:
            problems.append((str(p), "not found"))
    return files, problems


def parse_source(text: str) -> tuple[str, int | str]:
    """Guess the kind of a positional SOURCE: camera index, stream URL, images (folder/glob/image) or video."""
    t = text.strip()
    if t.isdigit():
        return "camera", int(t)
    if t.startswith("/dev/video"):
        return "camera", t
    if t.lower().startswith(STREAM_SCHEMES):
        return "stream", t
    p = Path(t)
    if p.is_dir() or glob.has_magic(t) or p.suffix.lower() in IMAGE_SUFFIXES:
        return "images", t
    return "video", t


def open_source(kind: str, target, *, warn: Warn | None = None, reconnect: int = 5,
                capture_size: tuple[int, int] | None = None) -> FrameSource:
    """Open a source of ``kind`` camera | video | stream | images (``target``: index/path, path, URL, paths)."""
    if kind == "images":
        return ImageSource(list(target) if isinstance(target, (list, tuple)) else [target], warn=warn)
    if kind == "camera" and isinstance(target, str) and target.isdigit():
        target = int(target)
    if kind not in ("camera", "video", "stream"):
        raise BadInputError(f"unknown source kind: {kind}")
    return CaptureSource(target, kind, warn=warn, reconnect=reconnect, capture_size=capture_size)


def _cv2():
    import cv2

    return cv2
