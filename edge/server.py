"""The HTTP API and web page behind ``edgeag serve`` (FastAPI).

    from edgeag.edge.server import create_app
    app = create_app()                     # loads the model once, here
    # uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: ``POST /v1/analyze`` (multipart field ``image`` or a raw JPEG/PNG/WebP/BMP body) -> faces as
``Face.to_dict()`` plus image size and timings; ``WS /v1/stream`` (binary frames in, one JSON result per frame
out); ``GET /v1/model``; ``GET /healthz``; ``GET /`` (the page); ``GET /docs`` (OpenAPI).

Privacy: request bodies are read into memory, analysed and dropped. Nothing is written to disk (the multipart
body is parsed in memory on purpose: Starlette's form parser would spool files over 1 MB to a temp file).

Concurrency: a LiteRT interpreter holds its input/output tensors as state (set -> invoke -> get), and a
MediaPipe task serialises its calls per instance, so neither can be shared by concurrent requests. The server
keeps a small *pool* of independent analyzers (``workers``, default 2 = the cores of a small board), each used
by one request at a time: N requests run truly in parallel (LiteRT and MediaPipe release the GIL), the rest
wait for a free analyzer (503 after ``busy_timeout`` seconds). A pool of one is a plain lock.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import struct
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edgeag._version import __version__
from edgeag.edge.face import MIN_FACE_PX
from edgeag.errors import EdgeagError

log = logging.getLogger("edgeag.server")
# python-multipart logs its parse errors (e.g. "Expected boundary character 45, got 103") on top of the 400
# we answer with; one message per fault is enough.
logging.getLogger("python_multipart").setLevel(logging.CRITICAL)

MB = 1024 * 1024
# Multipart framing (boundaries, part headers) around the image: allowed on top of the image size limit.
_MULTIPART_SLACK = 64 * 1024


@dataclass
class ServerOptions:
    """How ``create_app`` builds the service. Limits protect a small device from a single request."""

    model_path: str | Path | None = None  # classifier .tflite; None = bundled default
    detector: str | Path | None = None  # "full" or "short" range BlazeFace (or a .tflite); None = default
    threads: int | None = 1  # LiteRT threads per analyzer (workers x threads should not exceed the cores)
    workers: int = 2  # analyzers in the pool = requests analysed in parallel
    min_confidence: float = 0.5  # detector score threshold
    max_faces: int | None = None  # keep only the N most confident faces per image
    min_gender_confidence: float = 0.0  # below it a face's gender is null (see FaceAnalyzerOptions)
    min_face: int = MIN_FACE_PX  # narrower faces: attributes null (see FaceAnalyzerOptions)
    max_upload_bytes: int = 10 * MB  # larger bodies -> 413
    max_side: int = 8192  # larger image width or height -> 413 (checked from the header, before decoding)
    busy_timeout: float = 30.0  # seconds a request waits for a free analyzer before 503
    upload_timeout: float = 30.0  # seconds an upload may send nothing before 408 (a stalled or too slow client)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status (never a traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------- images

# Status per ``ImageError.reason`` of the shared decoder (edge/images.py).
_IMAGE_STATUS = {"empty": 400, "unsupported": 415, "too_large": 413, "corrupt": 400}


def decode_upload(data: bytes, max_side: int = 8192):
    """Uploaded bytes -> ``DecodedImage`` (big images reduced on decode), or ApiError 415 (not an image we
    take), 413 (over ``max_side``, judged from the header before any decoding) or 400 (empty, corrupt)."""
    from edgeag.edge.images import ImageError, decode_bgr

    if not data:
        raise ApiError(400, "empty body: send a JPEG, PNG, WebP or BMP image")
    try:
        return decode_bgr(data, max_side=max_side, known_formats_only=True)
    except ImageError as exc:
        raise ApiError(_IMAGE_STATUS.get(exc.reason, 400), str(exc)) from None


def extract_multipart_image(body: bytes, content_type: str) -> bytes:
    """The bytes of the ``image`` part (else the first file part) of a multipart/form-data body, in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body without a boundary")
    parts: list[dict] = []
    header = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(d: bytes, s: int, e: int) -> None:
        header["field"] += d[s:e]

    def on_header_value(d: bytes, s: int, e: int) -> None:
        header["value"] += d[s:e]

    def on_header_end() -> None:
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(d: bytes, s: int, e: int) -> None:
        parts[-1]["data"] += d[s:e]

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python_multipart raises its own errors with parser details
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__})") from None
    files = []
    for p in parts:
        _, disp = parse_options_header(p["headers"].get(b"content-disposition", b""))
        if disp.get(b"name") == b"image":
            return bytes(p["data"])
        if b"filename" in disp:
            files.append(p)
    if files:
        return bytes(files[0]["data"])
    raise ApiError(400, "no image in the form: send the file in a field named 'image'")


