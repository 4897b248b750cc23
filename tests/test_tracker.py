"""The tracker: stable IDs, gaps measured in seconds, velocity prediction, crossing faces, retirement,
smoothing (no models), and the 3-face test video with detector misses (bundled detector). The measured
figures are in benchmarks/tracking.py."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_data

from edgeag.edge.tracker import Smoothed, Tracker, assign, rules_out

FPS = 30.0


def _moving_boxes(t: int) -> list[tuple[float, float, float, float]]:
    return [(50 + 3 * t, 40, 120, 120), (400 - 2 * t, 60, 100, 100), (230, 280 + t, 140, 140)]


def test_ids_stable_under_small_motion_and_order_changes():
    tr = Tracker()
    first = [t.id for t in tr.update(_moving_boxes(0), 0.0)]
    assert first == [1, 2, 3]
    rng = np.random.default_rng(0)
    for t in range(1, 30):
        boxes = _moving_boxes(t)
        order = rng.permutation(3)
        ids = [tr.update([boxes[i] for i in order], t / FPS)[j].id for j in range(3)]
        assert [ids[list(order).index(k)] for k in range(3)] == first


def test_id_kept_across_a_gap_shorter_than_the_limit_and_retired_after_it():
    retired = []
    tr = Tracker(max_gap_s=1.0, on_retire=retired.append)
    boxes = _moving_boxes(0)
    tr.update(boxes, 0.0)
    first_seen = tr.tracks[3].first_seen_s
    t = 0.0
    for _ in range(29):  # face 3 unseen for 29 frames = 0.97 s at 30 FPS: kept
        t += 1 / FPS
        tr.update(boxes[:2], t)
        assert tr.retired == []
    t += 1 / FPS
    assert [x.id for x in tr.update(boxes, t)] == [1, 2, 3]
    assert tr.tracks[3].first_seen_s == first_seen and tr.tracks[3].last_seen_s == t
    last_seen = t
    while t - last_seen <= 1.0:  # now unseen a little over max_gap_s: retired once, reported once
        t += 1 / FPS
        tr.update(boxes[:2], t)
    assert [x.id for x in tr.retired] == [3] and [x.id for x in retired] == [3]
    assert 3 not in tr.tracks and retired[0].last_seen_s == last_seen
    t += 1 / FPS
    assert [x.id for x in tr.update(boxes, t)] == [1, 2, 4]  # back with a new ID; IDs never reused
    assert tr.retired == []


def test_limit_is_in_seconds_not_frames():
    """The same 0.8 s gap is survived at 10 and at 60 FPS, a 1.2 s gap at neither (max_gap_s = 1)."""
    for fps in (10, 60):
        for gap_s, kept in ((0.8, True), (1.2, False)):
            tr = Tracker(max_gap_s=1.0)
            tr.update([(100, 100, 80, 80)], 0.0)
            for i in range(1, int(round(gap_s * fps)) + 1):
                tr.update([], i / fps)
            got = tr.update([(100, 100, 80, 80)], gap_s + 1 / fps)[0].id
            assert (got == 1) == kept, (fps, gap_s)


def test_velocity_prediction_carries_a_moving_face_through_a_gap():
    """A face moving 300 px/s, hidden for 0.5 s, reappears 150 px further (about 2 face widths from
    where it was last seen): the constant-velocity prediction finds it, a still track would not."""
    tr = Tracker()
    for i in range(10):
        tr.update([(100 + 10 * i, 200, 70, 70)], i / FPS)
    track = tr.tracks[1]
    assert track.velocity[0] == pytest.approx(300, rel=0.01) and abs(track.velocity[1]) < 1e-6
    assert track.predict(track.last_seen_s + 0.5)[0] == pytest.approx(track.box[0] + 150, rel=0.01)
    for i in range(10, 25):
        tr.update([], i / FPS)
    assert tr.update([(100 + 10 * 25, 200, 70, 70)], 25 / FPS)[0].id == 1
    still = Tracker()
    still.update([(190, 200, 70, 70)], 0.0)
    for i in range(1, 15):
        still.update([], i / FPS)
    assert still.update([(350, 200, 70, 70)], 15 / FPS)[0].id == 2


def test_a_face_its_attributes_rule_out_does_not_take_over_a_track_after_a_gap():
    """A woman of about 45 leaves; 1 s later a face appears where she was. A confident man of 60 starts a new
    track; a woman of 48, or anyone at all after a gap shorter than REACQUIRE_CHECK_S, continues hers."""
    def after_gap(gap_s: float, age: float, p_female: float) -> int:
        tr = Tracker(max_gap_s=1.5)
        for i in range(10):
            tr.smooth(tr.update([(200, 200, 150, 150)], i / FPS, attributes=[(45.0, 0.95)])[0], 45.0, 0.95)
        t = 9 / FPS + gap_s
        return tr.update([(200, 200, 150, 150)], t, attributes=[(age, p_female)])[0].id

    assert after_gap(1.0, 60.0, 0.05) == 2
    assert after_gap(1.0, 48.0, 0.9) == 1
    assert after_gap(1.0, 60.0, 0.4) == 1  # gender unsure, ages close enough: may be her
    assert after_gap(0.2, 60.0, 0.05) == 1
    kid = Smoothed(age=8.0, p_female=0.5, ethnicity=None)
    assert rules_out(kid, 35.0, 0.5) and not rules_out(Smoothed(25.0, 0.5, None), 45.0, 0.5)


def _crossing(t: int, mode: str) -> tuple[list, list[str]]:
    """Two same-size faces on one line crossing at frame 20 (A left to right, B the other way).

    mode "both": both always detected; "hidden": B, behind A, not detected for frames 14-26; "covered": as a
    detector sees it, B's box is only its uncovered part (shrinking, its centre stalling) while at least half
    of it shows, then nothing."""
    a = (100 + 12 * t, 200, 90, 90)
    b = (580 - 12 * t, 205, 90, 90)
    if mode == "hidden" and 14 <= t <= 26:
        return [a], ["A"]
    if mode == "covered" and a[0] + a[2] > b[0] and b[0] + b[2] > a[0]:
        left, right = (max(b[0], a[0] + a[2]), b[0] + b[2]) if b[0] >= a[0] else (b[0], min(b[0] + b[2], a[0]))
        if right - left < b[2] / 2:
            return [a], ["A"]
        return [(left, b[1], right - left, b[3]), a], ["B", "A"]
    return [b, a], ["B", "A"]


@pytest.mark.parametrize("mode", ["both", "hidden", "covered"])
def test_crossing_faces_keep_their_ids(mode):
    tr = Tracker()
    ids: dict[str, set] = {"A": set(), "B": set()}
    for t in range(41):
        boxes, who = _crossing(t, mode)
        for w, track in zip(who, tr.update(boxes, t / FPS)):
            ids[w].add(track.id)
    assert ids == {"A": {2}, "B": {1}}


def test_fast_motion_continues_a_track_but_a_distant_face_is_new():
    tr = Tracker()
    tr.update([(100, 100, 100, 100)], 0.0)
    assert tr.update([(155, 100, 100, 100)], 1 / FPS)[0].id == 1  # moved half a face in one frame
    assert tr.update([(450, 100, 100, 100)], 2 / FPS)[0].id == 2  # three faces further: someone else


def test_size_must_agree():
    tr = Tracker()
    tr.update([(100, 100, 100, 100)], 0.0)
    assert tr.update([(110, 110, 40, 40)], 1 / FPS)[0].id == 2  # same place, a much smaller face


def test_no_timestamps_counts_frames():
    tr = Tracker(max_gap_s=0.5, frame_interval_s=0.1)
    tr.update([(100, 100, 80, 80)])
    for _ in range(5):
        tr.update([])
    assert 1 in tr.tracks
    tr.update([])
    assert 1 not in tr.tracks and [t.id for t in tr.retired] == [1]


def test_retire_all_and_reset():
    retired = []
    tr = Tracker(on_retire=retired.append)
    tr.update(_moving_boxes(0), 0.0)
    assert [t.id for t in tr.retire_all()] == [1, 2, 3] and not tr.tracks and len(retired) == 3
    tr.update(_moving_boxes(0), 0.0)
    tr.reset()
    assert [t.id for t in retired] == [1, 2, 3, 4, 5, 6]
    assert [t.id for t in tr.update(_moving_boxes(0), 0.0)] == [7, 8, 9]


def test_assign_is_minimum_cost_and_respects_forbidden_pairs():
    inf = float("inf")
    # Greedy would take the 1.0 pair and leave row 1 with 5.0 (total 6); the optimum is 2 + 2 = 4.
    assert sorted(assign([[1.0, 2.0], [2.0, 5.0]])) == [(0, 1), (1, 0)]
    assert assign([[inf, inf], [inf, 0.5]]) == [(1, 1)]
    assert sorted(assign([[0.1], [0.2], [inf]])) == [(0, 0)]
    assert sorted(assign([[0.3, 0.1, inf]])) == [(0, 1)]
    assert assign([]) == [] and assign([[]]) == []


def test_smoothing_accumulates_evidence_and_survives_a_gap():
    tr = Tracker(age_alpha=0.2, window=30)
    track = tr.update([(0, 0, 100, 100)], 0.0)[0]
    ages = [30, 50, 30, 50, 30, 50, 30, 50]
    out = [tr.smooth(track, a, 0.8, np.array([0.7, 0.1, 0.1, 0.05, 0.05])) for a in ages]
    assert np.ptp([o.age for o in out[2:]]) < 0.5 * np.ptp(ages)
    s = tr.smooth(track, 40, 0.3, np.array([0.1, 0.7, 0.1, 0.05, 0.05]))  # one contrary frame
    assert s.p_female > 0.5 and int(np.argmax(s.ethnicity)) == 0 and track.estimate is s
    assert abs(s.ethnicity.sum() - 1) < 1e-6
    for i in range(1, 20):  # unseen for 0.6 s, then back: same track, same evidence
        tr.update([], i / FPS)
    again = tr.update([(0, 0, 100, 100)], 20 / FPS)[0]
    assert again is track and tr.smooth(again, 40, 0.8).age == pytest.approx(0.8 * s.age + 0.2 * 40)
    fresh = tr.update([(0, 0, 100, 100), (500, 500, 80, 80)], 21 / FPS)[1]
    assert tr.smooth(fresh, 20, 0.3).p_female == pytest.approx(0.3, abs=1e-3)


def test_benchmark_scoring_counts_fragmentations_and_swaps():
    """benchmarks/tracking.py's scorer: a restarted track is a fragmentation, a taken-over ID a swap."""
    from edgeag.benchmarks.tracking import Clip, score

    class Scripted:  # hands out the given IDs frame by frame
        def __init__(self, ids):
            self.ids = iter(ids)

        def update(self, boxes, t_s=None, frame_size=None, attributes=None):
            return [type("T", (), {"id": i})() for i in next(self.ids)]

    a, b = (100.0, 100.0, 80.0, 80.0), (400.0, 100.0, 80.0, 80.0)
    truth = [[(0, a), (1, b)]] * 4
    clip = Clip("t", 30.0, [None] * 4, truth)
    dets = [[(a, (30.0, 0.9)), (b, (50.0, 0.1))]] * 4
    s = score(clip, dets, Scripted([[1, 2], [1, 2], [3, 2], [3, 1]]))
    assert (s["face_frames"], s["id_switches"], s["fragmentations"], s["swaps"]) == (8, 2, 1, 1)


