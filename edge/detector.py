"""MediaPipe Tasks BlazeFace detector, returning plain ``Detection`` records in pixels.

mediapipe is imported lazily: with TensorFlow installed it drags TF in (seconds, hundreds of MB).
"""

from __future__ import annotations

import weakref
from importlib import resources
from pathlib import Path

import numpy as np

from edgeag.edge.crop import Detection
from edgeag.edge.native_logs import native_logs_silenced
from edgeag.errors import ModelError

DEFAULT_DETECTOR = "face_detection_short_range.tflite"


def bundled_detector_path() -> Path:
    """Path of the BlazeFace short-range model shipped in the package (Apache-2.0, see models/NOTICE.md)."""
    return Path(str(resources.files("edgeag.edge.models") / DEFAULT_DETECTOR))


def _import_mediapipe():
    """(mediapipe, BaseOptions, vision), imported without pulling TensorFlow in.

    mediapipe.tasks imports ``tensorflow.tools.docs`` only for its API docs and falls back to a no-op
    when TensorFlow is absent. With TensorFlow installed that import alone costs ~4 s and ~500 MB of
    resident memory in every runtime process, so TensorFlow is hidden while mediapipe loads (unless
    something already imported it, e.g. training, which needs it anyway).
    """
    import sys

    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # makes `import tensorflow...` raise ModuleNotFoundError
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    finally:
        if hide and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return mp, BaseOptions, vision


class FaceDetector:
    """Finds faces in RGB uint8 frames.

    ``video=True`` uses MediaPipe's VIDEO running mode (timestamps must increase; cheaper tracking of
    the same faces frame to frame); otherwise IMAGE mode, for unrelated photos.
    """

    def __init__(self, model_path: str | Path | None = None, min_confidence: float = 0.5,
                 video: bool = False) -> None:
        path = Path(model_path) if model_path else bundled_detector_path()
        if not path.is_file():
            raise ModelError(f"face detector model not found: {path}")
        mp, BaseOptions, vision = _import_mediapipe()
        self._mp = mp
        self.video = video
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            running_mode=mode,
            min_detection_confidence=float(min_confidence),
        )
        self._last_ts = -1
        try:  # LiteRT and MediaPipe log from C++ on creation and on the first frame: run one here, quietly
            with native_logs_silenced():
                self._task = vision.FaceDetector.create_from_options(options)
                self.detect(np.zeros((64, 64, 3), np.uint8), 0)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError with C++ text
            raise ModelError(f"cannot load face detector {path}: {exc}") from None
        # Close at interpreter exit, before module teardown (mediapipe's own __del__ fails that late).
        self._finalizer = weakref.finalize(self, _close_quietly, self._task)
        _close_before_thread_shutdown(self)

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        """Faces in one frame, best first. ``rgb`` is uint8 (H, W, 3); grayscale is accepted too."""
        if rgb.ndim == 2 or rgb.shape[2] == 1:
            rgb = np.repeat(rgb.reshape(rgb.shape[0], rgb.shape[1], 1), 3, axis=2)
        if not rgb.flags.c_contiguous:
            rgb = np.ascontiguousarray(rgb)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.video:
            ts = self._last_ts + 1 if timestamp_ms is None else max(int(timestamp_ms), self._last_ts + 1)
            self._last_ts = ts
            result = self._task.detect_for_video(image, ts)
        else:
            result = self._task.detect(image)
        h, w = rgb.shape[:2]
        out = []
        for d in result.detections:
            bb = d.bounding_box
            kps = d.keypoints or []
            eyes = [(kp.x * w, kp.y * h) for kp in kps[:2]]
            out.append(Detection(
                box=(float(bb.origin_x), float(bb.origin_y), float(bb.width), float(bb.height)),
                score=float(d.categories[0].score) if d.categories else 0.0,
                right_eye=eyes[0] if len(eyes) == 2 else None,
                left_eye=eyes[1] if len(eyes) == 2 else None,
            ))
        out.sort(key=lambda d: -d.score)
        return out

    def close(self) -> None:
        """Release the MediaPipe graph (also done automatically at exit); safe to call twice."""
        self._finalizer()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_quietly(task) -> None:
    with native_logs_silenced():  # "DestroyAccelerator ..." from C++
        task.close()


def _close_before_thread_shutdown(detector: FaceDetector) -> None:
    """Close the MediaPipe graph at interpreter exit while its worker threads still run.

    MediaPipe closes through a thread pool that Python shuts down before ``atexit``/``weakref.finalize``
    callbacks run, so a detector left open by a script would print a traceback at exit. Threading's own
    exit hooks run earlier (last registered first); only a weak reference is held.
    """
    import threading

    register = getattr(threading, "_register_atexit", None)
    if register is None:  # not CPython 3.9+: the weakref finalizer remains
        return
    ref = weakref.ref(detector)

    def _close() -> None:
        d = ref()
        if d is not None:
            d.close()

    try:
        register(_close)
    except RuntimeError:  # already shutting down
        pass
