"""Visits and aggregates from synthetic track streams (no video, no model), and yaw from keypoints."""

from __future__ import annotations

import math

import pytest

from edgeag.edge.audience import (AudienceCounter, AudienceOptions, bracket_labels, estimate_yaw, iso_utc,
                                  parse_bracket_edges, parse_iso_utc)
from edgeag.edge.face import Face

T0 = parse_iso_utc("2026-01-01T10:00:00Z")
FPS = 10.0


def head_keypoints(yaw_deg: float, cx: float = 320, cy: float = 240, px_per_cm: float = 6.0,
                   roll_deg: float = 0.0):
    """BlazeFace-order keypoints of an adult head turned by ``yaw_deg``, projected orthographically."""
    points = ((-3.2, -2, 8), (3.2, -2, 8), (0, 1, 10.5), (0, 4, 9), (-7, 0, 0), (7, 0, 0))  # x, y, z (cm)
    yaw, ro = math.radians(yaw_deg), math.radians(roll_deg)
    out = []
    for x, y, z in points:
        x = (x * math.cos(yaw) + z * math.sin(yaw)) * px_per_cm
        y *= px_per_cm
        out.append((cx + x * math.cos(ro) - y * math.sin(ro), cy + x * math.sin(ro) + y * math.cos(ro)))
    return tuple(out)


def face(tid: int, age: float = 30.0, p_female: float = 0.9, yaw: float = 0.0, size: int = 100) -> Face:
    return Face(box=(10, 10, size, size), score=0.9, age=age, gender=None, gender_confidence=0.5,
                ethnicity="White", ethnicity_confidence=0.8, track_id=tid,
                p_female=p_female, age_raw=age, p_female_raw=p_female,
                keypoints=head_keypoints(yaw))


def run_stream(frames, **opts):
    """frames: list of lists of Face, one per 1/FPS s from T0. Returns the events."""
    events = []
    counter = AudienceCounter(AudienceOptions(device="cam", **opts), events.append, clock=iter(range(10**6)).__next__)
    for i, faces in enumerate(frames):
        counter.update(T0 + i / FPS, faces)
    counter.close()
    return events


def visits(events):
    return [e for e in events if e["type"] == "visit"]


def aggregates(events):
    return [e for e in events if e["type"] == "aggregate"]


def test_yaw_frontal_and_turned():
    assert abs(estimate_yaw(head_keypoints(0))) < 1
    assert abs(estimate_yaw(head_keypoints(0, roll_deg=20))) < 1  # a tilted head is still frontal
    for yaw in (20, 45, -45, 70):
        assert estimate_yaw(head_keypoints(yaw)) == pytest.approx(yaw, abs=1)
    eyes_nose = head_keypoints(40)[:3]  # without ears: a rougher estimate, same side and clearly turned
    assert estimate_yaw(eyes_nose) == pytest.approx(40, abs=2)
    assert estimate_yaw(None) is None and estimate_yaw(head_keypoints(0)[:2]) is None


def test_brackets_and_iso():
    assert bracket_labels((13, 18, 25, 35, 45, 55, 65)) == ["0-12", "13-17", "18-24", "25-34", "35-44", "45-54",
                                                           "55-64", "65+"]
    assert parse_bracket_edges("18, 65") == (18, 65)
    for bad in ("", "18,18", "0,10", "a"):
        with pytest.raises(ValueError):
            parse_bracket_edges(bad)
    assert iso_utc(T0 + 1.2345) == "2026-01-01T10:00:01.234Z" or iso_utc(T0 + 1.2345) == "2026-01-01T10:00:01.235Z"


def test_visit_record_dwell_age_gender_attention():
    # One person 3 s in view: looking at the camera for the first 2 s, turned away after; ages noisy.
    frames = [[face(1, age=30 + (50 if i == 5 else (i % 3)), p_female=0.8, yaw=0 if i < 20 else 60)]
              for i in range(31)]
    (v,) = visits(run_stream(frames))
    assert v["device"] == "cam" and v["track_id"] == 1
    assert v["start"] == "2026-01-01T10:00:00.000Z" and v["end"] == "2026-01-01T10:00:03.000Z"
    assert v["dwell_s"] == pytest.approx(3.0) and v["frames"] == 31
    assert v["age"] == pytest.approx(31, abs=1) and v["age_bracket"] == "25-34"  # the outlier does not move it
    assert v["gender"] == "female" and v["gender_confidence"] == pytest.approx(0.8, abs=0.01)
    assert v["attention_s"] == pytest.approx(2.0, abs=0.11)
    assert v["face_px"] == 100 and "ethnicity" not in v


