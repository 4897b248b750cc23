"""The BlazeFace face detectors on LiteRT, returning plain ``Detection`` records in pixels.

Two bundled models (Apache-2.0, MediaPipe; see models/NOTICE.md): ``full`` range (192x192 input, 117 M MACs)
sees faces across a room (85% of faces 1.2 m from a 640x480 webcam, about half at 2 m) but misses faces that
fill the frame; ``short`` range (128x128, 31 M MACs) only finds faces within about a metre, close-ups included.
``auto`` (the default) runs the full range and, on frames where it finds nothing, the short range. Figures:
README ("Which face detector"), benchmarks/results/face_size.json. The networks run on LiteRT like the
classifier; MediaPipe's pre- and post-processing is re-implemented in ``blazeface.py``, so no mediapipe is
needed at run time and the boxes are the same on every CPU (checked against MediaPipe's FaceDetector:
benchmarks/detector_parity.py, tests/test_detector.py).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from edgeag.edge.blazeface import SPECS, anchors, decode, letterbox, spec_for_input, to_image, weighted_nms
from edgeag.edge.crop import Detection
from edgeag.edge.native_logs import native_logs_silenced
from edgeag.errors import BadInputError, ModelError

AUTO = "auto"  # full range, and short range on frames where the full range finds no face
DETECTORS = (AUTO, *SPECS)  # the --detector choices: auto, full, short
DEFAULT_DETECTOR = AUTO  # chosen by measurement (README, benchmarks/results/face_size.json)


def bundled_detector_path(name: str = "full") -> Path:
    """Path of a bundled BlazeFace model: ``full`` or ``short`` range."""
    if name not in SPECS:
        raise BadInputError(f"unknown detector model {name!r}: choose one of {', '.join(SPECS)}")
    return Path(str(resources.files("edgeag.edge.models") / SPECS[name].file))


def detector_paths(detector: str | Path | None) -> list[Path]:
    """The model files, in the order tried, for a detector name (None = default) or a BlazeFace .tflite path."""
    name = DEFAULT_DETECTOR if detector is None else str(detector)
    if name == AUTO:
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

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) frame, best first."""
        tensor, placement = letterbox(rgb, self.spec.input_size, out=self._input)
        self._interp.set_tensor(self._in_index, tensor)
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._boxes_index)[0]
        raw_scores = self._interp.get_tensor(self._scores_index)[0]
        boxes, kps, scores = decode(raw_boxes, raw_scores, self._anchors, self.spec.scale, self.min_confidence)
        out = []
        for box, kp, score in weighted_nms(boxes, kps, scores):
            xywh, points = to_image(box, kp, placement)
            kp = tuple((float(x), float(y)) for x, y in points)  # right eye, left eye, nose, mouth, ears
            out.append(Detection(box=xywh, score=score, right_eye=kp[0], left_eye=kp[1], keypoints=kp))
        return out


class FaceDetector:
    """Finds faces in RGB uint8 frames of any size.

    Args:
        detector: ``"auto"`` (default: the full-range model, and the short-range one on frames where the full
            range finds no face, i.e. close-ups that fill the frame), ``"full"``, ``"short"``, or the path of
            a MediaPipe BlazeFace face detection .tflite (short or full range, recognised by its input size).
        min_confidence: score threshold (MediaPipe's ``min_detection_confidence``).
        threads: LiteRT CPU threads (None: LiteRT's default).
    """

    def __init__(self, detector: str | Path | None = None, min_confidence: float = 0.5,
                 threads: int | None = None) -> None:
        self.models = [BlazeFace(p, min_confidence, threads) for p in detector_paths(detector)]
        self.name = AUTO if len(self.models) > 1 else self.models[0].spec.name
        self.path = self.models[0].path

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in one frame, best first. ``rgb`` is uint8 (H, W, 3); grayscale and RGBA are accepted too."""
        if rgb.ndim == 2 or rgb.shape[2] == 1:
            rgb = np.repeat(rgb.reshape(rgb.shape[0], rgb.shape[1], 1), 3, axis=2)
        elif rgb.shape[2] == 4:
            rgb = rgb[:, :, :3]
        if not rgb.flags.c_contiguous:
            rgb = np.ascontiguousarray(rgb)
        for model in self.models:
            found = model.detect(rgb)
            if found:
                return found
        return []

    def close(self) -> None:
        """Nothing to release (kept for the context-manager protocol); safe to call twice."""

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
