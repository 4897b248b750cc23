"""`edgeag report` on JSON Lines event files; bad --mqtt URLs of `run` and `report` exit 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeag.cli import app
from edgeag.edge.audience import AudienceCounter, AudienceOptions, parse_iso_utc
from edgeag.edge.face import Face

T0 = parse_iso_utc("2026-01-01T09:59:00Z")
KEYPOINTS = ((30, 30), (50, 30), (40, 42), (40, 55), (20, 35), (60, 35))  # a frontal face


def write_events(path, device, people, aggregate_only=False):
    """people: (track_id, enter_s, leave_s, age, p_female); 10 frames/s from T0. Returns the events."""
    events = []
    c = AudienceCounter(AudienceOptions(device=device), events.append)
    end = max(p[2] for p in people) + 5
    for i in range(int(end * 10)):
        t = i / 10
        c.update(T0 + t, [Face((0, 0, 80, 80), 0.9, age, None, 0.5, track_id=tid,
                               p_female=pf, keypoints=KEYPOINTS if int(t) % 3 else None)
                          for tid, a, b, age, pf in people if a <= t < b])
    c.close()
    kept = [e for e in events if not (aggregate_only and e["type"] == "visit")]
    path.write_text("".join(json.dumps(e) + "\n" for e in kept))
    return kept


@pytest.fixture
def event_files(tmp_path):
    a = tmp_path / "a.jsonl"
    write_events(a, "door", [(1, 0, 30, 30, 0.9), (2, 40, 100, 70, 0.1), (3, 50, 50.3, 20, 0.9)])
    # at-least-once delivery: the same visit twice must count once
    a.write_text(a.read_text() + a.read_text().splitlines(keepends=True)[1] + "not json\n")
    b = tmp_path / "b.jsonl"
    write_events(b, "window", [(1, 10, 20, 16, 0.8), (2, 3700, 3710, 40, 0.2)], aggregate_only=True)
    return a, b


def test_report_writes_csvs_pngs_and_html(event_files, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["report", *map(str, event_files), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("summary.csv", "visits.csv", "aggregates.csv", "visits_by_hour.csv", "visits_per_hour.png",
                 "dwell.png", "attention.png", "devices.png", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = {r["device"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert summary["door"]["visits"] == "2" and summary["door"]["female"] == "1"  # short track 3 not a visit
    assert summary["window"]["visits"] == "2"  # aggregate-only device: counted from its aggregates
    assert summary["door"]["short_tracks"] == "1"
    hourly = list(csv.DictReader((out / "visits_by_hour.csv").open()))
    assert {(r["device"], r["hour"], r["age_bracket"], r["gender"]) for r in hourly} == {
        ("door", "2026-01-01T09:00Z", "25-34", "female"), ("door", "2026-01-01T09:00Z", "65+", "male"),
        ("window", "2026-01-01T09:00Z", "13-17", "female"), ("window", "2026-01-01T11:00Z", "35-44", "male")}
    assert len(list(csv.DictReader((out / "visits.csv").open()))) == 2
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    assert "door" in r.output and "window" in r.output  # the terminal table


def test_report_usage_errors(tmp_path):
    run = CliRunner().invoke
    assert run(app, ["report"]).exit_code == 2
    assert run(app, ["report", str(tmp_path / "missing.jsonl")]).exit_code == 2
    assert run(app, ["report", "--mqtt", "mqtt://127.0.0.1/p"]).exit_code == 2  # no --for
    r = run(app, ["report", "--mqtt", "ftp://127.0.0.1/p", "--for", "1s"])
    assert r.exit_code == 2 and "expected mqtt://" in r.output


@pytest.mark.parametrize("url", ["http://127.0.0.1/p", "mqtt://127.0.0.1", "mqtt://127.0.0.1:70000/p",
                                 "mqtt://no-such-host.invalid/p"])
def test_run_bad_mqtt_urls_exit_2(tmp_path, url):
    pytest.importorskip("paho.mqtt.client")
    import cv2

    video = tmp_path / "blank.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for _ in range(3):
        w.write(np.zeros((64, 64, 3), np.uint8))
    w.release()
    events = tmp_path / "events.jsonl"
    events.write_text("kept\n")
    r = CliRunner().invoke(app, ["run", "--video", str(video), "--headless", "--mqtt", url, "--events", str(events)])
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and "Traceback" not in r.output
    assert events.read_text() == "kept\n"  # an earlier output is never destroyed by a bad option


def test_report_without_matplotlib_writes_csvs(event_files, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "edgeag.edge.report_plots", None)  # as if edgeag[report] were missing
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["report", *map(str, event_files), "--out", str(out)])
    assert r.exit_code == 0 and "edgeag[report]" in r.output
    assert (out / "summary.csv").is_file() and (out / "report.html").is_file() and not list(out.glob("*.png"))


def test_aggregate_only_writes_no_visits(tmp_path):
    from types import SimpleNamespace

    from edgeag.edge.audience_session import open_audience

    events = tmp_path / "events.jsonl"
    src = SimpleNamespace(stats=SimpleNamespace(skipped=0))
    session = open_audience(events=str(events), mqtt=None, mqtt_spool=None, device="d", aggregate_only=True,
                            interval=60, min_dwell=0.5, age_brackets="18,65", start_time="2026-01-01T10:00:00Z",
                            min_gender_confidence=0, ethnicity=False, source=src, live=False, warn=print)
    for i in range(30):
        session.on_frame(SimpleNamespace(timestamp_ms=i * 100),
                         [Face((0, 0, 50, 50), 0.9, 40, None, 0.5, track_id=1, p_female=0.2)])
    session.close()
    evs = [json.loads(line) for line in events.open()]
    assert [e["type"] for e in evs] == ["aggregate"]
    assert evs[0]["visits_ended"] == 1 and evs[0]["by_bracket_gender"]["18-64"]["male"] == 1
