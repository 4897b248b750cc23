"""Face tracks across video frames: IDs by box overlap, and per-track smoothing of the predictions.

Matching is greedy on IoU (with a centroid-distance fallback for small fast-moving faces): at a few
faces per frame it is exact enough and costs microseconds. A track that goes unmatched for
``max_missed`` frames is retired; its ID is never reused.

Smoothing, per track:
- age: exponential moving average (``age_alpha`` = weight of the newest frame);
- gender: mean log-odds of p(female) over the last ``window`` frames, i.e. the evidence of recent
  frames accumulated, turned back into a probability and a confidence;
- ethnicity: mean log-probability per class over the same window, renormalised (softmax).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

Box = Sequence[float]  # x, y, w, h

_EPS = 1e-4


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


def _centroid_affinity(a: Box, b: Box) -> float:
    """1 at the same centre, 0 one mean box side apart (fallback when boxes do not overlap enough)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    d = math.hypot(ax + aw / 2 - bx - bw / 2, ay + ah / 2 - by - bh / 2)
    scale = (aw + ah + bw + bh) / 4  # mean side
    size_ratio = min(aw * ah, bw * bh) / max(aw * ah, bw * bh, 1e-6)
    if size_ratio < 0.5:  # a face does not halve or double in size between frames
        return 0.0
    return max(0.0, 1.0 - d / max(scale, 1e-6))


@dataclass
class Smoothed:
    """A track's current estimate."""

    age: float
    p_female: float
    ethnicity: np.ndarray | None  # class probabilities, or None if never observed


@dataclass
class Track:
    """One face followed over frames."""

    id: int
    box: tuple[float, float, float, float]
    hits: int = 1  # frames in which it was matched
    missed: int = 0  # consecutive frames without a match
    age: float | None = None  # EMA state
    _logit: deque = field(default_factory=deque, repr=False)
    _eth_logp: deque = field(default_factory=deque, repr=False)
    _logit_sum: float = 0.0  # running sums over the window: O(1) per frame, not O(window)
    _eth_sum: np.ndarray | None = field(default=None, repr=False)

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
        return Smoothed(self.age, p_s, eth)


class Tracker:
    """Assigns stable IDs to face boxes frame after frame.

    Args:
        iou_threshold: minimum overlap to continue a track.
        max_missed: frames a track survives without a match (covers detector blinks) before it is retired.
        age_alpha: EMA weight of the newest age (1 = no smoothing).
        window: frames over which gender and ethnicity evidence is averaged.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10, age_alpha: float = 0.2,
                 window: int = 30) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.age_alpha = age_alpha
        self.window = window
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def reset(self) -> None:
        """Forget all tracks (IDs keep counting up, so old IDs are never reused)."""
        self.tracks.clear()

    def update(self, boxes: Sequence[Box]) -> list[Track]:
        """Match this frame's boxes to tracks; returns the track of each box, in the order of ``boxes``.

        Unmatched boxes start new tracks; unmatched tracks age and are retired after ``max_missed`` frames.
        """
        tracks = list(self.tracks.values())
        pairs = []
        for ti, t in enumerate(tracks):
            for bi, b in enumerate(boxes):
                o = iou(t.box, b)
                if o >= self.iou_threshold:
                    pairs.append((1, o, ti, bi))
                else:  # fallback for a fast or small face; ranks below every IoU match
                    a = _centroid_affinity(t.box, b)
                    if a >= 0.3:  # centres within 0.7 of a side: neighbouring faces are further apart
                        pairs.append((0, a, ti, bi))
        pairs.sort(reverse=True)
        out: list[Track | None] = [None] * len(boxes)
        used_t: set[int] = set()
        for _, _, ti, bi in pairs:
            if ti in used_t or out[bi] is not None:
                continue
            used_t.add(ti)
            t = tracks[ti]
            t.box = tuple(float(v) for v in boxes[bi])
            t.hits += 1
            t.missed = 0
            out[bi] = t
        for ti, t in enumerate(tracks):
            if ti not in used_t:
                t.missed += 1
                if t.missed > self.max_missed:
                    del self.tracks[t.id]
        for bi, b in enumerate(boxes):
            if out[bi] is None:
                t = Track(self._next_id, tuple(float(v) for v in b))
                self._next_id += 1
                self.tracks[t.id] = t
                out[bi] = t
        return out  # type: ignore[return-value]

    def smooth(self, track: Track, age: float, p_female: float, ethnicity: np.ndarray | None = None) -> Smoothed:
        """Feed one frame's predictions of ``track`` and return its smoothed estimate."""
        return track.observe(age, p_female, ethnicity, age_alpha=self.age_alpha, window=self.window)
