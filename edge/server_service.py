"""The service behind the HTTP server, independent of the web framework: its options, a pool of analyzers
(see edge/server.py for why a pool) and per-request analysis of uploaded bytes."""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeag._version import __version__
from edgeag.edge.analyzer import FaceAnalyzerOptions
from edgeag.edge.server_intake import MB, ApiError, decode_upload, too_large

log = logging.getLogger("edgeag.server")


def _analyzer_defaults() -> FaceAnalyzerOptions:
    # One LiteRT thread per analyzer: workers x threads should not exceed the cores.
    return FaceAnalyzerOptions(threads=1)


@dataclass
class ServerOptions:
    """How ``create_app`` builds the service. Limits protect a small device from a single request.

    ``analyzer`` are the options of each analyzer in the pool (every request is an unrelated picture, so its
    ``video`` and tracking options do not apply); the other fields are the server's own.
    """

    analyzer: FaceAnalyzerOptions = field(default_factory=_analyzer_defaults)
    workers: int = 2  # analyzers in the pool = requests analysed in parallel
    max_upload_bytes: int = 10 * MB  # larger bodies -> 413
    max_side: int = 8192  # larger image width or height -> 413 (checked from the header, before decoding)
    busy_timeout: float = 30.0  # seconds a request waits for a free analyzer before 503
    upload_timeout: float = 30.0  # seconds an upload may send nothing before 408 (a stalled or too slow client)

    @classmethod
    def from_fields(cls, **fields: Any) -> "ServerOptions":
        """Options from flat keyword arguments: ``ServerOptions`` fields, and ``FaceAnalyzerOptions`` fields
        (e.g. ``model_path``, ``min_face``) for ``analyzer``. Unknown names raise TypeError."""
        own = {f.name for f in dataclasses.fields(cls)} - {"analyzer"}
        analyzer = {k: v for k, v in fields.items() if k not in own}
        return cls(analyzer=dataclasses.replace(_analyzer_defaults(), **analyzer),
                   **{k: v for k, v in fields.items() if k in own})


class AnalyzerPool:
    """A fixed set of analyzers, each lent to one caller at a time (see edge/server.py for why)."""

    def __init__(self, factory: Callable[[], Any], size: int) -> None:
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.size = size
        self._all = [factory() for _ in range(size)]  # at startup: the first request pays no load time
        self._free: queue.Queue = queue.Queue()
        for a in self._all:
            self._free.put(a)
        self._closed = False

    @property
    def first(self) -> Any:
        return self._all[0]

    @contextmanager
    def borrow(self, timeout: float | None = None) -> Iterator[Any]:
        if self._closed:
            raise ApiError(503, "server is shutting down")
        try:
            a = self._free.get(timeout=timeout)
        except queue.Empty:
            raise ApiError(503, "server busy: all analyzers in use, try again") from None
        try:
            yield a
        finally:
            self._free.put(a)

    def close(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for analyzers in use to come back, then release every one. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for _ in range(self.size):
            try:
                self._free.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                log.warning("an analyzer was still busy at shutdown")
                break
        for a in self._all:
            try:
                a.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("analyzer close failed", exc_info=True)


class AnalyzeService:
    """Model loading and per-request analysis, independent of the web framework."""

    def __init__(self, options: ServerOptions, factory: Callable[[], Any] | None = None) -> None:
        self.options = options
        if factory is None:
            from edgeag.edge.analyzer import FaceAnalyzer

            # Every request is an unrelated picture (video=False: no stream of frames to track).
            analyzer_options = dataclasses.replace(options.analyzer, video=False)
            factory = lambda: FaceAnalyzer(analyzer_options)  # noqa: E731
        self.pool = AnalyzerPool(factory, options.workers)
        first = self.pool.first
        self.metadata: dict = first.metadata
        classifier = getattr(first, "classifier", None)
        self.model_file = Path(getattr(classifier, "path", "model")).name
        self.detector = getattr(getattr(first, "detector", None), "name", None)  # full | short
        self.requests = 0  # analysed images since startup (approximate under concurrency; for /healthz)

    def analyze_bytes(self, data: bytes) -> dict:
        """Decode, analyse and forget one image. Returns the JSON response body."""
        if len(data) > self.options.max_upload_bytes:
            raise ApiError(413, too_large(self.options.max_upload_bytes))
        from edgeag.edge.images import scale_faces

        t0 = time.perf_counter()
        decoded = decode_upload(data, self.options.max_side)
        rgb = decoded.rgb
        t1 = time.perf_counter()
        with self.pool.borrow(self.options.busy_timeout) as analyzer:
            t2 = time.perf_counter()
            faces = scale_faces(analyzer.analyze(rgb), decoded.scale)  # boxes in the uploaded image's pixels
        t3 = time.perf_counter()
        self.requests += 1
        timings = {"decode_ms": (t1 - t0) * 1e3, "wait_ms": (t2 - t1) * 1e3, **faces.timings_ms,
                   "total_ms": (t3 - t0) * 1e3}
        width, height = decoded.size
        return {"faces": [f.to_dict() for f in faces], "width": width, "height": height,
                "timings": {k: round(v, 2) for k, v in timings.items()}}

    def model_info(self) -> dict:
        o, a = self.options, self.options.analyzer
        return {"file": self.model_file, "metadata": self.metadata,
                "server": {"edgeag_version": __version__, "workers": o.workers, "threads": a.threads,
                           "detector": self.detector,
                           "min_confidence": a.min_confidence, "min_gender_confidence": a.min_gender_confidence,
                           "min_face": a.min_face,
                           "max_upload_bytes": o.max_upload_bytes,
                           "max_side": o.max_side}}

    def close(self) -> None:
        self.pool.close()