@needs_data
def test_no_id_switch_on_the_3_face_video_with_detector_misses():
    """The bundled detector on the 3-face test video, each face's detection dropped for random stretches of
    up to 15 frames (5 seeds): every face keeps one track ID (the figures: benchmarks/tracking.py)."""
    from edgeag.benchmarks.tracking import detect_all, drop_stretches, dropout3_clip, score

    clip = dropout3_clip(n_frames=96)
    dets = detect_all(clip)
    for seed in range(5):
        dropped, n = drop_stretches(clip, dets, seed)
        s = score(clip, dropped, Tracker())
        assert n > 0 and s["paired"] > 0.6 * s["face_frames"]
        assert s["id_switches"] == 0 and all(len(v) == 1 for v in s["ids_per_person"].values()), (seed, s)


def test_expected_boxes_are_the_recent_tracks_predicted_to_the_next_frame():
    from edgeag.edge.tracker import Tracker

    tr = Tracker(frame_interval_s=0.1)
    assert tr.expected_boxes() == []
    tr.update([(100, 100, 40, 40), (300, 100, 40, 40)], 0.0)
    tr.update([(110, 100, 40, 40), (300, 100, 40, 40)], 0.1)  # the first face moves 100 px/s to the right
    tr.update([(120, 100, 40, 40)], 0.2)  # the second is missed from now on
    nxt = tr.expected_boxes()  # at 0.3 s, the next frame
    assert len(nxt) == 2 and abs(nxt[0][0] - 130) < 1e-6 and nxt[1][:2] == (300, 100)
    assert len(tr.expected_boxes(0.7)) == 1  # the second was last seen 0.6 s before: no longer looked for
