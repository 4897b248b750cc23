"""BlazeFace post-processing as MediaPipe does it, in NumPy: letterbox, SSD anchors, decoding, weighted NMS.

The two BlazeFace models run on LiteRT (``edge/detector.py``); what MediaPipe's graph does around the model
is re-implemented here, so that detection needs no mediapipe at run time (mediapipe 1.2's native library
does not start on a Raspberry Pi 4) and gives the same boxes on every platform. Each step follows the
MediaPipe calculator of the same job (Apache-2.0, The MediaPipe Authors):

- ``letterbox``: ImageToTensorCalculator with ``keep_aspect_ratio`` and ``BORDER_ZERO`` (OpenCV converter):
  the whole image, padded to a centred square, warped bilinearly so that its corners land on the
  tensor's corners, then scaled to [-1, 1].
- ``anchors``: SsdAnchorsCalculator with ``fixed_anchor_size`` (every anchor is 1x1; only centres matter).
- ``decode``: TensorsToDetectionsCalculator (``reverse_output_order``: x, y, w, h; sigmoid scores clipped
  at +-100; six keypoints).
- ``weighted_nms``: NonMaxSuppressionCalculator, ``WEIGHTED`` algorithm, intersection over union.
- ``to_pixels`` and ``clamp_box``: DetectionProjectionCalculator + DetectionTransformationCalculator (pixels,
  box corner clamped to the image like MediaPipe's, but kept as floats instead of truncated to integers).
  Suppression runs on pixel coordinates here (MediaPipe: on the model input's); overlap and weighted means do
  not change under the letterbox's uniform scale and shift, so the faces are the same.

The model settings are those of mediapipe/modules/face_detection/face_detection_{short,full}_range.pbtxt.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BlazeFaceSpec:
    """How one BlazeFace model's input is made and its output read."""

    name: str  # the --detector value
    file: str  # bundled file in edgeag/edge/models
    input_size: int  # square input, pixels
    strides: tuple[int, ...]  # one per SSD output layer
    interpolated_anchor: bool  # an extra anchor per cell (interpolated_scale_aspect_ratio 1.0)
    num_boxes: int
    description: str

    @property
    def scale(self) -> float:  # x/y/w/h_scale of the decoder
        return float(self.input_size)


SHORT = BlazeFaceSpec("short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 896,
                      "BlazeFace short range: 128x128 input, faces within about 2 m of a webcam")
FULL = BlazeFaceSpec("full", "face_detection_full_range_sparse.tflite", 192, (4,), False, 2304,
                     "BlazeFace full range (sparse): 192x192 input, faces down to about 30 px, up to about 5 m")
SPECS = {s.name: s for s in (FULL, SHORT)}
SUPPRESSION_IOU = 0.3  # MediaPipe's min_suppression_threshold for both models
NUM_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion


def spec_for_input(size: int) -> BlazeFaceSpec:
    """The spec of a BlazeFace file with this square input size (128: short range, 192: full range)."""
    for s in SPECS.values():
        if s.input_size == size:
            return s
    raise ValueError(f"not a BlazeFace face detector input size: {size}x{size} (expected 128 or 192)")


def anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres (num_boxes, 2) as x, y in [0, 1], in the model's output order.

    Layers with equal strides share one grid; each contributes one anchor per cell (aspect ratio 1), plus
    one interpolated anchor when the spec has it. Cells run row by row, anchors innermost.
    """
    out = []
    i = 0
    while i < len(spec.strides):
        j = i
        while j < len(spec.strides) and spec.strides[j] == spec.strides[i]:
            j += 1
        per_cell = (j - i) * (2 if spec.interpolated_anchor else 1)
        cells = -(-spec.input_size // spec.strides[i])  # ceil
        y, x = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(x.ravel() + 0.5) / cells, (y.ravel() + 0.5) / cells], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    a = np.concatenate(out).astype(np.float32)
    if len(a) != spec.num_boxes:
        raise AssertionError(f"{spec.name}: {len(a)} anchors, model has {spec.num_boxes} boxes")
    return a


@dataclass(frozen=True)
class Letterbox:
    """Where the image sits in the square model input: image pixel = tensor coordinate (0..1) * side - offset."""

    side: float  # the padded square's side, image pixels
    offset_x: float
    offset_y: float
    width: int
    height: int


def letterbox(rgb: np.ndarray, size: int, out: np.ndarray | None = None) -> tuple[np.ndarray, Letterbox]:
    """The model input (1, size, size, 3) float32 in [-1, 1] for an RGB uint8 image, and its placement.

    The image keeps its aspect ratio inside a centred square (the rest is black, i.e. -1), warped with
    bilinear sampling where tensor pixel (u, v) takes image point (u, v) * side / size - offset.
    """
    h, w = rgb.shape[:2]
    side = float(max(w, h))
    ox, oy = (side - w) / 2.0, (side - h) / 2.0
    s = size / side
    m = np.array([[s, 0.0, ox * s], [0.0, s, oy * s]], dtype=np.float64)
    small = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    if out is None:
        out = np.empty((1, size, size, 3), np.float32)
    np.multiply(small, np.float32(2.0 / 255.0), out=out[0], casting="unsafe")
    out -= np.float32(1.0)
    return out, Letterbox(side, ox, oy, w, h)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_xy: np.ndarray, scale: float,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (n, 4: xmin, ymin, xmax, ymax), keypoints (n, 6, 2: x, y) and scores of the anchors that pass.

    Coordinates are in the model input, 0..1. ``raw_boxes`` is (num_boxes, 16), ``raw_scores`` (num_boxes,).
    """
    logits = np.clip(raw_scores.reshape(-1), -100.0, 100.0)
    with np.errstate(over="ignore"):  # exp(100) is inf in float32: score 0, as in MediaPipe
        scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    raw = raw_boxes.reshape(len(scores), -1)[keep] / np.float32(scale)
    a = anchor_xy[keep]
    cx, cy = raw[:, 0] + a[:, 0], raw[:, 1] + a[:, 1]
    half_w, half_h = raw[:, 2] / 2.0, raw[:, 3] / 2.0
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    kps = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    valid = (raw[:, 2] >= 0) & (raw[:, 3] >= 0)  # MediaPipe drops boxes with a negative size
    return boxes[valid], kps[valid], scores[keep][valid]


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = SUPPRESSION_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: (box, keypoints, score) per face, best first.

    Take the best remaining box; every remaining box overlapping it by IoU > threshold (itself included)
    is merged into one score-weighted average box and keypoints; the face keeps the best box's score.
    """
    order = np.argsort(-scores, kind="stable")
    faces = []
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    while order.size:
        best = order[0]
        b, r = boxes[best], boxes[order]
        iw = np.minimum(b[2], r[:, 2]) - np.maximum(b[0], r[:, 0])
        ih = np.minimum(b[3], r[:, 3]) - np.maximum(b[1], r[:, 1])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        union = area[best] + area[order] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        in_group = iou > iou_threshold
        in_group[0] = True  # a degenerate best box (no area) overlaps nothing, not even itself
        group = order[in_group]
        w = scores[group][:, None]
        total = float(w.sum())
        box = (boxes[group] * w).sum(axis=0) / total
        kp = (kps[group] * w[:, :, None]).sum(axis=0) / total
        faces.append((box, kp, float(scores[best])))
        order = order[~in_group]
    return faces


def to_pixels(boxes: np.ndarray, kps: np.ndarray, lb: Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4: x0, y0, x1, y1) and keypoints (n, 6, 2) from model-input coordinates (0..1) to image
    pixels, not clamped (suppression and merging work on these; ``clamp_box`` makes the final box)."""
    offset = np.array([lb.offset_x, lb.offset_y], np.float32)
    side = np.float32(lb.side)
    return boxes * side - np.tile(offset, 2), kps * side - offset


def clamp_box(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A box (x0, y0, x1, y1) in image pixels as MediaPipe's pixel box (x, y, w, h): the corner is clamped to
    the image and the size to the image's size (a face cut by the border keeps its size), kept as floats
    instead of truncated to integers."""
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    return (min(max(float(box[0]), 0.0), width), min(max(float(box[1]), 0.0), height),
            min(max(bw, 0.0), width), min(max(bh, 0.0), height))
