"""Generated camera scenes without faces, and real faces pasted into them (for detector benchmarks and tests).

Nothing here is a photograph: rooms (wall, floor, door, window, pictures, shelves, a screen), offices, a
street and foliage-like clutter are drawn from random shapes and multi-scale noise, lit unevenly, blurred a
little, given sensor noise and passed through JPEG like a camera stream. Faces come from a data set at run
time (never committed) and are pasted with a feathered edge so that the chip's border is not a hard frame.
"""

from __future__ import annotations

import numpy as np

KINDS = ("room", "office", "street", "clutter")


def _noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Smooth noise in [-1, 1] with features of about ``scale`` pixels (upsampled random grid)."""
    import cv2

    gh, gw = max(2, h // scale + 2), max(2, w // scale + 2)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-scale noise (fBm-like), (h, w) in about [-1, 1]."""
    return sum(_noise(rng, h, w, s) * a for s, a in ((64, 0.5), (16, 0.3), (4, 0.2)))


# Tints of everyday materials (RGB multipliers): neutral, warm paint, wood, cool, green, brick, blue.
_TINTS = np.array([[1, 1, 1], [1.08, 1.0, 0.86], [1.25, 0.95, 0.7], [0.9, 0.97, 1.1], [0.88, 1.06, 0.86],
                   [1.2, 0.85, 0.75], [0.8, 0.9, 1.2]], np.float32)


def _colour(rng: np.random.Generator, lo: float = 40, hi: float = 230) -> np.ndarray:
    """A muted, everyday colour: a grey level from [lo, hi] times a material tint, partly desaturated."""
    tint = _TINTS[int(rng.integers(len(_TINTS)))]
    amount = rng.uniform(0.3, 1.0)
    return (rng.uniform(lo, hi) * (1 + amount * (tint - 1))).astype(np.float32)


def _rect(img: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int, colour=None,
          texture: float = 10.0) -> None:
    h, w = img.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    c = _colour(rng) if colour is None else colour
    img[y0:y1, x0:x1] = c + texture * _texture(rng, y1 - y0, x1 - x0)[..., None]


