"""Audience floors on generated clips (test-split faces entering, staying, leaving), and the fleet test:
three `edgeag run --mqtt` devices into one real Mosquitto, one `edgeag report --mqtt` collecting."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from audience_clip import make_clip
from broker import Mosquitto, needs_mosquitto
from conftest import needs_data
from edgeag.edge.audience import DEFAULT_BRACKET_EDGES, bracket_labels, bracket_of, parse_iso_utc

START = "2026-01-01T10:00:00Z"
LABELS = bracket_labels(DEFAULT_BRACKET_EDGES)
EDGEAG = [sys.executable, "-m", "edgeag.cli"]


def edgeag(*args: str) -> list[str]:
    return [*EDGEAG, *args]


def per_frame_majority(frames_jsonl: Path) -> dict[int, tuple[set, set]]:
    """track id -> (age brackets, genders) most of the per-frame (unsmoothed) predictions fall in: a set, as
    two can tie (then either is the majority)."""
    brackets, genders = {}, {}
    for line in frames_jsonl.open():
        for f in json.loads(line)["faces"]:
            tid = f["track_id"]
            brackets.setdefault(tid, Counter())[bracket_of(f["age_raw"], DEFAULT_BRACKET_EDGES, LABELS)] += 1
            genders.setdefault(tid, Counter())["female" if f["p_female_raw"] >= 0.5 else "male"] += 1
    return {t: (_top(brackets[t]), _top(genders[t])) for t in brackets}


def is_majority(visit: dict, majority: tuple[set, set]) -> bool:
    return visit["age_bracket"] in majority[0] and visit["gender"] in majority[1]


def _top(votes: Counter) -> set:
    most = max(votes.values())
    return {k for k, n in votes.items() if n == most}


def match(truth, visits, fps: float) -> list[tuple]:
    """Pairs (truth visit, visit) by the largest time overlap, one to one."""
    t0 = parse_iso_utc(START)
    pairs, used = [], set()
    for tv in truth:
        a, b = t0 + tv.first / fps, t0 + tv.last / fps
        best, best_overlap = None, 0.0
        for i, v in enumerate(visits):
            overlap = min(b, parse_iso_utc(v["end"])) - max(a, parse_iso_utc(v["start"]))
            if i not in used and overlap > best_overlap:
                best, best_overlap = i, overlap
        if best is not None:
            used.add(best)
            pairs.append((tv, visits[best]))
    return pairs


@needs_data
@pytest.mark.slow
def test_visits_on_a_generated_clip(tmp_path):
    clip = tmp_path / "clip.mp4"
    truth, fps, _ = make_clip(clip, seed=0)
    frames, events = tmp_path / "frames.jsonl", tmp_path / "events.jsonl"
    r = subprocess.run(edgeag("run", "--video", str(clip), "--headless", "-q", "--json", str(frames), "--events",
                              str(events), "--start-time", START, "--device", "cam", "--interval", "10"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    evs = [json.loads(line) for line in events.open()]
    visits = [e for e in evs if e["type"] == "visit"]
    aggs = [e for e in evs if e["type"] == "aggregate"]
    assert len(visits) == len(truth)  # floor: visit count exact
    assert sum(a["visits_ended"] for a in aggs) == len(truth) and aggs[-1]["final"]
    assert [a["start"][11:19] for a in aggs] == ["10:00:00", "10:00:10"]
    majority = per_frame_majority(frames)
    pairs = match(truth, visits, fps)
    assert len(pairs) == len(truth)
    for tv, v in pairs:
        assert abs(v["dwell_s"] - tv.dwell_s(fps)) <= 0.5, (tv, v)  # floor: dwell within 0.5 s
        assert is_majority(v, majority[v["track_id"]]), (tv, v)  # floor: the per-frame majority
        assert v["attention_s"] >= 0.9 * v["dwell_s"]  # pasted UTKFace faces look at the camera


@needs_data
@needs_mosquitto
@pytest.mark.slow
def test_fleet_of_three_devices_into_one_broker(tmp_path):
    pytest.importorskip("paho.mqtt.client")
    broker = Mosquitto(tmp_path).start()
    procs = []
    try:
        clips = []
        for seed in (1, 2, 3):
            clip = tmp_path / f"clip{seed}.mp4"
            truth, fps, _ = make_clip(clip, seed=seed, seconds=12)
            clips.append((clip, truth))
        out = tmp_path / "report"
        report = subprocess.Popen(edgeag("report", "--mqtt", broker.url("fleet"), "--for", "600s", "--out",
                                         str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(report)
        assert "listening" in report.stderr.readline()
        runs = [subprocess.Popen(edgeag("run", "--video", str(clip), "--headless", "-q", "--mqtt",
                                        broker.url("fleet"), "--device", f"dev{i}", "--start-time", START),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for i, (clip, _) in enumerate(clips)]
        procs += runs
        for p in runs:
            assert p.wait(600) == 0, p.stderr.read()[-2000:]
        time.sleep(1.0)
        report.send_signal(2)  # Ctrl-C: stop listening, report what came
        stdout, stderr = report.communicate(timeout=120)
        assert report.returncode == 0, stderr[-2000:]
        summary = {r["device"]: r for r in csv.DictReader((out / "summary.csv").open())}
        assert {d: int(r["visits"]) for d, r in summary.items()} == {f"dev{i}": len(t)
                                                                    for i, (_, t) in enumerate(clips)}
        assert sum(int(r["visits"]) for r in summary.values()) == sum(len(t) for _, t in clips)
        assert all(r["messages_dropped"] == "0" for r in summary.values())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        broker.stop()



@needs_data
@pytest.mark.slow
def test_ctrl_c_flushes_open_visits_and_the_last_aggregate(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seed=0, seconds=60)
    events = tmp_path / "events.jsonl"
    p = subprocess.Popen(edgeag("run", "--video", str(clip), "--headless", "--events", str(events), "--start-time",
                                START, "--interval", "600"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 300
    while "frame " not in p.stderr.readline() and time.monotonic() < deadline:  # frames are flowing
        pass
    p.send_signal(2)
    assert p.wait(120) == 130
    evs = [json.loads(line) for line in events.open()]
    visits = [e for e in evs if e["type"] == "visit"]
    (agg,) = [e for e in evs if e["type"] == "aggregate"]
    assert evs[-1] is agg and agg["final"] and agg["visits_ended"] == len(visits) > 0
    assert agg["visits_started"] == len(visits) + agg["short_tracks"]  # every track open at Ctrl-C was closed
