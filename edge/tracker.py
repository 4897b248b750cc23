"""Face tracks across video frames: stable IDs through short gaps, and per-track smoothing of the predictions.

Time is in seconds from the source (video files: the frame's media time; cameras: time since start), so
the limits mean the same at 10 or 60 FPS.

Matching, per frame:
- every live track predicts where its face is now from a constant-velocity model of its box centre
  (``Track.predict``), also while it goes unmatched (a detector miss, a brief occlusion, a face that
  steps out of the frame and back); the extrapolation stops after ``max_predict_s`` and at the frame's
  edge (a face that left the picture comes back where it left);
- a track and a detection may be paired when their centres are close relative to the face size (the
  allowed distance grows with the time the track has been unseen) and their sizes agree; the cost
  (``cost_matrix``) adds centre distance, size change and a small penalty per second unseen, so the track
  seen a frame ago wins a tie against one hidden for a while (two faces crossing: the one in front is
  the one still seen);
- the pairs are chosen by minimum total cost (Hungarian assignment, ``assign``), not greedily, so one
  good pair never forces a wrong one;
- a track's velocity is updated from its matched boxes, except while its box touches another face's
  (``touching``): a face being covered, or merged with the one in front, has a box that shrinks or jumps,
  so the velocity from before the contact is kept; that is what carries a face hidden behind another
  through the crossing.
There are no appearance features or embeddings: nothing that could identify a person is computed or kept.
What a track does carry, its smoothed age and gender, gates re-acquisition: a track unseen for
``REACQUIRE_CHECK_S`` or longer may not be continued by a face whose own age and gender rule its person out
(``rules_out``), so someone stepping in where another face vanished a moment before starts a new track.

A track unseen for more than ``max_gap_s`` seconds is retired: it leaves ``Tracker.tracks``, appears once
in ``Tracker.retired`` (and is passed to ``on_retire``), and its ID is never reused.

Smoothing, per track (kept across gaps):
- age: exponential moving average (``age_alpha`` = weight of the newest frame);
- gender: mean log-odds of p(female) over the last ``window`` observations, i.e. the evidence of recent
  frames accumulated, turned back into a probability and a confidence;
- ethnicity: mean log-probability per class over the same window, renormalised (softmax).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edgeag.edge.face import MAX_GAP_S

Box = Sequence[float]  # x, y, w, h

_EPS = 1e-4
_INF = float("inf")
REACQUIRE_CHECK_S = 0.5  # a track unseen this long is re-acquired only by a face its attributes do not rule out
_SURE_LOGIT = math.log(4.0)  # p(female) >= 0.8 or <= 0.2


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


@dataclass
class Smoothed:
    """A track's current estimate."""

    age: float
    p_female: float
    ethnicity: np.ndarray | None  # class probabilities, or None if never observed


