"""A seeded catalogue of camera degradations, applied to the FULL image before detection and cropping.

Each kind has severities 1..3 (grayscale: 1); **severity 2 is the middle one** used by the robustness floors
(``middle`` in ``CATALOGUE``). Sizes are relative to the face width ``face_width`` in pixels of the image (the
evaluation passes the width of the largest face BlazeFace finds in the clean image; ``None`` means the shorter
image side, which is the face's width in a UTKFace chip: BlazeFace's box spans 0.9-1.0 of it).

Photometric kinds work in linear light (sRGB approximated by gamma 2.2), as a sensor and a camera's white
balance do. NumPy and OpenCV only: the runtime and augmentation can use it without TensorFlow.

    kind        parameter per severity 1 / 2 / 3
    lowres      face width 48 / 32 / 24 px: INTER_AREA down, bilinear back up to the original size
    blur        Gaussian sigma 0.5% / 1% / 2% of the face width (sigma 2 px on a 200 px UTKFace chip at 2)
    motion      motion-blur length 3% / 5% / 8% of the face width, seeded direction
    jpeg        JPEG quality 30 / 20 / 10 (real cv2.imencode/imdecode)
    lowlight    brightness x0.5 / x0.35 / x0.2 (sRGB; linear gain = b^2.2), shot noise of a 3000 e- full well +
                read noise 4 e-, seeded
    overexpose  linear exposure x2 / x3 / x5, clipped (sRGB brightness x1.37 / x1.65 / x2.08)
    colorcast   a seeded wrong white balance (tungsten, shade, fluorescent or magenta), strength 0.5 / 1 / 1.5
    grayscale   luminance in all three channels (one severity)
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

GAMMA = 2.2
FULL_WELL = 3000.0  # electrons at white for a normal exposure (small-sensor camera)
READ_NOISE = 4.0  # electrons
# Log channel gains (R, G, B) of a wrong white balance at strength 1, in linear light.
CASTS = {"tungsten": (0.25, 0.0, -0.45), "shade": (-0.3, 0.0, 0.3), "fluorescent": (-0.2, 0.15, -0.2),
         "magenta": (0.15, -0.2, 0.15)}

CATALOGUE: dict[str, dict] = {
    "lowres": {"what": "face reduced to N px wide (INTER_AREA), scaled back up bilinear",
               "unit": "face width px", "levels": (48, 32, 24), "middle": 2},
    "blur": {"what": "Gaussian blur, sigma as a fraction of the face width",
             "unit": "sigma / face width", "levels": (0.005, 0.01, 0.02), "middle": 2},
    "motion": {"what": "linear motion blur at a seeded angle, length as a fraction of the face width",
               "unit": "length / face width", "levels": (0.03, 0.05, 0.08), "middle": 2},
    "jpeg": {"what": "JPEG compression (OpenCV encoder)", "unit": "quality", "levels": (30, 20, 10), "middle": 2},
    "lowlight": {"what": f"dim exposure, shot noise ({FULL_WELL:.0f} e- full well) + read noise "
                         f"({READ_NOISE:.0f} e-), gamma {GAMMA}", "unit": "sRGB brightness factor",
                 "levels": (0.5, 0.35, 0.2), "middle": 2},
    "overexpose": {"what": "over-exposure in linear light, clipped", "unit": "linear exposure factor",
                   "levels": (2.0, 3.0, 5.0), "middle": 2},
    "colorcast": {"what": "wrong white balance, seeded among " + "/".join(CASTS), "unit": "strength",
                  "levels": (0.5, 1.0, 1.5), "middle": 2},
    "grayscale": {"what": "luminance only (BT.601) in three channels", "unit": "-", "levels": (1,), "middle": 1},
}
KINDS = tuple(CATALOGUE)


def image_rng(seed: int, image_id: str, kind: str, severity: int) -> np.random.Generator:
    """The generator for one image and corruption: the same seed and id give the same degradation on any
    platform and in any order (a stable CRC of the id, not Python's salted ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(image_id.encode()), KINDS.index(kind), severity])


def level(kind: str, severity: int):
    """The catalogue's parameter of ``kind`` at ``severity`` (1-based); a clear error for unknown ones."""
    if kind not in CATALOGUE:
        raise ValueError(f"unknown corruption {kind!r}: use one of {', '.join(KINDS)}")
    levels = CATALOGUE[kind]["levels"]
    if not 1 <= severity <= len(levels):
        raise ValueError(f"{kind} has severities 1..{len(levels)}, not {severity}")
    return levels[severity - 1]


def corrupt(image: np.ndarray, kind: str, severity: int, rng: np.random.Generator | int = 0,
            face_width: float | None = None) -> np.ndarray:
    """``image`` (uint8 RGB (H, W, 3)) degraded by ``kind`` at ``severity``; a new uint8 array of the same shape.

    ``rng``: a generator (see ``image_rng``) or an int seed; ``face_width``: the face's width in pixels of
    ``image`` (default: the shorter image side, as in a face chip).
    """
    p = level(kind, severity)
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    width = float(face_width) if face_width else float(min(image.shape[:2]))
    return _APPLY[kind](np.ascontiguousarray(image), p, rng, width)


def _lowres(img, target_px, rng, width):
    scale = min(1.0, target_px / max(width, 1.0))
    if scale >= 1.0:
        return img.copy()
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _blur(img, frac, rng, width):
    return cv2.GaussianBlur(img, (0, 0), sigmaX=max(0.3, frac * width))


def _motion(img, frac, rng, width):
    length = 2 * int(round(frac * width / 2)) + 1  # odd: the kernel's centre is a pixel
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    angle = float(rng.uniform(0.0, 180.0))
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    k = cv2.warpAffine(k, rot, (length, length), flags=cv2.INTER_LINEAR)
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6), borderType=cv2.BORDER_REFLECT)