def _room(img: np.ndarray, rng: np.random.Generator) -> None:
    """Wall, floor with planks, a door, a window with sky, pictures, a shelf."""
    h, w = img.shape[:2]
    horizon = int(h * rng.uniform(0.55, 0.8))
    img[:] = _colour(rng, 120, 220) + 8 * _texture(rng, h, w)[..., None]
    floor = _colour(rng, 50, 170)
    planks = np.sin(np.arange(h - horizon)[:, None] / rng.uniform(2, 5) + 3 * _noise(rng, h - horizon, w, 40))
    img[horizon:] = floor + 14 * planks[..., None] + 10 * _texture(rng, h - horizon, w)[..., None]
    dx = int(rng.integers(0, w - 120))
    _rect(img, rng, dx, int(horizon - h * 0.55), dx + int(w * 0.16), horizon)  # door
    wx, wy = int(rng.integers(0, w - 160)), int(rng.integers(10, max(11, horizon - 200)))
    ww, wh = int(rng.integers(100, 200)), int(rng.integers(80, 160))
    _rect(img, rng, wx, wy, wx + ww, wy + wh, np.array([150, 190, 235], np.float32), 25)  # window
    img[wy:wy + wh, wx + ww // 2 - 2:wx + ww // 2 + 2] = 235  # window bar
    for _ in range(int(rng.integers(1, 4))):  # pictures and posters
        px, py = int(rng.integers(0, w - 80)), int(rng.integers(0, max(1, horizon - 100)))
        _rect(img, rng, px, py, px + int(rng.integers(40, 110)), py + int(rng.integers(30, 90)), texture=40)
    sy = int(rng.integers(40, max(41, horizon - 40)))
    _rect(img, rng, 0, sy, int(rng.integers(80, w // 2)), sy + 8)  # a shelf


def _office(img: np.ndarray, rng: np.random.Generator) -> None:
    """A wall, desks, screens (dark with bright windows), lamps, cables."""
    import cv2

    h, w = img.shape[:2]
    img[:] = _colour(rng, 140, 230) + 6 * _texture(rng, h, w)[..., None]
    desk = int(h * rng.uniform(0.6, 0.75))
    _rect(img, rng, 0, desk, w, desk + 18, texture=6)
    _rect(img, rng, 0, desk + 18, w, h, _colour(rng, 30, 120))
    for _ in range(int(rng.integers(1, 4))):
        sx, sw = int(rng.integers(0, w - 150)), int(rng.integers(90, 200))
        top = desk - int(sw * 0.65)
        _rect(img, rng, sx, top, sx + sw, desk - 10, np.array([25, 25, 30], np.float32), 4)
        _rect(img, rng, sx + 8, top + 8, sx + sw // 2, desk - 30, texture=30)  # a window on the screen
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, desk))
        cv2.ellipse(img, (cx, cy), (int(rng.integers(10, 30)), int(rng.integers(8, 20))), 0, 0, 360,
                    tuple(float(v) for v in _colour(rng)), -1)
    for _ in range(3):
        pts = np.cumsum(rng.integers(-15, 16, (12, 2)), axis=0) + [int(rng.integers(0, w)), desk + 20]
        cv2.polylines(img, [pts.astype(np.int32)], False, (20, 20, 20), 2)


def _street(img: np.ndarray, rng: np.random.Generator) -> None:
    """Sky, buildings with window grids, a road."""
    h, w = img.shape[:2]
    sky = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img[:] = np.array([120, 170, 230], np.float32) * (1 - 0.3 * sky) + 10 * _texture(rng, h, w)[..., None]
    x = 0
    while x < w:
        bw, top = int(rng.integers(60, 200)), int(rng.integers(20, h // 2))
        _rect(img, rng, x, top, x + bw, h, texture=12)
        wc = _colour(rng, 20, 200)
        for yy in range(top + 10, h - 60, 28):
            for xx in range(x + 8, x + bw - 16, 22):
                img[yy:yy + 14, xx:xx + 10] = wc
        x += bw
    road = int(h * 0.82)
    _rect(img, rng, 0, road, w, h, np.array([70, 70, 75], np.float32), 12)


def _clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Foliage-like multi-scale texture with some branches and blobs."""
    import cv2

    h, w = img.shape[:2]
    base = _colour(rng, 50, 140) * np.array([0.8, 1.0, 0.7], np.float32)  # leaves: greenish
    img[:] = base + 50 * _texture(rng, h, w)[..., None] * np.array([0.8, 1.0, 0.6], np.float32)
    for _ in range(int(rng.integers(10, 30))):
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        q = (p[0] + int(rng.integers(-150, 150)), p[1] + int(rng.integers(-150, 150)))
        cv2.line(img, p, q, tuple(float(v) for v in _colour(rng, 10, 90)), int(rng.integers(1, 6)))


def scene(rng: np.random.Generator, width: int = 640, height: int = 480, kind: str | None = None) -> np.ndarray:
    """A face-free RGB uint8 scene of one ``kind`` (random if None), lit unevenly, before camera effects."""
    import cv2

    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    img = np.zeros((height, width, 3), np.float32)
    {"room": _room, "office": _office, "street": _street, "clutter": _clutter}[kind](img, rng)
    light = 1.0 + 0.35 * _noise(rng, height, width, max(width, height) // 2)  # uneven lighting
    img = img * light[..., None] * rng.uniform(0.7, 1.1)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    return np.clip(img, 0, 255).astype(np.uint8)


def camera(rgb: np.ndarray, rng: np.random.Generator, quality: int = 85) -> np.ndarray:
    """Sensor noise and a JPEG round trip, like a frame from a webcam stream."""
    import cv2

    from edgeag.edge.images import decode_bgr

    noisy = np.clip(rgb + rng.normal(0, 3.0, rgb.shape), 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return decode_bgr(jpg.tobytes()).rgb


def paste(img: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    """Paste ``face`` (RGB, any size) as a ``side`` x ``side`` square at (x, y), its border feathered."""
    import cv2

    chip = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if side < face.shape[0] else cv2.INTER_LINEAR)
    if chip.ndim == 2:
        chip = np.repeat(chip[..., None], 3, axis=2)
    ramp = np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5) / max(1.0, 0.1 * side)
    alpha = np.clip(np.minimum(ramp[:, None], ramp[None, :]), 0, 1)[..., None]
    region = img[y:y + side, x:x + side].astype(np.float32)
    img[y:y + side, x:x + side] = (alpha * chip + (1 - alpha) * region).astype(np.uint8)


def places(rng: np.random.Generator, n: int, side: int, width: int, height: int,
           tries: int = 200) -> list[tuple[int, int]]:
    """Up to ``n`` top-left corners of non-overlapping ``side``-squares (a gap of side/4) inside the frame."""
    out: list[tuple[int, int]] = []
    gap = side // 4
    for _ in range(tries):
        if len(out) == n:
            break
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        if all(abs(x - a) >= side + gap or abs(y - b) >= side + gap for a, b in out):
            out.append((x, y))
    return out
