"""The one crop function shared by training, evaluation, quantization and the runtime.

A face is cut out of a full image by a single affine warp: rotated about the detector box centre so
that the eyes are level, scaled so that the box plus a fixed margin fills the output, resized to the
model's input size. The result is uint8, exactly what the model takes: the normalisation to [-1, 1]
is a layer inside the model, so no caller can normalise differently (the classic training-serving skew).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

# Bumped whenever the crop geometry changes, so cached crops made by an older version are not reused.
CROP_VERSION = 1


@dataclass(frozen=True)
class CropSpec:
    """How a face becomes model input. Stored in the model's metadata and in every crop cache key."""

    size: int = 64
    channels: int = 3
    margin: float = 0.1  # context added around the detector box, as a fraction of its longer side

    def to_dict(self) -> dict:
        return {**asdict(self), "version": CROP_VERSION}

    @classmethod
    def from_dict(cls, d: dict) -> "CropSpec":
        return cls(size=int(d["size"]), channels=int(d["channels"]), margin=float(d["margin"]))


@dataclass(frozen=True)
class Detection:
    """A face found by the detector, in pixels of the full image.

    ``right_eye``/``left_eye`` are MediaPipe's first two keypoints (subject's right and left eye);
    either may be None when unknown, and the crop is then not rotated. ``keypoints`` holds all of the
    detector's keypoints in pixels, in its order (BlazeFace: right eye, left eye, nose tip, mouth,
    right ear, left ear), or None.
    """

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float = 1.0
    right_eye: tuple[float, float] | None = None
    left_eye: tuple[float, float] | None = None
    keypoints: tuple[tuple[float, float], ...] | None = None


def whole_image_detection(height: int, width: int, spec: CropSpec) -> Detection:
    """A stand-in detection for a pre-cropped face image in which the detector found nothing.

    The box is chosen so that box plus margin covers the whole image: the crop is then the image itself.
    """
    side = min(height, width) / (1.0 + spec.margin)
    return Detection(box=((width - side) / 2, (height - side) / 2, side, side), score=0.0)


def crop_transform(det: Detection, spec: CropSpec, out_size: int | None = None) -> np.ndarray:
    """The 2x3 affine matrix that maps full-image pixels to crop pixels (for ``cv2.warpAffine``)."""
    out = spec.size if out_size is None else out_size
    x, y, w, h = det.box
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w, h) * (1.0 + spec.margin)
    angle = 0.0
    if det.right_eye is not None and det.left_eye is not None:
        # Eye order by image x, so a mirrored frame still gives the small tilt, never a 180 degree flip.
        (ax, ay), (bx, by) = sorted((det.right_eye, det.left_eye))
        angle = math.degrees(math.atan2(by - ay, bx - ax))
    m = cv2.getRotationMatrix2D((cx, cy), angle, out / max(side, 1e-6))
    m[0, 2] += out / 2.0 - cx
    m[1, 2] += out / 2.0 - cy
    return m


def crop_face(image: np.ndarray, det: Detection, spec: CropSpec) -> np.ndarray:
    """Cut one face out of ``image`` as model input.

    Args:
        image: full image, uint8, RGB (H, W, 3) or grayscale (H, W) / (H, W, 1), any size.
        det: the face's detection in pixels of ``image``.
        spec: output size, channels and margin (read from the model's metadata).

    Returns:
        uint8 array (size, size, channels), eyes level, RGB or grayscale as the spec says.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    side = max(det.box[2], det.box[3]) * (1.0 + spec.margin)
    # Bilinear warping aliases when it shrinks a lot: warp to an integer multiple of the output,
    # then area-average down. The multiple is capped so a huge face costs at most a 4x warp.
    k = int(min(4, max(1, side // spec.size)))
    m = crop_transform(det, spec, spec.size * k)
    out = cv2.warpAffine(image, m, (spec.size * k, spec.size * k), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if k > 1:
        out = cv2.resize(out, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
    if spec.channels == 1:
        if out.ndim == 3:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        return out[:, :, None]
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)
    return out
