"""The one image decoder of the runtime: files and uploaded bytes -> BGR uint8, big images reduced on decode.

Used by ``edgeag run --image``, ``edgeag predict``, ``FaceAnalyzer.analyze(path)`` and ``edgeag serve``.

- Any colour layout OpenCV reads comes out as 8-bit BGR: grayscale, alpha, CMYK JPEG, 16-bit PNG; the EXIF
  orientation is applied (as browsers do when they display the same file).
- An image whose larger side exceeds ``reduce_above`` (default 4096 px) is decoded at 1/2, 1/4 or 1/8 size
  (``cv2.IMREAD_REDUCED_COLOR_*``: JPEG scales in the DCT, so a 12000x12000 photo never exists in memory at
  full size). The detector sees 128x128 and the classifier 112x112 anyway. ``DecodedImage.scale`` says how
  much smaller the pixels are, and ``scale_faces`` maps boxes back to the file's own pixel coordinates.
- Failures raise ``ImageError`` (a ``BadInputError``, exit code 2) with a one-line reason: ``empty``,
  ``unsupported`` (not an image format we take), ``too_large`` (over ``max_side``, judged from the header
  before any decoding) or ``corrupt``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeag.errors import BadInputError

REDUCE_ABOVE = 4096  # px: larger images are decoded at a reduced size
_REDUCED = {2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}


class ImageError(BadInputError):
    """An image that cannot be used; ``reason`` is empty | unsupported | too_large | corrupt | missing."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class DecodedImage:
    bgr: np.ndarray  # uint8 (H, W, 3)
    scale: float = 1.0  # decoded pixels per pixel of the file (1.0: full size)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image in the file (after EXIF rotation)."""
        h, w = self.bgr.shape[:2]
        return int(round(w / self.scale)), int(round(h / self.scale))

    @property
    def rgb(self) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB)


def image_header(data: bytes) -> tuple[str, tuple[int, int] | None]:
    """(format, (width, height) or None) from the header only; format '' if not JPEG, PNG, WebP or BMP."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg", _jpeg_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png", struct.unpack(">II", data[16:24]) if len(data) >= 24 and data[12:16] == b"IHDR" else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", _webp_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return "bmp", (abs(w), abs(h))
    return "", None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        b = int.from_bytes(data[21:25], "little")
        return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def decode_bgr(data: bytes, *, max_side: int | None = None, reduce_above: int | None = REDUCE_ABOVE,
               known_formats_only: bool = False) -> DecodedImage:
    """Image file bytes -> ``DecodedImage`` (BGR uint8), in memory. Raises ``ImageError``.

    Args:
        max_side: refuse (``too_large``) a larger width or height, judged from the header before decoding.
        reduce_above: decode at a reduced size when the larger side exceeds this (None: always full size).
        known_formats_only: refuse (``unsupported``) anything but JPEG, PNG, WebP and BMP (the server).
    """
    import cv2

    if not data:
        raise ImageError("empty file", "empty")
    fmt, size = image_header(data)
    if not fmt and known_formats_only:
        raise ImageError("not a supported image: send JPEG, PNG, WebP or BMP", "unsupported")
    if size is not None and max_side and max(size) > max_side:
        raise ImageError(f"image is {size[0]}x{size[1]} px; the limit is {max_side} px per side", "too_large")
    factor = 1
    if size is not None and reduce_above and max(size) > reduce_above:
        factor = next((f for f in (2, 4, 8) if max(size) / f <= reduce_above), 8)
    flag = getattr(cv2, _REDUCED[factor]) if factor > 1 else cv2.IMREAD_COLOR
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if bgr is None or bgr.size == 0:
        if not fmt:
            raise ImageError("not an image (unknown or unreadable format)", "unsupported")
        raise ImageError(f"cannot decode the {fmt.upper()} image (corrupt or truncated)", "corrupt")
    if bgr.ndim == 2:  # a decoder that ignored IMREAD_COLOR
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    full_side = max(size) if size is not None else max(bgr.shape[:2])
    if max_side and full_side > max_side:  # header unreadable, but the decode worked
        raise ImageError(f"image is {bgr.shape[1]}x{bgr.shape[0]} px; the limit is {max_side} px per side",
                         "too_large")
    if reduce_above and max(bgr.shape[:2]) > reduce_above:  # a format without a reduced decode
        f = reduce_above / max(bgr.shape[:2])
        bgr = cv2.resize(bgr, (max(1, round(bgr.shape[1] * f)), max(1, round(bgr.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
    return DecodedImage(bgr, max(bgr.shape[:2]) / full_side)


def read_image(path: str | Path, **kwargs) -> DecodedImage:
    """An image file -> ``DecodedImage`` (see ``decode_bgr`` for the options). Raises ``ImageError``."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not an image", "missing")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image not found: {p}", "missing") from None
    except OSError as exc:
        raise ImageError(f"cannot read {p}: {exc.strerror or exc}", "missing") from None
    return decode_bgr(data, **kwargs)


def scale_boxes(faces: list[dict], scale: float) -> list[dict]:
    """Copies of face dicts (``Face.to_dict()``) with boxes in the file's pixels instead of the decoded image's."""
    if scale == 1.0:
        return faces
    return [{**f, "box": [int(round(v / scale)) for v in f["box"]]} for f in faces]


def scale_faces(faces: list, scale: float) -> list:
    """Map the boxes of ``Face`` records found in a reduced image back to the file's pixels (in place)."""
    if scale != 1.0:
        for f in faces:
            f.box = tuple(int(round(v / scale)) for v in f.box)
    return faces
