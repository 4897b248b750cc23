"""The shared crop: geometry (eyes level), shape, dtype, grayscale, and the detector feeding it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import decode_rgb
from edgeag.edge.crop import CropSpec, Detection, crop_face, crop_transform, whole_image_detection


def _tilted_face(angle_deg: float, size: int = 240):
    """A synthetic 'face': two dark eye blobs on a light disc, rotated by angle_deg."""
    img = np.full((size, size, 3), 200, np.uint8)
    c = size / 2
    cv2.circle(img, (int(c), int(c)), 80, (230, 190, 170), -1)
    eyes = []
    for dx in (-35, 35):
        a = math.radians(angle_deg)
        x = c + dx * math.cos(a)
        y = c - 20 + dx * math.sin(a)
        cv2.circle(img, (int(round(x)), int(round(y))), 9, (20, 20, 20), -1)
        eyes.append((x, y))
    return img, Detection(box=(c - 80, c - 80, 160, 160), score=0.9, right_eye=eyes[0], left_eye=eyes[1])


@pytest.mark.parametrize("angle", [-25.0, -8.0, 0.0, 12.0, 30.0])
def test_alignment_levels_the_eyes(angle):
    img, det = _tilted_face(angle)
    spec = CropSpec(size=96, channels=3, margin=0.3)
    m = crop_transform(det, spec)
    (x0, y0), (x1, y1) = [m @ np.array([x, y, 1.0]) for x, y in (det.right_eye, det.left_eye)]
    assert abs(y0 - y1) < 1e-6  # transformed eye centres are level
    crop = crop_face(img, det, spec)
    # and in the pixels: the two darkest blobs sit on the same row (within a pixel or two)
    dark = ((crop[:, :, 0] > 5) & (crop[:, :, 0] < 80)).astype(np.uint8)  # eyes, not the black border
    n, _, stats, centroids = cv2.connectedComponentsWithStats(dark)
    inner = [i for i in range(1, n) if stats[i, 0] > 2 and stats[i, 1] > 2
             and stats[i, 0] + stats[i, 2] < spec.size - 2 and stats[i, 1] + stats[i, 3] < spec.size - 2]
    eyes = sorted(inner, key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:2]
    assert len(eyes) == 2
    assert abs(centroids[eyes[0]][1] - centroids[eyes[1]][1]) <= 1.5


def test_eye_order_does_not_flip_the_face():
    img, det = _tilted_face(10.0)
    swapped = Detection(det.box, det.score, right_eye=det.left_eye, left_eye=det.right_eye)
    spec = CropSpec(size=64)
    assert np.array_equal(crop_face(img, det, spec), crop_face(img, swapped, spec))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("src", ["rgb", "gray", "gray1"])
def test_shape_and_dtype_for_any_input(channels, src):
    img, det = _tilted_face(5.0, size=333)
    if src != "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if src == "gray1":
            img = img[:, :, None]
    spec = CropSpec(size=72, channels=channels)
    out = crop_face(img, det, spec)
    assert out.shape == (72, 72, channels) and out.dtype == np.uint8


def test_large_face_is_area_averaged_not_aliased():
    """A fine checkerboard shrunk 6x should come out mid-grey, as area averaging gives."""
    board = (np.indices((600, 600)).sum(0) % 2 * 255).astype(np.uint8)
    img = np.stack([board] * 3, -1)
    out = crop_face(img, Detection(box=(100, 100, 400, 400)), CropSpec(size=64, margin=0.0))
    assert abs(float(out.mean()) - 127.5) < 8 and out.std() < 20


def test_whole_image_fallback_covers_the_image():
    img = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    spec = CropSpec(size=100, margin=0.3)
    out = crop_face(img, whole_image_detection(200, 200, spec), spec)
    assert np.abs(out.astype(int) - cv2.resize(img, (100, 100), interpolation=cv2.INTER_AREA)).mean() < 3


def test_spec_round_trips_through_dict():
    s = CropSpec(size=80, channels=1, margin=0.25)
    assert CropSpec.from_dict(s.to_dict()) == s and "version" in s.to_dict()


def test_detector_finds_the_face_and_eyes_of_a_utk_photo(utk_sample):
    from edgeag.edge.detector import FaceDetector

    rgb = decode_rgb(utk_sample[3][1])
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[100:300, 300:500] = rgb
    with FaceDetector() as det:
        faces = det.detect(canvas)
        assert det.detect(np.zeros((120, 160, 3), np.uint8)) == []
    assert len(faces) >= 1
    x, y, w, h = faces[0].box
    assert 300 - 20 <= x + w / 2 - 100 <= 300 + 20 and 100 - 20 <= y + h / 2 - 100 <= 100 + 30
    (rx, ry), (lx, ly) = faces[0].right_eye, faces[0].left_eye
    assert x <= min(rx, lx) and max(rx, lx) <= x + w and abs(ry - ly) < h / 4
