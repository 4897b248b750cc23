"""The BlazeFace face detectors on LiteRT, returning plain ``Detection`` records in pixels.

Two bundled models (Apache-2.0, MediaPipe; see models/NOTICE.md): ``full`` range (192x192 input, 117 M MACs)
sees faces across a room (85% of faces 1.2 m from a 640x480 webcam, about half at 2 m) but misses faces that
fill the frame; ``short`` range (128x128, 31 M MACs) only finds faces within about a metre, close-ups included.
``tiled`` runs the full range on the whole frame (the short range where it finds nothing) and on 3x2
overlapping tiles, each at 0.7x instead of 0.3x (640x480), all candidates merged by one weighted NMS: faces of
48-64 px (2-2.5 m) are found as faces of 100-150 px are by ``full``, at seven full-range passes. ``auto`` (the
default) is ``tiled`` on a single image and on a stream's first frame; on the following frames of a stream
(``detect(rgb, expected=...)``) it spreads that search over frames (one part every ``SCAN_EVERY`` frames while
faces are tracked, every frame while none is), runs the short range on the whole frame, and the short range
around each face the tracker expects that those did not find again: a far face, once found, is followed every
frame, at about one full-range pass per frame.
Figures: README ("Which face detector"), benchmarks/results/face_size.json, face_size_stream.json. The
networks run on LiteRT like the classifier; MediaPipe's pre- and post-processing is re-implemented in
``blazeface.py``, so no mediapipe is needed at run time and the boxes are the same on every CPU (checked against
MediaPipe's FaceDetector: benchmarks/detector_parity.py, tests/test_detector.py).
"""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

import numpy as np

from edgeag.edge.blazeface import (SPECS, anchors, clamp_box, decode, letterbox, spec_for_input, to_pixels,
                                   weighted_nms)
from edgeag.edge.crop import Detection
from edgeag.edge.native_logs import native_logs_silenced
from edgeag.errors import BadInputError, ModelError

AUTO = "auto"  # tiled on an image; on a stream, tiled spread over frames and the faces found followed
TILED = "tiled"  # full range (short where it finds none) on the whole frame and on overlapping tiles
DETECTORS = (AUTO, TILED, *SPECS)  # the --detector choices: auto, tiled, full, short
TILE_GRID = (3, 2)  # tiles along the frame's longer side, along its shorter side (2x3 on a portrait frame)
TILE_OVERLAP = 0.1  # shared by neighbouring tiles, of the frame's longer side: faces this wide lie whole in a tile
TILE_MIN_FACE = 18  # px in the model input: a tile's narrower candidates are dropped (mostly false, see README)
SCAN_EVERY = 4  # AUTO on a stream with faces tracked: frames per part of the search (7 parts at 640x480)
ROI_SCALE = 3.0  # AUTO on a stream: side of the region searched around an expected face, in face widths
DEFAULT_DETECTOR = AUTO  # chosen by measurement (README, benchmarks/results/face_size.json)


def bundled_detector_path(name: str = "full") -> Path:
    """Path of a bundled BlazeFace model: ``full`` or ``short`` range."""
    if name not in SPECS:
        raise BadInputError(f"unknown detector model {name!r}: choose one of {', '.join(SPECS)}")
    return Path(str(resources.files("edgeag.edge.models") / SPECS[name].file))


def detector_paths(detector: str | Path | None) -> list[Path]:
    """The model files, in the order tried, for a detector name (None = default) or a BlazeFace .tflite path."""
    name = DEFAULT_DETECTOR if detector is None else str(detector)
    if name in (AUTO, TILED):
        return [bundled_detector_path("full"), bundled_detector_path("short")]
    if name in SPECS:
        return [bundled_detector_path(name)]
    path = Path(detector)
    if path.suffix.lower() != ".tflite":
        raise BadInputError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)} "
                            "(or give a BlazeFace .tflite file)")
    if not path.is_file():
        raise ModelError(f"face detector model not found: {path}")
    return [path]


def takes_expected(detector) -> bool:
    """Whether ``detector.detect`` takes the tracks' ``expected`` boxes (``FaceDetector`` does; a detector of
    one's own given to ``FaceAnalyzer(detector=...)`` may only take the frame)."""
    try:
        return "expected" in inspect.signature(detector.detect).parameters
    except (TypeError, ValueError):
        return False


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    """A C-contiguous (H, W, 3) view or copy of a grayscale, RGB or RGBA uint8 frame."""
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        rgb = np.repeat(rgb.reshape(rgb.shape[0], rgb.shape[1], 1), 3, axis=2)
    elif rgb.shape[2] == 4:
        rgb = rgb[:, :, :3]
    return rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)


