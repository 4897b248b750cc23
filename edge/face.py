"""The ``Face`` record: the one shape a face takes in the API, JSON Lines and the HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Face:
    """One analysed face.

    ``box`` is [x, y, w, h] in pixels of the analysed image; ``gender_confidence`` is the probability of
    the more likely gender (0.5-1); ``gender`` is None (unknown) when that is under the analyser's
    ``min_gender_confidence`` (default 0: never); ``track_id`` is None outside video tracking.
    """

    box: tuple[int, int, int, int]
    score: float
    age: float
    gender: str | None
    gender_confidence: float
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
            "age": round(float(self.age), 2),
            "gender": self.gender,
            "gender_confidence": round(float(self.gender_confidence), 4),
            "ethnicity": self.ethnicity,
            "ethnicity_confidence": None if self.ethnicity_confidence is None
            else round(float(self.ethnicity_confidence), 4),
        }
        d.update(self.extra)
        return d
