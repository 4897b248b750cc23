"""Where results go: a window, a JSON Lines file (or stdout), an annotated video or annotated images.

Each sink has ``write(record, image) -> bool`` (False: the user asked to stop, e.g. pressed q in the
window), ``close()``, which must leave a complete file behind (flushed JSON, finalised MP4) whatever ended
the run, and ``abort()`` (setup failed or the run crashed: drop what was written). ``image`` is the annotated
BGR frame, drawn once per frame and only if a sink wants it.

Files are written under a temporary name beside the target (``.NAME.partPID.EXT``) and renamed into place by
``close()``, so an earlier result is never truncated by a run that fails, and never half-overwritten by one
that crashes (``abort()`` keeps what a crashed run wrote as ``NAME.partial.EXT`` beside it, or as NAME if
there was none); ``JsonlSink(append=True)`` adds to the file instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

import numpy as np

from edgeag.edge.face import Face
from edgeag.errors import BadInputError

# fourccs to try per container, best first: H.264 ('avc1') plays in browsers but needs an encoder that not
# every OpenCV build has (the pip wheels often lack one); MPEG-4 part 2 ('mp4v') is always there.
VIDEO_SUFFIXES = {".mp4": ("avc1", "mp4v"), ".m4v": ("avc1", "mp4v"), ".mov": ("avc1", "mp4v"),
                  ".mkv": ("avc1", "mp4v"), ".avi": ("MJPG",)}


def _output_path(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot become a file."""
    if path.is_dir():
        raise BadInputError(f"{option}: {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise BadInputError(f"{option}: folder does not exist: {path.parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise BadInputError(f"{option}: {path} is read-only")


def _part_name(path: Path) -> Path:
    """The temporary name of ``path`` while it is written: hidden, same folder (rename is atomic), same suffix."""
    return path.with_name(f".{path.stem}.part{os.getpid()}{path.suffix}")


def _commit(part: Path, path: Path) -> None:
    """Rename a finished temporary file into place, keeping the permissions of the file it replaces."""
    try:
        os.chmod(part, path.stat().st_mode & 0o7777)
    except OSError:
        pass
    os.replace(part, path)


def _settle(part: Path, path: Path, written: int, commit: bool, keep_empty: bool) -> Path | None:
    """Where a temporary output ends: renamed onto ``path`` when the run ended normally; after a crash, what
    was written is kept beside an earlier result (``NAME.partial.EXT``), never over it. Returns the file."""
    if commit and (written or (keep_empty and not path.exists())):
        _commit(part, path)
        return path
    if not commit and written:
        dest = path.with_name(f"{path.stem}.partial{path.suffix}") if path.exists() else path
        os.replace(part, dest)
        return dest
    _discard(part)
    return None


def _discard(part: Path) -> None:
    try:
        part.unlink()
    except OSError:
        pass


def display_available() -> bool:
    """Whether a window can be shown.

    On Linux OpenCV's Qt needs an X server (X11 or XWayland). Without one Qt aborts the whole process
    (no exception to catch), so we check first: DISPLAY must be set and its server must accept a connection
    (a stale DISPLAY, e.g. from an SSH session without X forwarding, is common on headless devices).
    """
    if not sys.platform.startswith("linux"):
        return True
    return _x_server_answers(os.environ.get("DISPLAY", ""))


def _x_server_answers(display: str, timeout: float = 0.5) -> bool:
    import re
    import socket

    m = re.fullmatch(r"(?:unix)?(?P<host>[^:]*):(?P<num>\d+)(?:\.\d+)?", display.strip())
    if not m:
        return False
    host, num = m.group("host"), int(m.group("num"))
    try:
        if host in ("", "unix"):
            for addr in (f"/tmp/.X11-unix/X{num}", f"\0/tmp/.X11-unix/X{num}"):  # path, then abstract
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(timeout)
                    try:
                        sock.connect(addr)
                        return True
                    except OSError:
                        continue
            return False
        with socket.create_connection((host, 6000 + num), timeout=timeout):
            return True
    except OSError:
        return False


def _color(track_id: int | None) -> tuple[int, int, int]:
    if track_id is None:
        return (80, 200, 80)
    h = (track_id * 47) % 180  # well-spread hues for consecutive IDs
    import cv2

    hsv = np.uint8([[[h, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def label_of(face: Face, ethnicity: bool = False) -> str:
    """'#3 34y F 92%' (+ ethnicity): the caption drawn above a face box."""
    parts = [] if face.track_id is None else [f"#{face.track_id}"]
    if face.age is None:  # under --min-face: no attributes
        return " ".join([*parts, "?"])
    parts.append(f"{face.age:.0f}y")
    g = face.gender
    parts.append(f"{g[:1].upper() if g else '?'} {100 * face.gender_confidence:.0f}%")
    if ethnicity and face.ethnicity:
        parts.append(f"{face.ethnicity} {100 * (face.ethnicity_confidence or 0):.0f}%")
    return " ".join(parts)


def annotate(bgr: np.ndarray, faces: list[Face], fps: float | None = None, ethnicity: bool = False) -> np.ndarray:
    """Draw the boxes of ``faces`` (in ``bgr``'s pixels), their captions and the FPS on ``bgr`` in place (and
    return it)."""
    import cv2

    h, w = bgr.shape[:2]
    scale = max(0.4, min(1.2, w / 1000))
    thick = max(1, int(round(2 * scale)))
    for f in faces:
        x, y, bw, bh = (int(v) for v in f.box)
        c = _color(f.track_id)
        cv2.rectangle(bgr, (x, y), (x + bw, y + bh), c, thick)
        text = label_of(f, ethnicity)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(h - 1, y + bh + th + 4)
        cv2.rectangle(bgr, (x, ty - th - base), (x + tw + 4, ty + base // 2), c, cv2.FILLED)
        cv2.putText(bgr, text, (x + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    if fps is not None:
        cv2.putText(bgr, f"{fps:.1f} FPS", (8, int(24 * scale + 8)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(bgr, f"{fps:.1f} FPS", (8, int(24 * scale + 8)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return bgr


class Sink:
    needs_image = False

    def write(self, record: dict, image: np.ndarray | None) -> bool:
        return True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """The run failed before or while writing: leave any earlier output as it was."""
        self.close()


class _FileSink(Sink):
    """A sink writing one output file: ``_finish(commit)`` keeps it (close) or leaves an earlier one (abort)."""

    def close(self) -> None:
        self._finish(commit=True)

    def abort(self) -> None:
        self._finish(commit=False)

    def _finish(self, commit: bool) -> None:
        raise NotImplementedError


class JsonlSink(_FileSink):
    """One JSON object per line to a file or, with ``-``, to stdout (then nothing else goes to stdout).

    A file is written under a temporary name and renamed into place by ``close()``; with ``append`` the
    records are added to the end of the file (created if missing) as they come.
    """

    def __init__(self, target: str | Path, append: bool = False, option: str = "--json") -> None:
        self.target = str(target)
        self._part: Path | None = None
        self.saved_to: Path | None = None  # where the records ended up (set when the sink finishes)
        self._own = self.target != "-"
        self.count = 0
        if not self._own:
            self._f: IO[str] = sys.stdout
            return
        p = self.path = Path(self.target)
        _output_path(p, option)
        direct = append or (p.exists() and not p.is_file())  # /dev/null, a FIFO: never replace those
        out = p if direct else _part_name(p)
        try:
            self._f = out.open("a" if direct else "w", encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"{option}: cannot write {p}: {exc.strerror or exc}") from None
        self._part = None if direct else out

    def write(self, record: dict, image: np.ndarray | None) -> bool:
        try:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._f.flush()  # a consumer (or a crash) sees every finished frame
        except BrokenPipeError:  # `... --json - | head`: the reader is gone, so stop quietly
            _silence_stdout()
            return False
        self.count += 1
        return True

    def _finish(self, commit: bool) -> None:
        try:
            self._f.flush()
        except (OSError, ValueError):  # stdout closed by a pipe reader that went away
            pass
        if not self._own:
            return
        self._f.close()
        part, self._part = self._part, None
        if part is not None:  # an empty result replaces nothing that existed
            self.saved_to = _settle(part, self.path, self.count, commit, keep_empty=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class VideoSink(_FileSink):
    """An annotated video; opened at the first frame (size known then), renamed into place by ``close()``."""

    needs_image = True

    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        self.saved_to: Path | None = None  # where the video ended up (set when the sink finishes)
        codecs = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        if codecs is None:
            raise BadInputError(f"--save: use a video file name ending in {', '.join(VIDEO_SUFFIXES)}, "
                                f"or a folder for annotated images: {self.path}")
        _output_path(self.path, "--save")
        self._part = _part_name(self.path)
        try:  # fail now, with the reason, rather than at the first frame
            self._part.open("wb").close()
        except OSError as exc:
            raise BadInputError(f"--save: cannot write in {self.path.parent}: {exc.strerror or exc}") from None
        self.codecs = codecs
        self.fourcc: str | None = None  # the one that worked
        self.fps = fps or 15.0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.count = 0

    def _open_writer(self, size: tuple[int, int]):
        import cv2

        for fourcc in self.codecs:
            writer = cv2.VideoWriter(str(self._part), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
            if writer.isOpened():
                self.fourcc = fourcc
                return writer
            writer.release()
        raise BadInputError(f"--save: this OpenCV build has no encoder for {self.path.suffix} "
                            f"({' or '.join(self.codecs)}); try .avi")

    def write(self, record: dict, image: np.ndarray | None) -> bool:
        import cv2

        if image is None:
            return True
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            self._writer = self._open_writer(self._size)
        if (image.shape[1], image.shape[0]) != self._size:  # images of mixed sizes
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.count += 1
        return True

    def _finish(self, commit: bool) -> None:
        if self._writer is not None:
            self._writer.release()  # writes the MP4 index: without it the file is unplayable
            self._writer = None
        part, self._part = self._part, None
        if part is not None:
            self.saved_to = _settle(part, self.path, self.count, commit, keep_empty=False)


class ImageDirSink(Sink):
    """Annotated images into a folder, one per input frame (images mode: same file names).

    Each image is written under a temporary name and renamed, so a crash never leaves a half-written one.
    """

    needs_image = True

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise BadInputError(f"--save: {self.folder} is a file; give a folder for annotated images")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"--save: cannot create folder {self.folder}: {exc.strerror or exc}") from None
        self.count = 0

    def write(self, record: dict, image: np.ndarray | None) -> bool:
        import cv2

        if image is None:
            return True
        name = Path(record["file"]).name if record.get("file") else f"frame_{record['frame']:06d}.jpg"
        out = self.folder / name
        if out.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            out = out.with_suffix(".jpg")
        ok, buf = cv2.imencode(out.suffix, image)
        if ok:
            part = _part_name(out)
            try:
                buf.tofile(str(part))
                os.replace(part, out)
            except OSError as exc:
                _discard(part)
                raise BadInputError(f"--save: cannot write {out}: {exc.strerror or exc}") from None
            self.count += 1
        return True


class WindowSink(Sink):
    """An OpenCV window; q or Esc (or closing the window) stops the run.

    ``wait_ms`` = 0 waits for a key after each frame (still images: any key shows the next one).
    """

    needs_image = True

    def __init__(self, title: str = "edgeag", wait_ms: int = 1) -> None:
        self.title = title
        self.wait_ms = wait_ms
        self._open = False

    def write(self, record: dict, image: np.ndarray | None) -> bool:
        import cv2

        if image is None:
            return True
        if not self._open:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
            self._open = True
        cv2.imshow(self.title, image)
        key = cv2.waitKey(self.wait_ms) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:  # the user closed the window with the mouse
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return False
        except cv2.error:
            return False
        return True

    def close(self) -> None:
        if self._open:
            import cv2

            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # lets the GUI thread actually remove it
            except cv2.error:
                pass
            self._open = False