def _jpeg(img, quality, rng, width):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _to_linear(img: np.ndarray) -> np.ndarray:
    return (img.astype(np.float32) / 255.0) ** GAMMA


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    return np.round(np.clip(lin, 0.0, 1.0) ** (1.0 / GAMMA) * 255.0).astype(np.uint8)


def _lowlight(img, brightness, rng, width):
    electrons = _to_linear(img) * (brightness ** GAMMA) * FULL_WELL
    # Shot noise (Poisson, variance = signal; its normal approximation, 10x faster) plus read noise.
    sigma = np.sqrt(electrons + READ_NOISE ** 2)
    noisy = electrons + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return _to_srgb(noisy / FULL_WELL)


def _overexpose(img, factor, rng, width):
    return _to_srgb(_to_linear(img) * factor)


def _colorcast(img, strength, rng, width):
    cast = list(CASTS)[int(rng.integers(len(CASTS)))]
    gains = np.exp(strength * np.array(CASTS[cast], np.float32))
    return _to_srgb(_to_linear(img) * gains)


def _grayscale(img, _, rng, width):
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


_APPLY = {"lowres": _lowres, "blur": _blur, "motion": _motion, "jpeg": _jpeg, "lowlight": _lowlight,
          "overexpose": _overexpose, "colorcast": _colorcast, "grayscale": _grayscale}


def parse_corruptions(text: str) -> list[tuple[str, int]]:
    """``all``, ``middle`` or ``kind[:severity],...`` (e.g. ``lowres,jpeg:2``) -> [(kind, severity), ...].

    A kind without a severity means all its severities; ``middle`` is every kind at its middle severity.
    """
    out: list[tuple[str, int]] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part in ("all", "middle"):
            out += [(k, s) for k in KINDS for s in range(1, len(CATALOGUE[k]["levels"]) + 1)
                    if part == "all" or s == CATALOGUE[k]["middle"]]
            continue
        kind, _, sev = part.partition(":")
        if kind not in CATALOGUE:
            raise ValueError(f"unknown corruption {kind!r}: use all, middle or some of {', '.join(KINDS)}")
        n = len(CATALOGUE[kind]["levels"])
        if sev and not (sev.isdigit() and 1 <= int(sev) <= n):
            raise ValueError(f"{kind} has severities 1..{n}, not {sev!r}")
        out += [(kind, int(sev))] if sev else [(kind, s) for s in range(1, n + 1)]
    if not out:
        raise ValueError("no corruption named: use all, middle or kind[:severity],...")
    return list(dict.fromkeys(out))  # in order, without repeats


def describe(kind: str, severity: int) -> str:
    """A short label, e.g. ``lowres 2``; ``grayscale`` for a kind with one severity."""
    return kind if len(CATALOGUE[kind]["levels"]) == 1 else f"{kind} {severity}"


def catalogue_markdown(catalogue: dict | None = None) -> str:
    """The catalogue (default: this one; a report passes the one it was made with) as a Markdown table."""
    lines = ["| kind | what | parameter | severity 1 / 2 / 3 |", "| --- | --- | --- | --- |"]
    for kind, e in (catalogue or CATALOGUE).items():
        lv = " / ".join(f"{v:g}" for v in e["levels"])
        lines.append(f"| {kind} | {e['what']} | {e['unit']} | {lv} |")
    return "\n".join(lines) + "\n"