@dataclass
class Track:
    """One face followed over frames.

    ``id`` is stable for the track's life and never reused; ``first_seen_s`` / ``last_seen_s`` are the
    source times (seconds) of its first and latest matched detection; ``box`` is its latest detected
    box; ``hits`` counts matched frames; ``estimate`` is the latest smoothed attributes (None until
    a frame's predictions were fed with ``Tracker.smooth``).
    """

    id: int
    box: tuple[float, float, float, float]
    first_seen_s: float
    last_seen_s: float
    hits: int = 1
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, pixels per second (smoothed)
    estimate: Smoothed | None = None
    age: float | None = None  # EMA state
    _logit: deque = field(default_factory=deque, repr=False)
    _eth_logp: deque = field(default_factory=deque, repr=False)
    _logit_sum: float = 0.0  # running sums over the window: O(1) per frame, not O(window)
    _eth_sum: np.ndarray | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return self.last_seen_s - self.first_seen_s

    def predict(self, t_s: float, max_predict_s: float = 1.0,
                frame_size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
        """The box expected at time ``t_s``: the last box moved at constant velocity for at most
        ``max_predict_s`` seconds, same size, its centre kept inside ``frame_size`` (width, height)."""
        x, y, w, h = self.box
        dt = min(max(t_s - self.last_seen_s, 0.0), max_predict_s)
        x, y = x + self.velocity[0] * dt, y + self.velocity[1] * dt
        if frame_size is not None:
            x = min(max(x, -w / 2), frame_size[0] - w / 2)
            y = min(max(y, -h / 2), frame_size[1] - h / 2)
        return x, y, w, h

    def observe(self, age: float, p_female: float, ethnicity: np.ndarray | None, *, age_alpha: float,
                window: int) -> Smoothed:
        """Add one frame's predictions; return the smoothed estimate."""
        self.age = age if self.age is None else (1 - age_alpha) * self.age + age_alpha * age
        p = min(max(p_female, _EPS), 1 - _EPS)
        logit = math.log(p / (1 - p))
        self._logit.append(logit)
        self._logit_sum += logit
        if len(self._logit) > window:
            self._logit_sum -= self._logit.popleft()
        p_s = 1.0 / (1.0 + math.exp(-self._logit_sum / len(self._logit)))
        eth = None
        if ethnicity is not None:
            logp = np.log(np.clip(np.asarray(ethnicity, np.float64), _EPS, 1.0))
            self._eth_logp.append(logp)
            self._eth_sum = logp.copy() if self._eth_sum is None else self._eth_sum + logp
            if len(self._eth_logp) > window:
                self._eth_sum -= self._eth_logp.popleft()
            m = self._eth_sum / len(self._eth_logp)
            e = np.exp(m - m.max())
            eth = e / e.sum()
        self.estimate = Smoothed(self.age, p_s, eth)
        return self.estimate

    def _move_to(self, box: Box, t_s: float, velocity_alpha: float) -> None:
        """A matched detection: update the velocity from the centre's displacement (``velocity_alpha`` 0:
        keep it), then the box."""
        dt = t_s - self.last_seen_s
        if dt > 0 and velocity_alpha > 0:
            (x0, y0, w0, h0), (x, y, w, h) = self.box, box
            vx = ((x + w / 2) - (x0 + w0 / 2)) / dt
            vy = ((y + h / 2) - (y0 + h0 / 2)) / dt
            a = velocity_alpha if self.hits > 1 else 1.0  # the first displacement is the only evidence
            self.velocity = (self.velocity[0] + a * (vx - self.velocity[0]),
                             self.velocity[1] + a * (vy - self.velocity[1]))
        self.box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        self.last_seen_s = t_s
        self.hits += 1


def touching(a: Box, b: Box, margin: float = 0.15) -> bool:
    """Whether two boxes, each grown by ``margin`` of its size on every side, overlap."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ma, mb = margin * max(aw, ah), margin * max(bw, bh)
    return ax - ma < bx + bw + mb and bx - mb < ax + aw + ma and ay - ma < by + bh + mb and by - mb < ay + ah + ma


def cost_matrix(predicted: Sequence[Box], unseen_s: Sequence[float], boxes: Sequence[Box], *, gate: float,
                gate_per_s: float) -> list[list[float]]:
    """Cost of continuing each track (its predicted box, seconds unseen) with each box; inf when implausible.

    Centre distance to the predicted box in units of the face size, plus the size change (|log| of the side
    ratio), plus 0.2 per second unseen. Allowed: distance < ``gate + gate_per_s * unseen seconds`` face
    sizes and sides within 1.5x (2x after a gap of a second or more).
    """
    cols = [(x + w / 2, y + h / 2, math.log(max(w * h, 1e-6)) / 2) for x, y, w, h in boxes]
    rows = []
    for (px, py, pw, ph), unseen in zip(predicted, unseen_s):
        cx, cy, side = px + pw / 2, py + ph / 2, math.sqrt(max(pw * ph, 1e-6))
        log_side, reach = math.log(side), (gate + gate_per_s * unseen) * side
        max_change, penalty = math.log(1.5 + 0.5 * min(unseen, 1.0)), 0.2 * unseen
        row = []
        for bx, by, b_log_side in cols:
            d = math.hypot(bx - cx, by - cy)
            change = abs(b_log_side - log_side)
            row.append(d / side + change + penalty if d < reach and change <= max_change else _INF)
        rows.append(row)
    return rows


def rules_out(estimate: Smoothed, age: float, p_female: float) -> bool:
    """Whether one frame's age and p(female) rule out the person a track's smoothed ``estimate`` describes:
    the genders confidently opposite (each at p >= 0.8 of its side), or the ages further apart than 12 years
    plus half the younger one (8 vs 35: yes; 25 vs 45: no). Loose on purpose: a wrong refusal splits a track."""
    p = min(max(p_female, _EPS), 1 - _EPS)
    new, old = math.log(p / (1 - p)), math.log(max(estimate.p_female, _EPS) / max(1 - estimate.p_female, _EPS))
    if min(abs(new), abs(old)) >= _SURE_LOGIT and new * old < 0:
        return True
    return abs(age - estimate.age) > 12.0 + 0.5 * min(age, estimate.age)


def assign(cost: list[list[float]]) -> list[tuple[int, int]]:
    """Minimum-cost pairs (row, column) of a rows x columns cost matrix; inf = not allowed.

    Hungarian method (shortest augmenting paths, O(n^2 m)): at a handful of faces per frame it costs
    microseconds, and unlike a greedy choice it never takes one cheap pair that forces a wrong other one.
    """
    n = len(cost)
    m = len(cost[0]) if n else 0
    if n == 0 or m == 0:
        return []
    big = 1e6  # stands for "not allowed" inside the algorithm; such pairs are dropped at the end
    transpose = n > m  # the algorithm wants rows <= columns
    c = [list(col) for col in zip(*cost)] if transpose else cost
    n, m = len(c), len(c[0])
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match = [0] * (m + 1)  # column j (1-based) -> row (1-based), 0 = free
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv, used, way = [_INF] * (m + 1), [False] * (m + 1), [0] * (m + 1)
        while match[j0]:
            used[j0] = True
            i0, delta, j1 = match[j0], _INF, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = min(c[i0 - 1][j - 1], big) - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = [(match[j] - 1, j - 1) for j in range(1, m + 1) if match[j] and c[match[j] - 1][j - 1] < big]
    return [(b, a) for a, b in pairs] if transpose else pairs


class Tracker:
    """Assigns stable IDs to face boxes frame after frame.

        tracker = Tracker(max_gap_s=2.0, on_retire=print)
        for t_s, boxes in frames:                       # t_s: source time in seconds
            tracks = tracker.update(boxes, t_s)         # the track of each box, in order
            done = tracker.retired                      # tracks retired by this update (unseen > max_gap_s)
        tracker.retire_all()                            # end of stream: the remaining tracks, retired

    Args:
        max_gap_s: seconds a track survives unseen (detector misses, occlusions, a step out of the frame)
            before it is retired; its ID is never reused.
        age_alpha: EMA weight of the newest age (1 = no smoothing).
        window: observations over which gender and ethnicity evidence is averaged.
        gate, gate_per_s: a detection may continue a track if its centre is within ``gate`` face sizes of
            the track's predicted centre, plus ``gate_per_s`` face sizes per second the track went unseen.
        velocity_alpha: weight of the newest displacement in the smoothed velocity.
        max_predict_s: seconds for which an unseen track's box is extrapolated; then it waits there.
        reacquire_check_s: a track unseen this long is not continued by a face whose own age and gender rule
            its person out (``rules_out``; needs ``attributes`` in ``update``); inf = never checked.
        frame_interval_s: time step assumed when ``update`` gets no timestamp.
        on_retire: called with each retired track (also by ``retire_all``).
    """

    def __init__(self, max_gap_s: float = MAX_GAP_S, age_alpha: float = 0.2, window: int = 30, *, gate: float = 0.8,
                 gate_per_s: float = 0.5, velocity_alpha: float = 0.5, max_predict_s: float = 1.0,
                 reacquire_check_s: float = REACQUIRE_CHECK_S, frame_interval_s: float = 1 / 30,
                 on_retire: Callable[[Track], None] | None = None) -> None:
        self.max_gap_s = max_gap_s
        self.age_alpha = age_alpha
        self.window = window
        self.gate, self.gate_per_s = gate, gate_per_s
        self.velocity_alpha = velocity_alpha
        self.max_predict_s = max_predict_s
        self.reacquire_check_s = reacquire_check_s
        self.frame_interval_s = frame_interval_s
        self.on_retire = on_retire
        self.tracks: dict[int, Track] = {}  # live tracks by ID
        self.retired: list[Track] = []  # tracks retired by the latest update() / retire_all()
        self._next_id = 1
        self._now: float | None = None

    def update(self, boxes: Sequence[Box], t_s: float | None = None, frame_size: tuple[int, int] | None = None,
               attributes: Sequence[tuple[float, float] | None] | None = None) -> list[Track]:
        """Match this frame's boxes to tracks; returns the track of each box, in the order of ``boxes``.

        ``t_s``: the frame's time in seconds (None: the previous frame's + ``frame_interval_s``);
        ``frame_size``: (width, height), so that predictions of faces that left the frame stay at its edge;
        ``attributes``: each box's own (age, p_female), or None where unknown: a track unseen for
        ``reacquire_check_s`` or longer is not continued by a face they rule out (``rules_out``).
        Unmatched boxes start new tracks; tracks unseen for more than ``max_gap_s`` are retired
        (listed in ``retired`` until the next update).
        """
        now = float(t_s) if t_s is not None else (
            0.0 if self._now is None else self._now + self.frame_interval_s)
        self._now = now
        # Retire first: a track unseen for longer than max_gap_s may not take this frame's faces.
        self.retired = [t for t in self.tracks.values() if now - t.last_seen_s > self.max_gap_s]
        for t in self.retired:
            self._retire(t)
        tracks = list(self.tracks.values())
        predicted = [t.predict(now, self.max_predict_s, frame_size) for t in tracks]
        unseen = [max(now - t.last_seen_s, 0.0) for t in tracks]
        cost = cost_matrix(predicted, unseen, boxes, gate=self.gate, gate_per_s=self.gate_per_s)
        for ti, t in enumerate(tracks):
            if unseen[ti] >= self.reacquire_check_s and t.estimate is not None and attributes is not None:
                for bi, a in enumerate(attributes):
                    if a is not None and rules_out(t.estimate, *a):
                        cost[ti][bi] = _INF
        pairs = assign(cost) if tracks and boxes else []
        out: list[Track | None] = [None] * len(boxes)
        # A face whose box touches another face's (detected, or predicted while hidden) is partly covered or
        # merged with it: its box moves oddly, so its velocity keeps its value from before the contact.
        matched = {ti for ti, _ in pairs}
        hidden = [p for ti, p in enumerate(predicted) if ti not in matched]
        for ti, bi in pairs:
            contact = (any(touching(boxes[bi], p) for p in hidden)
                       or any(touching(boxes[bi], b) for bj, b in enumerate(boxes) if bj != bi))
            tracks[ti]._move_to(boxes[bi], now, 0.0 if contact else self.velocity_alpha)
            out[bi] = tracks[ti]
        for bi, b in enumerate(boxes):
            if out[bi] is None:
                t = Track(self._next_id, (float(b[0]), float(b[1]), float(b[2]), float(b[3])), now, now)
                self._next_id += 1
                self.tracks[t.id] = t
                out[bi] = t
        return out  # type: ignore[return-value]

    def expected_boxes(self, t_s: float | None = None, frame_size: tuple[int, int] | None = None,
                       within_s: float = 0.5) -> list[tuple[float, float, float, float]]:
        """Where the live tracks seen in the last ``within_s`` seconds are expected at time ``t_s`` (None: the
        next frame's time, as ``update`` counts it): the detector looks there again (``FaceDetector.detect``)."""
        now = float(t_s) if t_s is not None else (0.0 if self._now is None else self._now + self.frame_interval_s)
        return [t.predict(now, self.max_predict_s, frame_size) for t in self.tracks.values()
                if now - t.last_seen_s <= within_s]

    def retire_all(self) -> list[Track]:
        """Retire every live track (end of a stream); returns them, also as ``retired``."""
        self.retired = list(self.tracks.values())
        for t in self.retired:
            self._retire(t)
        return self.retired

    def reset(self) -> None:
        """Forget all tracks, retiring them (IDs keep counting up, so old IDs are never reused)."""
        self.retire_all()
        self._now = None

    def _retire(self, track: Track) -> None:
        del self.tracks[track.id]
        if self.on_retire is not None:
            self.on_retire(track)

    def smooth(self, track: Track, age: float, p_female: float, ethnicity: np.ndarray | None = None) -> Smoothed:
        """Feed one frame's predictions of ``track`` and return its smoothed estimate."""
        return track.observe(age, p_female, ethnicity, age_alpha=self.age_alpha, window=self.window)
