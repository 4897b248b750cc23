"""Image intake of the HTTP server: reading an upload under limits, pulling the image out of a multipart body
(in memory), and decoding it with the shared decoder (edge/images.py). Errors are ``ApiError`` with a status."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request

log = logging.getLogger("edgeag.server")
# python-multipart logs its parse errors (e.g. "Expected boundary character 45, got 103") on top of the 400
# we answer with; one message per fault is enough.
logging.getLogger("python_multipart").setLevel(logging.CRITICAL)

MB = 1024 * 1024
# Multipart framing (boundaries, part headers) around the image: allowed on top of the image size limit.
MULTIPART_SLACK = 64 * 1024

# Status per ``ImageError.reason`` of the shared decoder (edge/images.py).
_IMAGE_STATUS = {"empty": 400, "unsupported": 415, "too_large": 413, "corrupt": 400}


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status (never a traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def too_large(limit: int) -> str:
    return f"upload larger than the limit of {limit / MB:g} MB"


def client_address(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


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
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body without a boundary")
    files = []
    for headers, data in _multipart_parts(body, boundary):
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        if disp.get(b"name") == b"image":
            return data
        if b"filename" in disp:
            files.append(data)
    if files:
        return files[0]
    raise ApiError(400, "no image in the form: send the file in a field named 'image'")


def _multipart_parts(body: bytes, boundary: bytes) -> list[tuple[dict[bytes, bytes], bytes]]:
    """(headers with lower-case names, data) of each part of a multipart body, parsed in memory."""
    from python_multipart.multipart import MultipartParser

    parts: list[tuple[dict, bytearray]] = []
    header = {"field": b"", "value": b""}

    def on_header_field(d: bytes, s: int, e: int) -> None:
        header["field"] += d[s:e]

    def on_header_value(d: bytes, s: int, e: int) -> None:
        header["value"] += d[s:e]

    def on_header_end() -> None:
        parts[-1][0][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(d: bytes, s: int, e: int) -> None:
        parts[-1][1].extend(d[s:e])

    parser = MultipartParser(boundary, {
        "on_part_begin": lambda: parts.append(({}, bytearray())), "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end, "on_part_data": on_part_data})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python_multipart raises its own errors with parser details
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__})") from None
    return [(headers, bytes(data)) for headers, data in parts]


async def read_image_body(request: Request, limit: int, idle_timeout: float = 30.0) -> bytes:
    """The image bytes of a request (raw body or multipart), refusing early anything over the limit and
    any upload that sends nothing for ``idle_timeout`` seconds (408). ClientDisconnect passes through."""
    ctype = request.headers.get("content-type", "").lower()
    multipart = ctype.startswith("multipart/form-data")
    if ctype.startswith(("text/", "application/json", "application/x-www-form-urlencoded")):
        raise ApiError(415, f"unsupported content type {ctype.split(';')[0]}: send an image "
                            "(multipart field 'image' or a raw JPEG/PNG body)")
    cap = limit + (MULTIPART_SLACK if multipart else 0)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > cap:
        raise ApiError(413, too_large(limit))  # before reading a byte
    body = await _read_capped(request, cap, limit, idle_timeout)
    data = extract_multipart_image(body, request.headers["content-type"]) if multipart else body
    if len(data) > limit:
        raise ApiError(413, too_large(limit))
    return data


async def _read_capped(request: Request, cap: int, limit: int, idle_timeout: float) -> bytes:
    """The request body, 413 as soon as it passes ``cap`` bytes, 408 after ``idle_timeout`` s without data."""
    chunks, size = [], 0
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            log.info("client %s: upload stalled (%d bytes in, nothing for %g s): 408", client_address(request),
                     size, idle_timeout)
            raise ApiError(408, f"upload too slow: nothing received for {idle_timeout:g} s") from None
        size += len(chunk)
        if size > cap:
            raise ApiError(413, too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)
