"""The ``Face`` record: the one shape a face takes in the API, JSON Lines and the HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field

# Defaults shared by FaceAnalyzerOptions, the tracker and the CLI options (here because this module is light).
# Faces narrower than this many pixels (detected box) get no age, gender or ethnicity: below it the bundled
# model's estimates are mostly noise (measured: benchmarks/attributes_by_face_size.py, table in README).
MIN_FACE_PX = 12
# Seconds a face may go unseen and keep its track ID (measured: benchmarks/tracking.py, README).
MAX_GAP_S = 1.5


@dataclass
class Face:
    """One analysed face.

    ``box`` is [x, y, w, h] in pixels of the analysed image; ``gender_confidence`` is the probability of
    the more likely gender (0.5-1); ``gender`` is None (unknown) when that is under the analyser's
    ``min_gender_confidence`` (default 0: never); ``p_female`` is the probability of female behind both;
    ``ethnicity_probs`` the probability of each of the classifier's ethnicity labels (in their order), of
    which ``ethnicity`` is the most likely; ``track_id`` is None outside video tracking. A face narrower than
    the analyser's ``min_face`` has only box, score and track: age, gender, ethnicity, their confidences and
    probabilities are None (null in JSON). With tracking and smoothing (``FaceAnalyzer.track``), age,
    gender, ethnicity and their probabilities are the track's smoothed estimates and ``age_raw`` /
    ``p_female_raw`` this frame's own (otherwise None).
    """

    box: tuple[int, int, int, int]
    score: float
    age: float | None
    gender: str | None
    gender_confidence: float | None
    ethnicity: str | None = None
    ethnicity_confidence: float | None = None
    track_id: int | None = None
    p_female: float | None = None
    age_raw: float | None = None
    p_female_raw: float | None = None
    # Not part of the JSON form:
    ethnicity_probs: tuple[float, ...] | None = field(default=None, repr=False)
    # The detector's keypoints in pixels (BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear),
    # for head-pose estimates (edge/audience.py).
    keypoints: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The JSON form, identical for the CLI, the server and the Python API (``age_raw`` and
        ``p_female_raw`` only when set, i.e. when tracking smoothed this face)."""
        d = {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "track_id": self.track_id,
            "age": _rounded(self.age, 2),
            "gender": self.gender,
            "gender_confidence": _rounded(self.gender_confidence, 4),
            "ethnicity": self.ethnicity,
            "ethnicity_confidence": _rounded(self.ethnicity_confidence, 4),
            "p_female": _rounded(self.p_female, 4),
        }
        if self.age_raw is not None:
            d.update(age_raw=_rounded(self.age_raw, 2), p_female_raw=_rounded(self.p_female_raw, 4))
        return d


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


class AnalysisResult(list):
    """What one analysis returns: the ``Face`` records (it is a list of them, most confident first) and
    ``timings_ms``, the milliseconds spent per stage (``detect_ms``, ``crop_ms``, ``classify_ms``;
    ``track_ms`` after ``FaceAnalyzer.track``)."""

    def __init__(self, faces=(), timings_ms: dict[str, float] | None = None) -> None:
        super().__init__(faces)
        self.timings_ms: dict[str, float] = dict(timings_ms or {})
