"""The ``Face`` record: the one shape a face takes in the API, JSON Lines and the HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field

# Defaults shared by FaceAnalyzerOptions, the tracker and the CLI options (here because this module is light).
# Faces narrower than this many pixels (detected box) get no age, gender or ethnicity: below it the bundled
# model's estimates are mostly noise (measured: benchmarks/attributes_by_face_size.py, table in README).
MIN_FACE_PX = 20
# Seconds a face may go unseen and keep its track ID (measured: benchmarks/tracking.py, README).
MAX_GAP_S = 1.5


@dataclass
class Face:
    """One analysed face.

    ``box`` is [x, y, w, h] in pixels of the analysed image; ``gender_confidence`` is the probability of
    the more likely gender (0.5-1); ``gender`` is None (unknown) when that is under the analyser's
    ``min_gender_confidence`` (default 0: never); ``track_id`` is None outside video tracking. A face
    narrower than the analyser's ``min_face`` has only box, score and track: age, gender, ethnicity and
    their confidences are None (null in JSON).
    """

    box: tuple[int, int, int, int]
    score: float
    age: float | None
    gender: str | None
    gender_confidence: float | None
    ethnicity: str | None = None
    ethnicity_confidence: float | None = None
    track_id: int | None = None
    extra: dict = field(default_factory=dict)  # optional fields (e.g. raw per-frame values when smoothing)
    # The detector's keypoints in pixels (BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear),
    # for head-pose estimates (edge/audience.py); never part of the JSON form.
    keypoints: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The JSON form, identical for the CLI, the server and the Python API."""
        d = {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "track_id": self.track_id,
            "age": None if self.age is None else round(float(self.age), 2),
            "gender": self.gender,
            "gender_confidence": None if self.gender_confidence is None else round(float(self.gender_confidence), 4),
            "ethnicity": self.ethnicity,
            "ethnicity_confidence": None if self.ethnicity_confidence is None
            else round(float(self.ethnicity_confidence), 4),
        }
        d.update(self.extra)
        return d