def test_age_bracket_is_the_frames_majority_even_when_the_median_is_across_an_edge():
    # 40% of frames at 26 (25-34), 35% at 23 and 25% at 15: the median (23) is in 18-24, most frames in 25-34.
    ages = [26] * 8 + [23] * 7 + [15] * 5
    (v,) = visits(run_stream([[face(1, age=a)] for a in ages]))
    assert v["age"] == pytest.approx(23) and v["age_bracket"] == "25-34"
    # A tie between brackets goes to the median's: 10 frames at 23, 10 at 26 -> median 24.5, 18-24.
    (v,) = visits(run_stream([[face(1, age=a)] for a in [26] * 10 + [23] * 10]))
    assert v["age_bracket"] == "18-24"


def test_unsure_gender_is_null_and_ethnicity_only_when_asked():
    frames = [[face(1, p_female=0.6)] for _ in range(20)]
    (v,) = visits(run_stream(frames, min_gender_confidence=0.7, ethnicity=True))
    assert v["gender"] is None and v["gender_confidence"] == pytest.approx(0.6, abs=0.01)
    assert v["ethnicity"] == "White" and v["ethnicity_share"] == 1.0


def test_short_tracks_counted_not_reported():
    frames = [[face(1), face(2)] if i < 3 else [face(1)] for i in range(30)]  # track 2: 0.2 s
    ev = run_stream(frames, min_dwell_s=1.0)
    assert [v["track_id"] for v in visits(ev)] == [1]
    (agg,) = aggregates(ev)
    assert agg["short_tracks"] == 1 and agg["visits_started"] == 2 and agg["visits_ended"] == 1


def test_gap_shorter_than_retirement_is_one_visit_longer_is_two():
    gap = [[face(1)] for _ in range(15)] + [[] for _ in range(10)] + [[face(1)] for _ in range(15)]
    assert len(visits(run_stream(gap, retire_after_s=2.0))) == 1
    vs = visits(run_stream(gap, retire_after_s=0.5))
    assert len(vs) == 2 and vs[0]["end"] == "2026-01-01T10:00:01.400Z"


def test_ended_list_from_the_tracker_closes_at_once():
    events = []
    c = AudienceCounter(AudienceOptions(device="cam", min_dwell_s=0.5), events.append)
    for i in range(10):
        c.update(T0 + i / FPS, [face(7)])
    c.update(T0 + 1.0, [], ended=[7])
    assert len(visits(events)) == 1 and visits(events)[0]["dwell_s"] == pytest.approx(0.9)
    c.close()
    assert aggregates(events)[-1]["final"] is True


def test_aggregates_on_aligned_boundaries():
    # 10:00:50 to 10:02:10, a person from 10:00:55 to 10:01:05, another 10:01:30-10:01:40; 60 s intervals.
    events = []
    c = AudienceCounter(AudienceOptions(device="cam", interval_s=60, min_dwell_s=1), events.append,
                        dropped_messages=iter([0, 3, 0, 0]).__next__)
    for i in range(800):
        t = T0 + 50 + i / FPS
        faces = [face(1, age=20, p_female=0.9)] if 55 <= t - T0 < 65 else []
        faces += [face(2, age=70, p_female=0.1, yaw=80)] if 90 <= t - T0 < 100 else []
        c.update(t, faces)
    c.close()
    aggs = aggregates(events)
    assert [a["start"][11:19] for a in aggs] == ["10:00:00", "10:01:00", "10:02:00"]
    assert [a["end"][11:19] for a in aggs] == ["10:01:00", "10:02:00", "10:03:00"]
    assert [a["final"] for a in aggs] == [False, False, True]
    assert [a["visits_started"] for a in aggs] == [1, 1, 0]
    assert [a["visits_ended"] for a in aggs] == [0, 2, 0]  # a visit counts in the interval it closes in
    assert aggs[0]["peak_in_view"] == 1 and aggs[0]["in_view"] == 1
    by = aggs[1]["by_bracket_gender"]
    assert by["18-24"]["female"] == 1 and by["65+"]["male"] == 1
    assert sum(sum(g.values()) for g in by.values()) == 2
    assert aggs[1]["dwell_mean_s"] == pytest.approx(9.9, abs=0.01)
    assert aggs[1]["attention_share"] == pytest.approx(0.5, abs=0.01)  # one looked all along, one never
    assert aggs[1]["messages_dropped"] == 3
    assert aggs[0]["frames_processed"] == 100 and sum(a["frames_processed"] for a in aggs) == 800
    # every event in time order: visits before the aggregate that counts them
    kinds = [e["type"] for e in events]
    assert kinds == ["aggregate", "visit", "visit", "aggregate", "aggregate"]
