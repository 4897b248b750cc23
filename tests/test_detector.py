"""The BlazeFace detectors on LiteRT: post-processing, both bundled models, --detector plumbing, MediaPipe parity."""

from __future__ import annotations

import importlib.resources
import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, needs_data

from edgeag.edge import blazeface as bf
from edgeag.edge.crop import Detection
from edgeag.edge.detector import (DEFAULT_DETECTOR, DETECTORS, FaceDetector, bundled_detector_path, tile_boxes,
                                  tile_candidates)

has_mediapipe = importlib.util.find_spec("mediapipe") is not None


# ------------------------------------------------------------------------------------------ post-processing

def test_anchor_grids_are_mediapipes():
    short, full = bf.anchors(bf.SHORT), bf.anchors(bf.FULL)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short: 16x16 cells x 2 anchors, then 8x8 cells x 6 anchors; full: 48x48 cells x 1 anchor
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16]) and np.allclose(short[512], [0.5 / 8, 0.5 / 8])
    assert np.allclose(short[512:518], short[512]) and np.allclose(short[-1], [7.5 / 8, 7.5 / 8])
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48]) and np.allclose(full[48], [0.5 / 48, 1.5 / 48])


def test_decode_and_weighted_nms_merge_one_face_keep_two():
    anchors = np.array([[0.25, 0.25], [0.26, 0.25], [0.75, 0.75]], np.float32)
    raw = np.zeros((3, 16), np.float32)
    raw[:, 2:4] = 12.8  # w = h = 0.1 of the input at scale 128
    raw[1, 0] = 1.28  # the second box shifted right by 0.01
    logits = np.array([3.0, 1.0, 2.0], np.float32)  # scores 0.95, 0.73, 0.88
    boxes, kps, scores = bf.decode(raw, logits, anchors, 128.0, 0.5)
    assert boxes.shape == (3, 4) and kps.shape == (3, 6, 2)
    assert np.allclose(boxes[0], [0.2, 0.2, 0.3, 0.3])
    faces = bf.weighted_nms(boxes, kps, scores)
    assert len(faces) == 2 and faces[0][2] == pytest.approx(scores[0]) and faces[1][2] == pytest.approx(scores[2])
    s0, s1 = scores[0], scores[1]
    expected_x = (0.2 * s0 + 0.22 * s1) / (s0 + s1)  # centre x 0.25 and 0.27 (anchor 0.26 + 0.01)
    assert faces[0][0][0] == pytest.approx(expected_x, abs=1e-6)
    assert len(bf.decode(raw, np.full(3, -1.0, np.float32), anchors, 128.0, 0.5)[0]) == 0


def test_letterbox_keeps_aspect_and_maps_back():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[200:280, 300:380] = 255  # an 80x80 white square
    tensor, lb = bf.letterbox(rgb, 128)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert tensor.min() == -1.0 and tensor.max() == pytest.approx(1.0)
    assert (tensor[0, :15] == -1).all() and (tensor[0, -15:] == -1).all()  # padding above and below
    ys, xs = np.nonzero(tensor[0, :, :, 0] > 0)
    # 640 -> 128 is a factor 5; the image starts (640 - 480) / 2 / 5 = 16 rows down
    assert xs.min() == pytest.approx(60, abs=1) and ys.min() == pytest.approx(16 + 40, abs=1)
    boxes, kps = bf.to_pixels(np.array([[60 / 128, 56 / 128, 76 / 128, 72 / 128]]), np.zeros((1, 6, 2)), lb)
    assert np.allclose(bf.clamp_box(boxes[0], lb.width, lb.height), (300, 200, 80, 80), atol=1e-3)
    assert bf.clamp_box(np.array([-10, 470, 30, 500]), 640, 480) == (0.0, 470.0, 40.0, 30.0)  # MediaPipe's clamp


def test_detector_names_agree_with_the_cli():
    from edgeag.cli.options import DEFAULT_DETECTOR as cli_default, Detector

    assert [d.value for d in Detector] == list(DETECTORS) == ["auto", "tiled", "full", "short"]
    assert cli_default.value == DEFAULT_DETECTOR


def test_unknown_detector_and_non_blazeface_file_are_clear_errors(tmp_path):
    from edgeag.edge.classifier import bundled_model_path
    from edgeag.errors import BadInputError, ModelError

    with pytest.raises(BadInputError, match="auto, tiled, full, short"):
        FaceDetector("medium")
    with pytest.raises(ModelError, match="not found"):
        FaceDetector(tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="not a BlazeFace"):
        FaceDetector(bundled_model_path())


# ------------------------------------------------------------------------------ tiles

