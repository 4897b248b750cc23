"""Audience analytics: visits (a track's whole stay) and per-interval aggregates, from tracks only.

Feed ``AudienceCounter.update(t, faces, ended)`` once per processed frame: ``t`` in seconds since the
Unix epoch (UTC), the frame's ``Face`` records (with ``track_id``) and, when the tracker says so, the
track ids that ended. Without an ``ended`` list a track ends when unseen for longer than
``retire_after_s``, so the counter works with any tracker. Events are plain dicts handed to ``emit``:

- ``{"type": "visit", ...}`` when a track ends and lasted at least ``min_dwell_s`` (shorter tracks are
  counted as ``short_tracks`` in the aggregate, never reported);
- ``{"type": "aggregate", ...}`` at every interval boundary (``interval_s``, aligned on the epoch, so
  60 s intervals start on the minute) and once more, marked ``"final": true``, by ``close()``.

Nothing here sees an image: a visit holds times, counts, the robust (median) age and the bracket most of
its frames fall in, a gender decided on the whole track's evidence, an attention time estimated from
keypoints, and the median face size.

Attention: a face counts as looking at the camera while its estimated yaw is within ``attention_yaw_deg``
(default 30 degrees). Yaw comes from BlazeFace's keypoints (eyes, nose tip, ear tragions), on a rigid head
with typical adult proportions (from the vertical axis between the tragions: tragions 7 cm to the sides,
eyes 3.2 cm to the sides and 8 cm forward, nose tip 10.5 cm forward). After levelling the eyes,
``tan(yaw) = (2 r - 1) / 1.5`` where ``r`` is the nose's position between the two ears (0.5 when
frontal); without ears, ``tan(yaw) = 2.56 * offset / d`` from the nose's offset from the eyes' midpoint
and the eye distance ``d``. A frame's attention state holds until the track's next frame.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from edgeag.edge.face import Face

DEFAULT_BRACKET_EDGES = (13, 18, 25, 35, 45, 55, 65)  # 0-12, 13-17, 18-24, ..., 55-64, 65+
GENDERS = ("female", "male", "unknown")
# Head geometry behind ``estimate_yaw`` (see the module docstring): nose depth over the tragions' half
# distance (10.5 / 7), and eye distance over the nose's depth in front of the eyes (6.4 / 2.5).
_NOSE_OVER_EAR = 1.5
_EYE_GAIN = 2.56


@dataclass
class AudienceOptions:
    """What the counter reports and how."""

    device: str = "edge"
    interval_s: float = 60.0  # aggregate period, aligned on the epoch
    min_dwell_s: float = 1.0  # shorter tracks are counted, not reported as visits
    retire_after_s: float = 2.0  # unseen this long -> the track ended (when no ``ended`` list is given)
    bracket_edges: Sequence[int] = DEFAULT_BRACKET_EDGES
    min_gender_confidence: float = 0.0  # gender null below this confidence of the whole track's evidence
    ethnicity: bool = False  # add the track's majority ethnicity to visits
    attention_yaw_deg: float = 30.0


def iso_utc(t: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-01-01T10:00:00.000Z."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> float:
    """Seconds since the epoch from ISO 8601 (a time without a zone is UTC). Raises ValueError."""
    d = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def bracket_labels(edges: Sequence[int]) -> list[str]:
    """Edges (13, 18, ..., 65) -> ['0-12', '13-17', ..., '65+']."""
    lows = [0, *edges]
    return [f"{lo}-{hi - 1}" for lo, hi in zip(lows, edges)] + [f"{lows[-1]}+"]


def parse_bracket_edges(text: str) -> tuple[int, ...]:
    """'13,18,25,35,45,55,65' -> edges; raises ValueError unless strictly increasing positive integers."""
    edges = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    if not edges or edges[0] <= 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"age brackets must be increasing ages above 0, e.g. 13,18,25; got {text!r}")
    return edges


def bracket_of(age: float, edges: Sequence[int], labels: Sequence[str]) -> str:
    i = 0
    while i < len(edges) and age >= edges[i]:
        i += 1
    return labels[i]


def estimate_yaw(keypoints: Sequence[tuple[float, float]] | None) -> float | None:
    """Yaw in degrees (0 frontal, sign: towards the image's right is positive) from BlazeFace keypoints.

    ``keypoints`` in MediaPipe's order: right eye, left eye, nose tip, mouth, right ear, left ear
    (pixels). None when fewer than three keypoints are known.
    """
    if not keypoints or len(keypoints) < 3:
        return None
    (ax, ay), (bx, by) = sorted(keypoints[:2])  # eyes by image x: a mirrored frame gives the same answer
    roll = math.atan2(by - ay, bx - ax)
    c, s = math.cos(-roll), math.sin(-roll)
    rx = [p[0] * c - p[1] * s for p in keypoints]  # x after levelling the eyes
    eye_l, eye_r = sorted(rx[:2])
    nose = rx[2]
    if len(keypoints) >= 6:
        ear_l, ear_r = sorted(rx[4:6])
        if ear_r - ear_l > 1e-6:
            r = (nose - ear_l) / (ear_r - ear_l)
            return math.degrees(math.atan((2.0 * r - 1.0) / _NOSE_OVER_EAR))
    d = eye_r - eye_l
    if d <= 1e-6:
        return None
    return math.degrees(math.atan(_EYE_GAIN * (nose - (eye_l + eye_r) / 2) / d))


@dataclass
class _Track:
    """What is kept of one open track (numbers only)."""

    track_id: int
    first: float
    last: float
    frames: int = 0
    ages: list = field(default_factory=list)
    sizes: list = field(default_factory=list)
    logit_sum: float = 0.0
    logit_n: int = 0
    ethnicities: Counter = field(default_factory=Counter)
    attention_s: float = 0.0
    attentive: bool | None = None  # the last frame's state (None: no keypoints)
    yaw_known: bool = False


@dataclass
class _Interval:
    start: float
    end: float
    visits: list = field(default_factory=list)  # visit records closed in this interval
    started: int = 0
    short: int = 0
    peak: int = 0
    in_view: int = 0
    frames: int = 0
    frames_dropped: int = 0


class AudienceCounter:
    """Turns per-frame tracked faces into visit and aggregate events (see the module docstring).

    Args:
        emit: receives each event dict, in order.
        dropped_messages: returns (and resets) how many messages the outputs had to drop since the last
            call; reported in the next aggregate.
        clock: monotonic clock for the FPS figure (tests may pass a fake).
    """

    def __init__(self, options: AudienceOptions, emit: Callable[[dict], None],
                 dropped_messages: Callable[[], int] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.o = options
        self.emit = emit
        self._dropped = dropped_messages or (lambda: 0)
        self._clock = clock or time.monotonic
        self._labels = bracket_labels(options.bracket_edges)
        self._tan = math.tan(math.radians(options.attention_yaw_deg))
        self.tracks: dict[int, _Track] = {}
        self._iv: _Interval | None = None
        self._mono_start = 0.0
        self._last_t: float | None = None
        self.visits = self.short_tracks = self.aggregates = 0

    def update(self, t: float, faces: Iterable[Face], ended: Iterable[int] | None = None,
               frames_dropped: int = 0) -> None:
        """One processed frame at ``t`` (epoch seconds): its faces, and the tracks that ended (if known)."""
        faces = [f for f in faces if f.track_id is not None]
        if ended is not None:
            for tid in ended:
                self._close_track(tid)
        else:
            for tid in [k for k, tr in self.tracks.items() if t - tr.last > self.o.retire_after_s]:
                self._close_track(tid)
        self._roll(t)
        iv = self._iv
        iv.frames += 1
        iv.frames_dropped += frames_dropped
        iv.in_view = len(faces)
        iv.peak = max(iv.peak, len(faces))
        for f in faces:
            self._observe(t, f)
        self._last_t = t

    def close(self) -> None:
        """End of the run: every open track becomes a visit, and the last aggregate is emitted (final)."""
        for tid in list(self.tracks):
            self._close_track(tid)
        if self._iv is not None:
            self._iv.in_view = 0
            self._emit_aggregate(self._iv, final=True)
            self._iv = None

    def _observe(self, t: float, f: Face) -> None:
        tr = self.tracks.get(f.track_id)
        if tr is None:
            tr = self.tracks[f.track_id] = _Track(f.track_id, t, t)
            self._iv.started += 1
        elif tr.attentive:
            tr.attention_s += t - tr.last
        tr.last = t
        tr.frames += 1
        tr.ages.append(float(f.age if f.age_raw is None else f.age_raw))
        tr.sizes.append(math.sqrt(max(f.box[2], 0) * max(f.box[3], 0)))
        p = f.p_female if f.p_female_raw is None else f.p_female_raw
        if p is not None:
            p = min(max(float(p), 1e-4), 1 - 1e-4)
            tr.logit_sum += math.log(p / (1 - p))
            tr.logit_n += 1
        if self.o.ethnicity and f.ethnicity:
            tr.ethnicities[f.ethnicity] += 1
        yaw = estimate_yaw(f.keypoints)
        tr.attentive = None if yaw is None else abs(math.tan(math.radians(yaw))) <= self._tan
        tr.yaw_known |= yaw is not None

    def _close_track(self, tid: int) -> None:
        tr = self.tracks.pop(tid, None)
        if tr is None:
            return
        if self._iv is None:
            self._roll(tr.last)
        dwell = tr.last - tr.first
        if dwell < self.o.min_dwell_s:
            self._iv.short += 1
            self.short_tracks += 1
            return
        v = self._visit(tr, dwell)
        self._iv.visits.append(v)
        self.visits += 1
        self.emit(v)

    def _majority_bracket(self, ages: list, median_age: float) -> str:
        """The bracket most of the track's frames fall in; a tie goes to the median age's bracket.

        Near a bracket edge the median can sit on the other side of it from most frames (a track split 40/35/25
        over three brackets), so the bracket is voted, not read off the median.
        """
        votes = Counter(bracket_of(a, self.o.bracket_edges, self._labels) for a in ages)
        top = max(votes.values())
        median_bracket = bracket_of(median_age, self.o.bracket_edges, self._labels)
        return median_bracket if votes[median_bracket] == top else votes.most_common(1)[0][0]

    def _visit(self, tr: _Track, dwell: float) -> dict:
        age = statistics.median(tr.ages)
        bracket = self._majority_bracket(tr.ages, age)
        gender, conf = None, None
        if tr.logit_n:
            p = 1.0 / (1.0 + math.exp(-tr.logit_sum / tr.logit_n))
            conf = max(p, 1 - p)
            if conf >= self.o.min_gender_confidence:
                gender = "female" if p >= 0.5 else "male"
        v = {"type": "visit", "device": self.o.device, "track_id": tr.track_id, "start": iso_utc(tr.first),
             "end": iso_utc(tr.last), "dwell_s": round(dwell, 3), "frames": tr.frames, "age": round(age, 1),
             "age_bracket": bracket, "gender": gender,
             "gender_confidence": None if conf is None else round(conf, 3),
             "attention_s": round(tr.attention_s, 3) if tr.yaw_known else None,
             "face_px": int(round(statistics.median(tr.sizes)))}
        if self.o.ethnicity:
            name, n = tr.ethnicities.most_common(1)[0] if tr.ethnicities else (None, 0)
            v["ethnicity"] = name
            v["ethnicity_share"] = round(n / tr.frames, 3) if name else None
        return v

    def _roll(self, t: float) -> None:
        """Make the interval holding ``t`` current, emitting the aggregate of every interval that ended."""
        step = self.o.interval_s
        if self._iv is None:
            start = math.floor(t / step) * step
            self._iv = _Interval(start, start + step)
            self._mono_start = self._clock()
            return
        while t >= self._iv.end:
            old = self._iv
            self._emit_aggregate(old, final=False)
            self._iv = _Interval(old.end, old.end + step, in_view=old.in_view)

    def _emit_aggregate(self, iv: _Interval, final: bool) -> None:
        now = self._clock()
        elapsed = now - self._mono_start
        self._mono_start = now
        counts = {b: dict.fromkeys(GENDERS, 0) for b in self._labels}
        for v in iv.visits:
            counts[v["age_bracket"]][v["gender"] or "unknown"] += 1
        dwell = [v["dwell_s"] for v in iv.visits]
        attn = [v["attention_s"] for v in iv.visits if v["attention_s"] is not None]
        attn_dwell = sum(v["dwell_s"] for v in iv.visits if v["attention_s"] is not None)
        self.aggregates += 1
        self.emit({
            "type": "aggregate", "device": self.o.device, "start": iso_utc(iv.start), "end": iso_utc(iv.end),
            "interval_s": self.o.interval_s, "visits_started": iv.started, "visits_ended": len(iv.visits),
            "short_tracks": iv.short, "in_view": iv.in_view, "peak_in_view": iv.peak,
            "by_bracket_gender": counts,
            "dwell_mean_s": round(statistics.fmean(dwell), 3) if dwell else None,
            "dwell_median_s": round(statistics.median(dwell), 3) if dwell else None,
            "attention_share": round(sum(attn) / attn_dwell, 3) if attn_dwell > 0 else None,
            "frames_processed": iv.frames, "frames_dropped": iv.frames_dropped,
            "fps": round(iv.frames / elapsed, 2) if elapsed > 0 and iv.frames else None,
            "messages_dropped": int(self._dropped()), "final": final})
