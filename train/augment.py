"""Training augmentation: the camera between a face and the crop, and the detector's jitter.

A run-time crop is cut from a camera frame: a face seen from across a room is few pixels wide, soft, dim, noisy
or compressed, and ``crop_face`` magnifies it back to the model's input size. ``degrade`` replays that chain on
a training crop: it reduces the crop to a capture resolution (the face drawn 18 px wide to full size), blurs it
there (focus or motion), exposes it (gain, gamma, colour cast, grayscale), adds sensor noise and compresses it as
JPEG at that size, then scales it back up bilinearly, as the crop does. Every parameter is drawn at random per
image, over ranges that cover and exceed the evaluation catalogue (``train/corruptions.py``) rather than repeat
its fixed severities. ``jitter`` moves the crop as much as BlazeFace's boxes and eye points move for one face
seen differently (``benchmarks/experiments/crop_jitter.py``).

NumPy + OpenCV per image (a batch costs milliseconds; the same chain in TensorFlow ops cost ~1 s per batch
here); training calls it through ``tf.numpy_function``. Evaluation and the runtime never call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradeConfig:
    """Probabilities and ranges of the camera degradations, drawn per image."""

    p: float = 0.5  # share of images degraded at all (the rest stay clean)
    face_px: tuple[float, float] = (18.0, 112.0)  # capture face width, log-uniform
    p_blur: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.6)  # capture px
    p_motion: float = 0.15
    motion_len: tuple[float, float] = (2.0, 7.0)  # capture px
    p_exposure: float = 0.6
    gain: tuple[float, float] = (0.2, 2.2)  # linear light, log-uniform
    gamma: tuple[float, float] = (0.7, 1.4)  # log-uniform
    p_cast: float = 0.3
    cast_sd: float = 0.12  # per-channel log gain
    p_gray: float = 0.08
    p_noise: float = 0.5
    read_noise: tuple[float, float] = (0.0, 0.025)  # linear light units
    shot_noise: tuple[float, float] = (0.0, 0.05)
    p_jpeg: float = 0.4
    jpeg_quality: tuple[int, int] = (8, 90)


@dataclass(frozen=True)
class JitterConfig:
    """Crop jitter, uniform in +-range: as large as the detector's own for one face seen differently
    (measured: box centre sd 8-10% of its side, size sd 13-17%, eye-line angle sd 3.5 degrees)."""

    shift: float = 0.12  # fraction of the crop side
    log_zoom: float = 0.18
    degrees: float = 8.0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


def _blur(img: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """Defocus (Gaussian) or motion (a line at a random angle) blur at capture scale, or none."""
    if rng.random() < cfg.p_motion:
        n = max(2, int(round(rng.uniform(*cfg.motion_len))))
        k = np.zeros((n + 2 | 1, n + 2 | 1), np.float32)
        c = k.shape[0] // 2
        a = rng.uniform(0, math.pi)
        dx, dy = math.cos(a) * n / 2, math.sin(a) * n / 2
        cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
        return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT_101)
    if rng.random() < cfg.p_blur:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(*cfg.blur_sigma), borderType=cv2.BORDER_REFLECT_101)
    return img


def _expose(lin: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """Gain and colour cast in linear light, then shot and read noise (what a dim sensor adds): mostly luma
    noise, some chroma, as a camera's processing leaves it."""
    if rng.random() < cfg.p_exposure:
        lin = lin * _log_uniform(rng, *cfg.gain)
    if rng.random() < cfg.p_cast and lin.shape[2] == 3:
        lin = lin * np.exp(rng.normal(0, cfg.cast_sd, 3)).astype(np.float32)
    lin = np.clip(lin, 0.0, 1.0)
    if rng.random() < cfg.p_noise:
        shot, read = rng.uniform(*cfg.shot_noise), rng.uniform(*cfg.read_noise)
        z = 0.8 * rng.standard_normal(lin.shape[:2] + (1,), np.float32)
        z = z + 0.45 * rng.standard_normal(lin.shape, np.float32)
        lin = np.clip(lin + z * (shot * np.sqrt(lin) + read), 0.0, 1.0)
    return lin