@pytest.mark.parametrize("w, h, grid", [(640, 480, (3, 2)), (480, 640, (2, 3)), (1280, 720, (3, 2)), (400, 300, (2, 2))])
def test_tiles_cover_the_frame_and_overlap(w, h, grid):
    tiles = tile_boxes(w, h, grid)
    assert len(tiles) == grid[0] * grid[1]
    assert all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in tiles)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs, ys = sorted({t[0] for t in tiles}), sorted({t[1] for t in tiles})
    tw, th = tiles[0][2] - tiles[0][0], tiles[0][3] - tiles[0][1]
    shared = round(0.1 * max(w, h))  # TILE_OVERLAP: a face this wide lies whole in some tile
    assert all(b - a <= tw - shared for a, b in zip(xs, xs[1:])) and all(b - a <= th - shared for a, b in zip(ys, ys[1:]))
    assert tile_boxes(640, 480, (3, 2))[:2] == [(0, 0, 256, 272), (192, 0, 448, 272)]


class _OneBoxModel:
    """Stands in for BlazeFace: in any image, one 40 px candidate centred at (cx, cy) of the frame, if inside."""

    spec = bf.FULL

    def __init__(self, frame_w, frame_h, cx, cy, side=40.0):
        self.frame, self.c, self.side = (frame_w, frame_h), (cx, cy), side
        self.seen = []

    def candidates(self, rgb):
        # the image is the frame or a tile view into it: find the view's origin from the frame's pixel values
        x0, y0 = int(rgb[0, 0, 0]) * 8, int(rgb[0, 0, 1]) * 8
        self.seen.append((x0, y0, rgb.shape[1], rgb.shape[0]))
        cx, cy = self.c[0] - x0, self.c[1] - y0
        if not (0 <= cx < rgb.shape[1] and 0 <= cy < rgb.shape[0]):
            return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
        half = self.side / 2
        box = np.array([[cx - half, cy - half, cx + half, cy + half]], np.float32)
        return box, np.full((1, 6, 2), [cx, cy], np.float32), np.array([0.9], np.float32)


