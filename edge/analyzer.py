"""``FaceAnalyzer``: detector + shared crop + classifier, composed. The library's front door.

    from edgeag import FaceAnalyzer
    faces = FaceAnalyzer().analyze("photo.jpg")      # or an RGB uint8 array
    print([f.to_dict() for f in faces])

For video, ``track`` adds stable track IDs and smooths each track's age, gender and ethnicity:

    with FaceAnalyzer(video=True) as fa:
        for i, frame in enumerate(frames):           # RGB uint8 arrays of one stream
            faces = fa.track(frame, timestamp_ms=i * 33)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeag.edge.classifier import AgeGenderClassifier
from edgeag.edge.crop import Detection, crop_face
from edgeag.edge.detector import DEFAULT_DETECTOR, FaceDetector, takes_expected
from edgeag.edge.face import MAX_GAP_S, MIN_FACE_PX, AnalysisResult, Face
from edgeag.edge.images import read_image, scale_faces
from edgeag.edge.tracker import Tracker
from edgeag.errors import BadInputError


@dataclass
class FaceAnalyzerOptions:
    """Options of a ``FaceAnalyzer`` (MediaPipe Tasks style: one dataclass, ``FaceAnalyzer(options)``)."""

    model_path: str | Path | None = None  # classifier .tflite; None = bundled default
    detector: str | Path | None = DEFAULT_DETECTOR  # auto, tiled, full or short (BlazeFace), or a .tflite
    min_confidence: float = 0.5  # detector score threshold
    threads: int | None = None  # LiteRT threads for the classifier and the detector
    video: bool = False  # frames of one stream (camera, video), not unrelated photos
    max_faces: int | None = None  # keep only the N most confident faces
    # Below this ``gender_confidence`` a face's gender is None (unknown); the confidence is still reported.
    # 0 = always state it. (Bundled model, test split: 0.68 leaves 10% of faces unknown, 95.5% right on the rest.)
    min_gender_confidence: float = 0.0
    # Faces narrower than this (detected box, pixels) keep box, score and track but are not classified:
    # age, gender, ethnicity and their confidences are None. 0 = classify every face. (See README.)
    min_face: int = MIN_FACE_PX
    # Tracking (``track()`` only): smoothing of age/gender/ethnicity over each track, and its parameters.
    smooth: bool = True
    max_gap_s: float = MAX_GAP_S  # seconds a track survives unseen (misses, occlusions) before its ID is retired
    age_alpha: float = 0.2  # EMA weight of the newest age
    window: int = 30  # frames over which gender/ethnicity evidence is averaged


def load_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 at full size. Raises BadInputError (``ImageError``) for a missing or
    undecodable file. (``analyze(path)`` decodes big images at a reduced size instead: edge/images.py.)"""
    return read_image(path, reduce_above=None).rgb