# ---------------------------------------------------------------------------------------------- service

class AnalyzerPool:
    """A fixed set of analyzers, each lent to one caller at a time (see the module docstring for why)."""

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
            from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions

            # Every request is an unrelated picture (video=False: no stream of frames to track).
            aopts = FaceAnalyzerOptions(model_path=options.model_path, detector=options.detector,
                                        min_confidence=options.min_confidence, threads=options.threads,
                                        video=False, max_faces=options.max_faces,
                                        min_gender_confidence=options.min_gender_confidence,
                                        min_face=options.min_face)
            factory = lambda: FaceAnalyzer(aopts)  # noqa: E731
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
            raise ApiError(413, _too_large(self.options.max_upload_bytes))
        from edgeag.edge.images import scale_faces

        t0 = time.perf_counter()
        decoded = decode_upload(data, self.options.max_side)
        rgb = decoded.rgb
        t1 = time.perf_counter()
        with self.pool.borrow(self.options.busy_timeout) as analyzer:
            t2 = time.perf_counter()
            faces = scale_faces(analyzer.analyze(rgb), decoded.scale)  # boxes in the uploaded image's pixels
            stages = dict(analyzer.last_timings)
        t3 = time.perf_counter()
        self.requests += 1
        timings = {"decode_ms": (t1 - t0) * 1e3, "wait_ms": (t2 - t1) * 1e3, **stages, "total_ms": (t3 - t0) * 1e3}
        width, height = decoded.size
        return {"faces": [f.to_dict() for f in faces], "width": width, "height": height,
                "timings": {k: round(v, 2) for k, v in timings.items()}}

    def model_info(self) -> dict:
        o = self.options
        return {"file": self.model_file, "metadata": self.metadata,
                "server": {"edgeag_version": __version__, "workers": o.workers, "threads": o.threads,
                           "detector": self.detector,
                           "min_confidence": o.min_confidence, "min_gender_confidence": o.min_gender_confidence,
                           "min_face": o.min_face,
                           "max_upload_bytes": o.max_upload_bytes,
                           "max_side": o.max_side}}

    def close(self) -> None:
        self.pool.close()


def _too_large(limit: int) -> str:
    return f"upload larger than the limit of {limit / MB:g} MB"


# ---------------------------------------------------------------------------------------------- web app

def _web_file(name: str) -> bytes:
    return (resources.files("edgeag.edge.web") / name).read_bytes()


_STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,255}$")

_ANALYZE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP or BMP file"}}}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
_ERROR = {"content": {"application/json": {"example": {"error": "message"}}}}