class BlazeFace:
    """One BlazeFace model on LiteRT: an RGB frame in, ``Detection`` records in pixels out, best first."""

    def __init__(self, path: Path, min_confidence: float = 0.5, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        try:  # LiteRT logs from C++ on creation and first run ("Created TensorFlow Lite XNNPACK delegate")
            with native_logs_silenced():
                self._interp = Interpreter(model_path=str(path), num_threads=threads)
                self._interp.allocate_tensors()
                self._interp.invoke()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with C++ text
            raise ModelError(f"cannot load face detector {path}: {exc}") from None
        inp = self._interp.get_input_details()
        shape = tuple(inp[0]["shape"]) if len(inp) == 1 else ()
        try:
            if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
                raise ValueError(f"input shape {shape}")
            self.spec = spec_for_input(int(shape[1]))
        except ValueError as exc:
            raise ModelError(f"{path} is not a BlazeFace face detector ({exc})") from None
        self.min_confidence = float(min_confidence)
        self._in_index = inp[0]["index"]
        self._boxes_index, self._scores_index = self._output_indices()
        self._anchors = anchors(self.spec)
        self._input = np.empty(shape, np.float32)

    def _output_indices(self) -> tuple[int, int]:
        """Tensor indices of the raw boxes (1, N, 16) and scores (1, N, 1), checked against the spec."""
        by_width = {int(d["shape"][-1]): d for d in self._interp.get_output_details()}
        n = self.spec.num_boxes
        if set(by_width) != {16, 1} or any(tuple(d["shape"][:2]) != (1, n) for d in by_width.values()):
            raise ModelError(f"{self.path}: outputs are not BlazeFace's (1, {n}, 16) boxes and (1, {n}, 1) scores")
        return by_width[16]["index"], by_width[1]["index"]

    def candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The anchors that pass the threshold before suppression: boxes (n, 4: x0, y0, x1, y1) and keypoints
        (n, 6, 2) in ``rgb``'s pixels (not clamped), and scores."""
        tensor, lb = letterbox(rgb, self.spec.input_size, out=self._input)
        self._interp.set_tensor(self._in_index, tensor)
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._boxes_index)[0]
        raw_scores = self._interp.get_tensor(self._scores_index)[0]
        boxes, kps, scores = decode(raw_boxes, raw_scores, self._anchors, self.spec.scale, self.min_confidence)
        return (*to_pixels(boxes, kps, lb), scores)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) frame, best first."""
        return suppressed(*self.candidates(rgb), rgb.shape[1], rgb.shape[0])


def suppressed(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, width: int,
               height: int) -> list[Detection]:
    """Candidates in pixels (boxes x0, y0, x1, y1) merged by MediaPipe's weighted NMS into ``Detection``
    records of a ``width`` x ``height`` image, best first."""
    out = []
    for box, kp, score in weighted_nms(boxes, kps, scores):
        points = tuple((float(x), float(y)) for x, y in kp)  # right eye, left eye, nose, mouth, ears
        out.append(Detection(box=clamp_box(box, width, height), score=score, right_eye=points[0],
                             left_eye=points[1], keypoints=points))
    return out


def tile_boxes(width: int, height: int, grid: tuple[int, int] = TILE_GRID,
               overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1) covering a frame, ``grid`` across x down, neighbours sharing
    ``overlap`` times the frame's longer side (a face narrower than that lies whole inside some tile)."""
    shared = int(round(overlap * max(width, height)))

    def starts(n: int, length: int) -> tuple[list[int], int]:
        size = min(length, -(-(length + (n - 1) * shared) // n))
        return [round(i * (length - size) / (n - 1)) if n > 1 else 0 for i in range(n)], size

    (xs, tw), (ys, th) = starts(grid[0], width), starts(grid[1], height)
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def tile_candidates(model: BlazeFace, rgb: np.ndarray, grid: tuple[int, int] = TILE_GRID,
                    overlap: float = TILE_OVERLAP, min_face: float = TILE_MIN_FACE,
                    larger: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of each tile, in frame pixels (``region_candidates`` of every tile)."""
    h, w = rgb.shape[:2]
    parts = [region_candidates(model, rgb, tile, min_face, larger) for tile in tile_boxes(w, h, grid, overlap)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def region_candidates(model: BlazeFace, rgb: np.ndarray, region: tuple[int, int, int, int],
                      min_face: float = TILE_MIN_FACE,
                      larger: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one region (x0, y0, x1, y1) of the frame, in frame pixels. Dropped: one that crosses a
    region edge inside the frame (a face cut there lies whole in a neighbouring tile if narrower than the
    overlap, or is large enough for the whole-frame pass); one narrower than ``min_face`` pixels of the model
    input (at that size the network's few hits on face-free frames are nearly all); one lying inside a box of
    ``larger`` (the whole-frame candidates, x0, y0, x1, y1) at least 1.5 times as wide: a part of a close face,
    seen alone by a tile."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = region
    boxes, kps, scores = model.candidates(rgb[y0:y1, x0:x1])
    boxes += np.array([x0, y0, x0, y0], np.float32)
    kps += np.array([x0, y0], np.float32)
    whole = ((x0 == 0) | (boxes[:, 0] >= x0)) & ((y0 == 0) | (boxes[:, 1] >= y0)) \
        & ((x1 == w) | (boxes[:, 2] <= x1)) & ((y1 == h) | (boxes[:, 3] <= y1))
    wide = boxes[:, 2] - boxes[:, 0] >= min_face * max(x1 - x0, y1 - y0) / model.spec.input_size
    keep = whole & wide & ~_inside(boxes, larger)
    return boxes[keep], kps[keep], scores[keep]


def around(box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The square region ``scale`` times as wide as ``box`` (x, y, w, h), on its centre, inside the frame."""
    x, y, w, h = box
    side = scale * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return x0, y0, int(min(width, max(x0 + 1, cx + side / 2))), int(min(height, max(y0 + 1, cy + side / 2)))


def refound(box, candidates: np.ndarray) -> bool:
    """Whether a candidate (x0, y0, x1, y1) has its centre within the expected ``box`` (x, y, w, h), grown by
    half its width, and a width between half and twice the box's."""
    if not len(candidates):
        return False
    x, y, w, h = box
    cx, cy = (candidates[:, 0] + candidates[:, 2]) / 2, (candidates[:, 1] + candidates[:, 3]) / 2
    cw = candidates[:, 2] - candidates[:, 0]
    near = (abs(cx - (x + w / 2)) <= w) & (abs(cy - (y + h / 2)) <= h)
    return bool((near & (cw >= w / 2) & (cw <= 2 * w)).any())


def _inside(boxes: np.ndarray, outer: np.ndarray | None, share: float = 0.6, ratio: float = 1.5) -> np.ndarray:
    """Which ``boxes`` have at least ``share`` of their area inside a box of ``outer`` ``ratio`` times as wide."""
    if outer is None or not len(outer) or not len(boxes):
        return np.zeros(len(boxes), bool)
    b, o = boxes[:, None, :], outer[None, :, :]
    iw = np.clip(np.minimum(b[..., 2], o[..., 2]) - np.maximum(b[..., 0], o[..., 0]), 0, None)
    ih = np.clip(np.minimum(b[..., 3], o[..., 3]) - np.maximum(b[..., 1], o[..., 1]), 0, None)
    area = np.maximum((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 1e-6)
    wider = (o[..., 2] - o[..., 0]) >= ratio * (b[..., 2] - b[..., 0])
    return ((iw * ih / area >= share) & wider).any(axis=1)


class FaceDetector:
    """Finds faces in RGB uint8 frames of any size.

    Args:
        detector: ``"auto"`` (default): on a single image, the full range on the whole frame (the short range
            where it finds nothing: close-ups that fill the frame) and on 3x2 overlapping tiles, the candidates
            merged by one weighted NMS: faces of 48-64 px across a room, at seven full-range passes; on the
            frames of a stream (``detect(rgb, expected=...)``, as ``FaceAnalyzer.track`` calls it) the same
            search spread over frames: the short range on the whole frame every frame, one part of the search
            (the whole frame at full range, or one tile) every ``SCAN_EVERY`` frames (every frame while no
            face is tracked), and the short range
            around each tracked face that neither found, so a far face, once found, is followed every frame.
            ``"tiled"``: the whole search on every frame, also in streams. ``"full"``, ``"short"``: one model
            on the whole frame. Or the path of a MediaPipe BlazeFace face detection .tflite (short or full
            range, recognised by its input size).
        min_confidence: score threshold (MediaPipe's ``min_detection_confidence``).
        threads: LiteRT CPU threads (None: LiteRT's default).
    """

    def __init__(self, detector: str | Path | None = None, min_confidence: float = 0.5,
                 threads: int | None = None) -> None:
        self.models = [BlazeFace(p, min_confidence, threads) for p in detector_paths(detector)]
        name = DEFAULT_DETECTOR if detector is None else str(detector)
        self.name = name if name in DETECTORS else self.models[0].spec.name
        self.path = self.models[0].path
        self.tiles = TILE_GRID if self.name in (AUTO, TILED) else None  # (across, down), or None
        self.overlap, self.min_tile_face = TILE_OVERLAP, TILE_MIN_FACE
        self.reset()  # AUTO's search schedule over a stream's frames

    def detect(self, rgb: np.ndarray, expected: list | None = None) -> list[Detection]:
        """Faces in one frame, best first. ``rgb`` is uint8 (H, W, 3); grayscale and RGBA are accepted too.
        ``expected``: on the frames of a stream, the boxes (x, y, w, h) where tracked faces are expected in
        this frame (``Tracker.expected_boxes``); None for a single image."""
        rgb = _as_rgb(rgb)
        h, w = rgb.shape[:2]
        if not self.tiles or max(w, h) < 2 * self.models[0].spec.input_size:  # small images: seen whole
            return self._detect_whole(rgb)
        grid = self.tiles if w >= h else self.tiles[::-1]
        if self.name == AUTO and expected is not None:
            if self._in_stream:
                return self._detect_stream_frame(rgb, grid, expected)
            self._in_stream = True
        return self._detect_tiled(rgb, grid)

    def reset(self) -> None:
        """Start a new stream: its first frame gets the whole search."""
        self._in_stream, self._since_part, self._next_part = False, 0, 0

    def _detect_whole(self, rgb: np.ndarray) -> list[Detection]:
        for model in self.models:
            found = model.detect(rgb)
            if found:
                return found
        return []

    def _whole_candidates(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole frame as ``full`` sees it, or the short range where the full range finds nothing."""
        full, *fallbacks = self.models
        whole = full.candidates(rgb)
        for model in fallbacks:
            if len(whole[2]):
                break
            whole = model.candidates(rgb)
        return whole

    def _detect_tiled(self, rgb: np.ndarray, grid: tuple[int, int]) -> list[Detection]:
        """The whole frame (``_whole_candidates``) and the full range's tiles, merged by one weighted NMS."""
        whole = self._whole_candidates(rgb)
        tiles = tile_candidates(self.models[0], rgb, grid, self.overlap, self.min_tile_face, larger=whole[0])
        return suppressed(*(np.concatenate(p) for p in zip(whole, tiles)), rgb.shape[1], rgb.shape[0])

    def _detect_stream_frame(self, rgb: np.ndarray, grid: tuple[int, int], expected: list) -> list[Detection]:
        """One frame of a stream: the short range on the whole frame; the search's next part (the whole frame
        at full range, then each tile) every ``SCAN_EVERY``-th frame while faces are tracked, every frame
        while none is (the time their classification would take); the short range around each expected face
        not found by those."""
        full, short = self.models
        h, w = rgb.shape[:2]
        parts = [short.candidates(rgb)]
        self._since_part += 1
        if self._since_part >= (SCAN_EVERY if expected else 1):
            tiles = tile_boxes(w, h, grid, self.overlap)
            part, self._since_part = self._next_part % (len(tiles) + 1), 0
            self._next_part = part + 1
            parts.append(full.candidates(rgb) if part == 0 else
                         region_candidates(full, rgb, tiles[part - 1], self.min_tile_face, parts[0][0]))
        found = np.concatenate([p[0] for p in parts])
        for box in expected:
            if not refound(box, found):
                parts.append(region_candidates(short, rgb, around(box, ROI_SCALE, w, h), self.min_tile_face))
        return suppressed(*(np.concatenate(p) for p in zip(*parts)), w, h)

    def close(self) -> None:
        """Nothing to release (kept for the context-manager protocol); safe to call twice."""

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