class FaceAnalyzer:
    """Finds faces and estimates age, gender and ethnicity for each.

    ``analyze(image)`` and ``track(frame)`` return an ``AnalysisResult``: a list of ``Face`` records whose
    ``timings_ms`` holds the milliseconds the call spent per stage (detect, crop, classify, track).
    """

    def __init__(self, options: FaceAnalyzerOptions | None = None, *, detector=None, classifier=None,
                 **kwargs) -> None:
        """``detector`` / ``classifier``: already built ones (anything with ``FaceDetector.detect`` /
        ``AgeGenderClassifier``'s ``predict``, ``crop_spec``, ``labels``, e.g. timing wrappers); None builds
        them from the options. A name or path as ``detector`` is the option, as before."""
        if isinstance(detector, (str, Path)):
            kwargs["detector"], detector = detector, None
        self.options = options or FaceAnalyzerOptions(**kwargs)
        o = self.options
        if classifier is None:
            classifier = AgeGenderClassifier(o.model_path, threads=o.threads)  # errors name the file
        self.classifier = classifier
        if detector is None:
            detector = FaceDetector(o.detector, min_confidence=o.min_confidence, threads=o.threads)
        self.detector = detector
        self._detector_takes_expected = takes_expected(detector)
        self.spec = self.classifier.crop_spec
        self._genders = self.classifier.labels["gender"]
        self._ethnicities = self.classifier.labels["ethnicity"]
        self.tracker = Tracker(max_gap_s=o.max_gap_s, age_alpha=o.age_alpha, window=o.window)
        self._last_timings: dict[str, float] = {}

    @property
    def last_timings(self) -> dict[str, float]:
        """The ``timings_ms`` of the last ``analyze`` / ``track`` result."""
        return self._last_timings

    @property
    def metadata(self) -> dict:
        """The classifier's embedded metadata (input, labels, training data, version)."""
        return self.classifier.metadata

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None, expected: list | None = None) -> list[Detection]:
        """Detections, at most ``max_faces``; ``expected``: boxes where tracked faces should be (streams)."""
        follows = expected is not None and self._detector_takes_expected
        dets = self.detector.detect(rgb, expected=expected) if follows else self.detector.detect(rgb)
        return dets[: self.options.max_faces] if self.options.max_faces else dets

    def classify(self, rgb: np.ndarray, dets: list[Detection]) -> AnalysisResult:
        """Crop every detection at least ``min_face`` wide with the shared crop function and classify them in
        one batch; narrower ones keep box and score, with None attributes."""
        t0 = time.perf_counter()
        big = [i for i, d in enumerate(dets) if d.box[2] >= self.options.min_face]
        if big:
            crops = np.stack([crop_face(rgb, dets[i], self.spec) for i in big])
        t1 = time.perf_counter()
        p = self.classifier.predict(crops) if big else {}
        row = {i: r for r, i in enumerate(big)}
        faces = AnalysisResult()
        for i, d in enumerate(dets):
            x, y, w, h = d.box
            face = Face(box=(int(round(x)), int(round(y)), int(round(w)), int(round(h))), score=d.score,
                        age=None, gender=None, gender_confidence=None, keypoints=d.keypoints)
            if i in row:
                r = row[i]
                self._set_attributes(face, float(p["age"][r]), float(p["p_female"][r]), p["ethnicity"][r])
            faces.append(face)
        t2 = time.perf_counter()
        faces.timings_ms.update(crop_ms=(t1 - t0) * 1e3, classify_ms=(t2 - t1) * 1e3)
        return faces

    def _set_attributes(self, face: Face, age: float, p_female: float, ethnicity_probs: np.ndarray) -> None:
        """A face's age, gender and ethnicity from the model's (or its track's smoothed) estimates."""
        face.age, face.p_female = age, p_female
        face.gender, face.gender_confidence = self._gender(p_female), max(p_female, 1.0 - p_female)
        ei = int(ethnicity_probs.argmax())
        face.ethnicity, face.ethnicity_confidence = self._ethnicities[ei], float(ethnicity_probs[ei])
        face.ethnicity_probs = tuple(ethnicity_probs.tolist())

    def _gender(self, p_female: float) -> str | None:
        """The stated gender, or None when its confidence is under ``min_gender_confidence``."""
        if max(p_female, 1.0 - p_female) < self.options.min_gender_confidence:
            return None
        return self._genders[int(p_female >= 0.5)]

    def analyze(self, image: np.ndarray | str | Path, timestamp_ms: int | None = None) -> AnalysisResult:
        """Faces in one RGB uint8 image (H, W, 3) or image file, most confident first, and the stage timings."""
        if isinstance(image, (str, Path)):  # big files are decoded reduced; boxes come back in file pixels
            decoded = read_image(image)
            return scale_faces(self.analyze(decoded.rgb, timestamp_ms), decoded.scale)
        return self._analyze(_check_rgb(image), timestamp_ms)

    def _analyze(self, rgb: np.ndarray, timestamp_ms: int | None, expected: list | None = None) -> AnalysisResult:
        t0 = time.perf_counter()
        dets = self.detect(rgb, timestamp_ms, expected)
        detect_ms = (time.perf_counter() - t0) * 1e3
        faces = self.classify(rgb, dets)
        faces.timings_ms = {"detect_ms": detect_ms, **faces.timings_ms}
        self._last_timings = faces.timings_ms
        return faces

    def track(self, image: np.ndarray, timestamp_ms: int | None = None) -> AnalysisResult:
        """Faces in one frame of a stream, with ``track_id`` set and predictions smoothed per track.

        Call it on consecutive frames of one video or camera (best with ``video=True``; timestamps
        should increase, None counts frames at 30 FPS). A track keeps its ID through gaps of up to
        ``max_gap_s`` seconds; ``self.tracker.retired`` lists the tracks this frame retired (see
        ``edgeag.edge.tracker.Tracker``). Each track's age is an exponential moving average, its
        gender and ethnicity the mean log-odds / log-probabilities of the last ``window`` frames, so
        ``gender_confidence`` grows as evidence accumulates. With ``smooth=False`` the per-frame values
        are returned unchanged (IDs are still assigned, and a track's smoothed age and gender still decide
        whether a face may re-acquire it after a gap: ``edgeag.edge.tracker.rules_out``). When smoothing,
        ``Face.age_raw`` and ``Face.p_female_raw`` hold this frame's own values. Call ``reset_tracks()`` between
        unrelated videos.
        """
        rgb = _check_rgb(image)
        t_s, size = None if timestamp_ms is None else timestamp_ms / 1e3, (rgb.shape[1], rgb.shape[0])
        faces = self._analyze(rgb, timestamp_ms, self.tracker.expected_boxes(t_s, size))
        t0 = time.perf_counter()
        seen = [None if f.age is None else (f.age, f.p_female) for f in faces]
        tracks = self.tracker.update([f.box for f in faces], t_s, size, seen)
        smooth = self.options.smooth
        for f, tr in zip(faces, tracks):
            f.track_id = tr.id
            if f.age is None:  # a face under min_face adds no evidence to its track
                continue
            s = self.tracker.smooth(tr, f.age, f.p_female, np.asarray(f.ethnicity_probs))  # also gates re-acquiring
            if not smooth:
                continue
            f.age_raw, f.p_female_raw = f.age, f.p_female
            self._set_attributes(f, s.age, s.p_female, s.ethnicity)
        faces.timings_ms["track_ms"] = (time.perf_counter() - t0) * 1e3
        return faces

    def reset_tracks(self) -> None:
        """Forget all tracks (e.g. before analysing another video); IDs are not reused."""
        self.tracker.reset()
        if hasattr(self.detector, "reset"):
            self.detector.reset()  # the next frame starts a stream: the whole search

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> "FaceAnalyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()



def _check_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise BadInputError("image must be a uint8 numpy array (H, W, 3) in RGB order, or a path")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise BadInputError(f"image must be (H, W, 3) RGB uint8; got shape {image.shape}")
    return image[:, :, :3] if image.shape[2] == 4 else image