def _coded_frame(w=640, h=480):
    """A frame whose pixel (x, y) holds x // 8 and y // 8, so a tile view tells where it starts."""
    x, y = np.meshgrid(np.arange(w) // 8, np.arange(h) // 8)
    return np.dstack([x, y, np.zeros_like(x)]).astype(np.uint8)


def test_tile_candidates_are_in_frame_pixels_and_cut_or_contained_ones_are_dropped():
    rgb = _coded_frame()
    # a face at (250, 100), 230-270 wide: whole in tile 2 (x 192-448); tile 1 (x 0-256) sees it cut at x 256
    model = _OneBoxModel(640, 480, 250, 100)
    boxes, kps, scores = tile_candidates(model, rgb, (3, 2))
    assert model.seen[:2] == [(0, 0, 256, 272), (192, 0, 256, 272)] and len(model.seen) == 6
    assert len(scores) == 1  # tile 2's
    assert np.allclose(boxes, [[230, 80, 270, 120]]) and np.allclose(kps[:, 0], [250, 100])
    whole = model.candidates(rgb)
    faces = bf.weighted_nms(*(np.concatenate(p) for p in zip(whole, (boxes, kps, scores))))
    assert len(faces) == 1 and np.allclose(faces[0][0], [230, 80, 270, 120])  # one face after the merge
    # inside a whole-frame box at least 1.5 times as wide (a part of a close face): dropped; beside it: kept
    assert len(tile_candidates(model, rgb, (3, 2), larger=np.array([[200, 50, 300, 150.0]]))[2]) == 0
    assert len(tile_candidates(model, rgb, (3, 2), larger=np.array([[225, 75, 275, 125.0]]))[2]) == 1
    assert len(tile_candidates(model, rgb, (3, 2), larger=np.array([[300, 50, 400, 150.0]]))[2]) == 1
    # a face at the frame's border is kept by the tile that shares that border
    model = _OneBoxModel(640, 480, 10, 470, side=30)
    assert len(tile_candidates(model, rgb, (3, 2))[2]) == 1
    # a candidate narrower than min_face pixels of the model input is dropped in tiles
    model = _OneBoxModel(640, 480, 250, 100, side=10)
    assert len(tile_candidates(model, rgb, (3, 2))[2]) == 0


@pytest.fixture(scope="module")
def small_faces():
    """A generated room with four real test faces pasted at 40-48 px (one across a tile edge) and one at
    150 px across tile edges, and their places. The full range finds one small face, the tiled pass all."""
    from edgeag.benchmarks.scenes import camera, paste, scene
    from video_fixture import pick_faces

    faces = [f.rgb for f in pick_faces()]
    rng = np.random.default_rng(1)
    img = scene(rng, kind="room")
    places = [(80, 60, 44), (230, 300, 44), (470, 100, 48), (560, 330, 40), (300, 120, 150)]
    for (x, y, side), face in zip(places, faces + faces):
        paste(img, face, x, y, side)
    return camera(img, rng), places


@needs_data
def test_tiled_finds_small_faces_the_full_range_misses_one_box_each(small_faces):
    rgb, places = small_faces
    with FaceDetector("full") as full, FaceDetector("tiled") as tiled:
        assert tiled.name == "tiled" and tiled.path == bundled_detector_path("full")
        by_full, by_tiled = full.detect(rgb), tiled.detect(rgb)
        assert tiled.detect(rgb[:200, :200]) == full.detect(rgb[:200, :200])  # small images: not tiled
    small = places[:4]
    assert sum(_found(by_full, p) for p in small) <= 2
    assert sum(_found(by_tiled, p) for p in small) >= 3 and _found(by_tiled, places[4])
    for x, y, side in places:  # boxes in frame pixels, one per face, nothing else
        mine = [d for d in by_tiled if _found([d], (x, y, side))]
        assert len(mine) <= 1
        assert all(0.6 * side <= d.box[2] <= 1.2 * side and abs(d.box[2] - d.box[3]) < 1 for d in mine)
    assert len(by_tiled) == sum(_found(by_tiled, p) for p in places)
    assert [d.score for d in by_tiled] == sorted((d.score for d in by_tiled), reverse=True)


@needs_data
def test_tiled_gives_a_close_face_one_box():
    """A face filling most of the frame: tiles see only parts of it, and none may become a second face."""
    from edgeag.benchmarks.scenes import camera, paste, scene
    from video_fixture import pick_faces

    with FaceDetector("tiled") as tiled:
        for i, face in enumerate(pick_faces()):
            rng = np.random.default_rng(10 + i)
            img = scene(rng, kind="room")
            place = (60 + 60 * i, 5, 420 + 20 * i)
            paste(img, face.rgb, *place)
            dets = tiled.detect(camera(img, rng))
            assert len(dets) == 1 and _found(dets, place)


@needs_data
def test_auto_follows_far_faces_in_a_stream_at_a_fraction_of_the_search(small_faces, monkeypatch):
    """A single image gets auto's whole search (= tiled); a stream's first frame too, then the search is spread
    over frames and the faces it found are looked for again around where the tracker expects them: every frame
    keeps them, with at most one full-range pass per SCAN_EVERY frames. reset() starts a new stream."""
    from edgeag.edge.detector import SCAN_EVERY
    from edgeag.edge.tracker import Tracker

    rgb, places = small_faces
    with FaceDetector("auto") as auto, FaceDetector("tiled") as tiled:
        assert auto.detect(rgb) == tiled.detect(rgb)
        wanted = [p for p in places if _found(tiled.detect(rgb), p)]
        full_passes = []
        search = auto.models[0].candidates
        monkeypatch.setattr(auto.models[0], "candidates", lambda img: full_passes.append(1) or search(img))
        for stream in range(2):
            tracker, full_passes[:] = Tracker(), []
            for i in range(3 * SCAN_EVERY + 1):
                dets = auto.detect(rgb, expected=tracker.expected_boxes(i / 30, (640, 480)))
                tracker.update([d.box for d in dets], i / 30, (640, 480))
                assert all(_found(dets, p) for p in wanted), (stream, i)
                assert len(dets) == len(wanted)
            assert len(full_passes) == 7 + 3  # the first frame's whole search (whole frame + 6 tiles), then 3
            auto.reset()


# ------------------------------------------------------------------------------ both models, real faces

@pytest.fixture(scope="module")
def two_faces():
    """A generated room with a real test face pasted large (160 px) and small (64 px), and their places.

    The small face scores 0.74 with the full range and 0.20 with the short range (threshold 0.5).
    """
    from edgeag.benchmarks.scenes import camera, paste, scene
    from video_fixture import pick_faces

    face = pick_faces()[0].rgb
    rng = np.random.default_rng(3)
    img = scene(rng, kind="room")
    paste(img, face, 60, 80, 160)
    paste(img, face, 420, 200, 64)
    return camera(img, rng), [(60, 80, 160), (420, 200, 64)]


def _found(dets: list[Detection], place) -> bool:
    x, y, side = place
    return any(x <= d.box[0] + d.box[2] / 2 <= x + side and y <= d.box[1] + d.box[3] / 2 <= y + side
               for d in dets)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise OSError("network use in a test that must run offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@needs_data
@pytest.mark.parametrize("name, finds_small", [("auto", True), ("tiled", True), ("full", True), ("short", False)])
def test_each_detector_loads_offline_and_finds_the_faces_it_should(name, finds_small, two_faces, no_network):
    rgb, (large, small) = two_faces
    path = bundled_detector_path("short" if name == "short" else "full")
    assert path.is_file() and path.parent == Path(str(importlib.resources.files("edgeag.edge.models")))
    with FaceDetector(name) as det:
        assert det.name == name and det.path == path
        dets = det.detect(rgb)
        assert det.detect(np.zeros((240, 320, 3), np.uint8)) == []
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        assert det.detect(rgba) == dets and det.detect(np.asfortranarray(rgb)) == dets  # RGBA, non-C order
        assert len(det.detect(rgb[:, :, 0])) >= 1  # grayscale
    assert _found(dets, large)
    assert _found(dets, small) == finds_small
    assert all(d.right_eye is not None and d.left_eye is not None for d in dets)


@needs_data
def test_auto_falls_back_to_short_range_on_close_ups(utk_sample):
    """UTKFace chips are close-ups (the face fills the image): the full range misses some, auto does not."""
    from conftest import decode_rgb

    full, short, auto = FaceDetector("full"), FaceDetector("short"), FaceDetector("auto")
    fallbacks = 0
    for _, data in utk_sample[:12]:
        rgb = decode_rgb(data)
        f, s, a = full.detect(rgb), short.detect(rgb), auto.detect(rgb)
        assert a == (f or s)
        fallbacks += not f and bool(s)
    assert fallbacks >= 1


# ------------------------------------------------------------------------------ --detector plumbing

def test_detector_reaches_the_analyzer_through_the_api():
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions

    with FaceAnalyzer() as fa:
        assert fa.detector.name == DEFAULT_DETECTOR
    with FaceAnalyzer(FaceAnalyzerOptions(detector="short")) as fa:
        assert fa.detector.name == "short"
        assert fa.analyze(np.zeros((120, 160, 3), np.uint8)) == []


class _Recorder:
    """Stands in for FaceAnalyzer: records its options, finds nothing."""

    seen: list = []

    def __init__(self, options=None, **kw):
        _Recorder.seen.append(options)
        self.classifier = type("C", (), {"path": Path("m.tflite")})()
        self.spec = type("S", (), {"size": 64})()
    def analyze(self, rgb, timestamp_ms=None):
        from edgeag.edge.face import AnalysisResult

        return AnalysisResult()

    track = analyze

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass


@pytest.mark.parametrize("command", ["predict", "run"])
def test_detector_reaches_the_analyzer_through_the_cli(command, tmp_path, monkeypatch):
    import cv2
    from typer.testing import CliRunner

    import edgeag.edge.analyzer as analyzer
    from edgeag.cli import app

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((60, 80, 3), np.uint8))
    monkeypatch.setattr(analyzer, "FaceAnalyzer", _Recorder)
    _Recorder.seen = []
    args = [command, str(img), "--detector", "short"] + (["--headless", "-q"] if command == "run" else [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert [o.detector for o in _Recorder.seen] == ["short"]


def test_detector_reaches_the_server():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from edgeag.edge.server import ServerOptions, create_app

    with TestClient(create_app(options=ServerOptions.from_fields(detector="short", workers=1))) as client:
        assert client.get("/v1/model").json()["server"]["detector"] == "short"


@pytest.mark.parametrize("command", ["run", "predict", "serve", "benchmark"])
def test_wrong_detector_value_exits_2_with_the_choices(command):
    p = subprocess.run([sys.executable, "-m", "edgeag.cli", command, *(["x.jpg"] if command == "predict" else []),
                        "--detector", "medium"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    err = " ".join(p.stderr.split())
    assert "medium" in err and "full" in err and "short" in err and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------ parity with MediaPipe

@needs_data
@pytest.mark.skipif(not has_mediapipe, reason="mediapipe is not installed (only this check needs it)")
@pytest.mark.parametrize("name", ["full", "short"])
def test_same_faces_and_boxes_as_mediapipe(name):
    from edgeag.benchmarks.detector_parity import compare, parity_images

    images = parity_images(DATA, n_utk=45, n_fgnet=15, seed=1)
    r = compare(name, images)
    assert r["matched"] >= (15 if name == "full" else 8)
    assert r["unexplained"] == []  # faces found by one only are borderline (score within 0.03 of 0.5)
    assert r["max_box_dev_px"] <= 2 and r["max_eye_dev_px"] <= 2
    assert r["max_score_dev"] <= 0.02
