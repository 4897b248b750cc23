"""The HTTP API and web page behind ``edgeag serve`` (FastAPI).

    from edgeag.edge.server import create_app
    app = create_app()                     # loads the model once, here
    # uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: ``POST /v1/analyze`` (multipart field ``image`` or a raw JPEG/PNG/WebP/BMP body) -> faces as
``Face.to_dict()`` plus image size and timings; ``WS /v1/stream`` (binary frames in, one JSON result per frame
out); ``GET /v1/model``; ``GET /healthz``; ``GET /`` (the page); ``GET /docs`` (OpenAPI).

Privacy: request bodies are read into memory, analysed and dropped. Nothing is written to disk (the multipart
body is parsed in memory on purpose: Starlette's form parser would spool files over 1 MB to a temp file).

Concurrency: a LiteRT interpreter (the classifier's and the detector's) holds its input/output tensors as state
(set -> invoke -> get), so it cannot be shared by concurrent requests. The server
keeps a small *pool* of independent analyzers (``workers``, default 2 = the cores of a small board), each used
by one request at a time: N requests run truly in parallel (LiteRT releases the GIL), the rest
wait for a free analyzer (503 after ``busy_timeout`` seconds). A pool of one is a plain lock.

Layout: this module is the app and its routes; edge/server_intake.py reads and decodes uploads,
edge/server_service.py holds ``ServerOptions``, the analyzer pool and the per-request analysis,
edge/server_process.py binds the socket and runs uvicorn. Their public names are importable from here.
"""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edgeag._version import __version__
from edgeag.edge.server_intake import ApiError, client_address, decode_upload, read_image_body
from edgeag.edge.server_process import ServerThread, bind_socket, is_loopback, uvicorn_server
from edgeag.edge.server_service import AnalyzerPool, AnalyzeService, ServerOptions
from edgeag.errors import EdgeagError

log = logging.getLogger("edgeag.server")

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
        model_path: classifier .tflite (None: bundled default); shortcut for ``options.analyzer.model_path``.
        options: all settings; ``kwargs`` are ``ServerOptions`` or ``FaceAnalyzerOptions`` fields, as a
            shortcut (``ServerOptions.from_fields``).
        service: an already built ``AnalyzeService`` (tests, embedding); overrides the other arguments.
    """
    if service is None:
        if options is None:
            options = ServerOptions.from_fields(model_path=model_path, **kwargs)
        service = AnalyzeService(options)

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
    _add_error_handlers(app)
    _add_api_routes(app, service)
    _add_page_routes(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Errors are always ``{"error": ...}``, never a traceback."""

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
        log.info("client %s disconnected during the upload to %s", client_address(request), request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)  # server log only
        return JSONResponse({"error": "internal error"}, status_code=500)


def _add_api_routes(app: FastAPI, service: AnalyzeService) -> None:
    opts = service.options

    @app.post("/v1/analyze", summary="Analyse one image", openapi_extra={"requestBody": _ANALYZE_BODY},
              responses={400: _ERROR, 413: _ERROR, 415: _ERROR, 503: _ERROR})
    async def analyze(request: Request) -> dict:
        """Faces in one image: ``faces`` (box [x, y, w, h] px, score, age, gender, gender_confidence,
        ethnicity, ethnicity_confidence), ``width``, ``height``, ``timings`` (ms). Send a multipart form with
        the file in field ``image``, or the raw image bytes as the body. The image is not stored."""
        data = await read_image_body(request, opts.max_upload_bytes, opts.upload_timeout)
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
            await _answer_frames(ws, service)
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


async def _answer_frames(ws: WebSocket, service: AnalyzeService) -> None:
    """Until the client disconnects: analyse each binary frame and send its result (or its error)."""
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


def _web_file(name: str) -> bytes:
    return (resources.files("edgeag.edge.web") / name).read_bytes()


def _add_page_routes(app: FastAPI) -> None:
    pages = {name: _web_file(name) for name in ("index.html", *_STATIC)}  # read once, served from memory

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


__all__ = ["ServerOptions", "AnalyzeService", "AnalyzerPool", "ApiError", "create_app", "decode_upload",
           "ServerThread", "bind_socket", "is_loopback", "uvicorn_server"]