def degrade(img: np.ndarray, cfg: DegradeConfig, margin: float, rng: np.random.Generator) -> np.ndarray:
    """One crop (S, S, C) float32 in 0..255 as a camera would have delivered it; same shape out.

    ``margin`` is the crop's (the face box is S / (1 + margin) wide in it): the capture size is chosen so
    that the face is ``cfg.face_px`` wide.
    """
    size = img.shape[0]
    small = int(np.clip(round(_log_uniform(rng, *cfg.face_px) * (1 + margin)), 12, size))
    y = cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA) / 255.0
    y = _blur(y.reshape(small, small, -1), cfg, rng).reshape(small, small, -1)
    lin = _expose(np.square(y), cfg, rng)  # gamma 2 for sRGB <-> linear: close enough, and cheap
    y = np.power(lin, 0.5 * _log_uniform(rng, *cfg.gamma)) * 255.0
    if y.shape[2] == 3 and rng.random() < cfg.p_gray:
        y[:] = y.mean(axis=2, keepdims=True)
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", np.clip(y, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        y = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32)
    y = cv2.resize(y, (size, size), interpolation=cv2.INTER_LINEAR).reshape(img.shape)
    return np.clip(y, 0, 255).astype(np.float32)


def jitter(img: np.ndarray, cfg: JitterConfig, rng: np.random.Generator) -> np.ndarray:
    """Shift, zoom, rotate and mirror one crop in a single warp; edges fill by reflection (run-time crops
    from whole frames have no black corners)."""
    size = img.shape[0]
    c = (size - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), rng.uniform(-cfg.degrees, cfg.degrees),
                                math.exp(rng.uniform(-cfg.log_zoom, cfg.log_zoom)))
    m[:, 2] += rng.uniform(-cfg.shift, cfg.shift, 2) * size
    if rng.random() < 0.5:
        m[0] = -m[0]
        m[0, 2] += size - 1
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)


def augment_batch(x: np.ndarray, seed: int, degradation: DegradeConfig | None, margin: float,
                  jitter_cfg: JitterConfig = JitterConfig()) -> np.ndarray:
    """The training augmentation of a batch (n, S, S, C): camera degradations (None: off), then crop jitter.
    Float32 0..255 out; labels are untouched (the caller keeps them)."""
    rng = np.random.default_rng(seed)
    out = np.empty(x.shape, np.float32)
    for i, img in enumerate(x.astype(np.float32)):
        if degradation is not None and rng.random() < degradation.p:
            img = degrade(img, degradation, margin, rng)
        out[i] = jitter(img, jitter_cfg, rng)
    return out


def batch_augmentation(kind: str, margin: float, max_brightening: float = DegradeConfig.gain[1]):
    """``edgeag train --augment`` KIND as a function ``(batch, seed) -> batch``: ``camera`` (degradations, the
    exposure gain up to ``max_brightening``, and jitter), ``jitter`` (jitter only), ``none`` (None). Training and
    batch-norm re-estimation both use it."""
    if kind == "none":
        return None
    if kind not in ("camera", "jitter"):
        raise ValueError(f"unknown augmentation {kind!r}: camera, jitter or none")
    degradation = None
    if kind == "camera":
        degradation = DegradeConfig(gain=(DegradeConfig.gain[0], max_brightening))
    return lambda batch, seed: augment_batch(batch, seed, degradation, margin)


def augmenter(transform):
    """A ``batch_augmentation`` as a TensorFlow function of a float batch, for ``tf.data`` (one seed per batch)."""
    import tensorflow as tf

    def apply(x):
        seed = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)
        y = tf.numpy_function(lambda b, s: transform(b, int(s)), [x, seed], tf.float32)
        return tf.ensure_shape(y, x.shape)

    return apply