def create_app(model_path: str | Path | None = None, *, options: ServerOptions | None = None,
               service: AnalyzeService | None = None, **kwargs) -> FastAPI:
    """The FastAPI app. The model is loaded here, once (a bad model fails before the server binds).

    Args:
        model_path: classifier .tflite (None: bundled default); shortcut for ``ServerOptions.model_path``.
        options: all settings; ``kwargs`` are ``ServerOptions`` fields, as a shortcut.
        service: an already built ``AnalyzeService`` (tests, embedding); overrides the other arguments.
    """
    if service is None:
        if options is None:
            options = ServerOptions(model_path=model_path, **kwargs)
        service = AnalyzeService(options)
    opts = service.options
    pages = {name: _web_file(name) for name in ("index.html", *_STATIC)}  # read once, served from memory

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # Graceful shutdown: uvicorn has stopped accepting and drained requests; release the analyzers.
        await run_in_threadpool(service.close)

    app = FastAPI(
        title="edgeag", version=__version__, lifespan=lifespan,
        description="Face age and gender estimation. Images are analysed in memory and discarded: nothing "
                    "is stored. The bundled model is for non-commercial research only (trained on UTKFace).")
    app.state.service = service

    # -- errors: always {"error": ...}, never a traceback -------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request: {where} {first.get('msg', '')}".strip()}, status_code=422)

    @app.exception_handler(EdgeagError)
    async def _edgeag_error(request: Request, exc: EdgeagError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # Phones drop uploads all the time: one line, no traceback (nobody is left to read the answer).
        log.info("client %s disconnected during the upload to %s", _client(request), request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)  # server log only
        return JSONResponse({"error": "internal error"}, status_code=500)

    # -- API ------------------------------------------------------------------------------------------------
    @app.post("/v1/analyze", summary="Analyse one image", openapi_extra={"requestBody": _ANALYZE_BODY},
              responses={400: _ERROR, 413: _ERROR, 415: _ERROR, 503: _ERROR})
    async def analyze(request: Request) -> dict:
        """Faces in one image: ``faces`` (box [x, y, w, h] px, score, age, gender, gender_confidence,
        ethnicity, ethnicity_confidence), ``width``, ``height``, ``timings`` (ms). Send a multipart form with
        the file in field ``image``, or the raw image bytes as the body. The image is not stored."""
        data = await _read_image_body(request, opts.max_upload_bytes, opts.upload_timeout)
        return await run_in_threadpool(service.analyze_bytes, data)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        """Binary image frames in, one JSON result (as /v1/analyze, or {"error"}) per frame out, in order."""
        origin, host = ws.headers.get("origin"), ws.headers.get("host", "")
        if origin and origin.split("://", 1)[-1] != host:  # browsers let any page open a socket: same origin only
            await ws.close(code=1008)
            return
        await ws.accept()
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes")
                if data is None:
                    await ws.send_json({"error": "send binary JPEG/PNG frames"})
                    continue
                try:
                    result = await run_in_threadpool(service.analyze_bytes, data)
                except ApiError as exc:
                    result = {"error": exc.message, "status": exc.status}
                await ws.send_json(result)
        except (WebSocketDisconnect, RuntimeError):  # client went away mid-reply
            pass

    @app.get("/v1/model", summary="The model's metadata")
    async def model() -> dict:
        """The classifier's embedded metadata (input size, labels, training data, version) and server limits."""
        return service.model_info()

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict:
        return {"status": "ok", "version": __version__, "model": service.model_file, "workers": opts.workers,
                "analysed": service.requests}

    # -- page -----------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        host = request.headers.get("host", "")
        ws_src = f" ws://{host} wss://{host}" if _HOST_RE.match(host) else ""
        csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               f"media-src 'self' blob: mediastream:; connect-src 'self'{ws_src}; object-src 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")
        return Response(pages["index.html"], media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in _STATIC:
            raise ApiError(404, "not found")
        return Response(pages[name], media_type=_STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    return app


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


async def _read_image_body(request: Request, limit: int, idle_timeout: float = 30.0) -> bytes:
    """The image bytes of a request (raw body or multipart), refusing early anything over the limit and
    any upload that sends nothing for ``idle_timeout`` seconds (408). ClientDisconnect passes through."""
    ctype = request.headers.get("content-type", "").lower()
    multipart = ctype.startswith("multipart/form-data")
    if ctype.startswith(("text/", "application/json", "application/x-www-form-urlencoded")):
        raise ApiError(415, f"unsupported content type {ctype.split(';')[0]}: send an image "
                            "(multipart field 'image' or a raw JPEG/PNG body)")
    cap = limit + (_MULTIPART_SLACK if multipart else 0)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > cap:
        raise ApiError(413, _too_large(limit))  # before reading a byte
    chunks, size = [], 0
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            log.info("client %s: upload stalled (%d bytes in, nothing for %g s): 408", _client(request), size,
                     idle_timeout)
            raise ApiError(408, f"upload too slow: nothing received for {idle_timeout:g} s") from None
        size += len(chunk)
        if size > cap:
            raise ApiError(413, _too_large(limit))
        chunks.append(chunk)
    body = b"".join(chunks)
    data = extract_multipart_image(body, request.headers["content-type"]) if multipart else body
    if len(data) > limit:
        raise ApiError(413, _too_large(limit))
    return data


# ---------------------------------------------------------------------------------------------- running

def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1: reachable from this machine only."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int):
    """A listening TCP socket (port 0 picks a free one). Raises BadInputError if the address is unusable."""
    import socket

    from edgeag.errors import BadInputError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        if getattr(exc, "errno", None) == 98:
            raise BadInputError(f"port {port} on {host} is already in use: choose another with --port") from None
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: FastAPI, *, log_level: str = "warning", access_log: bool = False,
                   ssl_certfile: str | None = None, ssl_keyfile: str | None = None):
    """A uvicorn Server for ``app`` with limits matching the app's (WebSocket frames up to the upload limit)."""
    import uvicorn

    service: AnalyzeService = app.state.service
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            log_config=_log_config(log_level),
                            ws_max_size=service.options.max_upload_bytes + _MULTIPART_SLACK,
                            timeout_graceful_shutdown=10, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    return uvicorn.Server(config)


def _log_config(level: str) -> dict:
    """uvicorn's logging set-up plus the ``edgeag`` loggers, same format and level (one line per event)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["edgeag"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


class ServerThread:
    """Serve ``app`` on 127.0.0.1 in a background thread (tests, benchmarks).

        with ServerThread(create_app()) as url:
            httpx.get(url + "/healthz")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind_socket(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn_server(app)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True  # graceful: drain requests, then the lifespan closes the analyzers
        self._thread.join(timeout=30)


__all__ = ["ServerOptions", "AnalyzeService", "AnalyzerPool", "ApiError", "create_app", "decode_upload",
           "ServerThread", "bind_socket", "is_loopback", "uvicorn_server"]
