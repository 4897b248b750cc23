"""`edgeag report`: audience events (JSON Lines files or an MQTT subscription) -> tables, CSVs, PNGs, HTML.

Events are de-duplicated (MQTT QoS 1 delivers at least once): a visit by (device, track_id, start), an
aggregate by (device, start, end, final). Counts come from visit records; a device that sent aggregates
only (``--aggregate-only``) is counted from its aggregates. Plots need matplotlib (``edgeag[report]``).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable

from edgeag.errors import BadInputError, EdgeagError

GENDERS = ("female", "male", "unknown")


def load_events(paths: Iterable[Path], warn: Callable[[str], None]) -> list[dict]:
    """Events from JSON Lines files; lines that are not events are skipped and counted."""
    events, bad = [], 0
    for p in paths:
        if not Path(p).is_file():
            raise BadInputError(f"events file not found: {p}")
        with open(p, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(e, dict) and e.get("type") in ("visit", "aggregate") and "device" in e:
                    events.append(e)
                elif line.strip():
                    bad += 1
    if bad:
        warn(f"skipped {bad} line(s) that are not visit or aggregate events")
    return events


def collect_mqtt(url: str, duration_s: float, note: Callable[[str], None],
                 stop: Callable[[], bool] = lambda: False) -> list[dict]:
    """Subscribe to PREFIX/+/visits and PREFIX/+/aggregates (QoS 1) for ``duration_s`` seconds."""
    from edgeag.edge.mqtt import connect_once, make_client, parse_mqtt_url

    target = parse_mqtt_url(url)
    client = make_client(target, f"edgeag-report-{int(time.time() * 1000) % 10**9}")
    why = connect_once(client, target)
    if why is not None:
        raise EdgeagError(f"--mqtt: cannot reach {target.host}:{target.port} ({why})")  # exit 1: try later
    events: list[dict] = []
    subscribed: list = []
    client.on_message = lambda c, u, m: _keep(m.payload, events)
    client.on_subscribe = lambda *a: subscribed.append(1)
    topics = [(f"{target.prefix}/+/visits", 1), (f"{target.prefix}/+/aggregates", 1)]
    client.subscribe(topics)
    end = time.monotonic() + duration_s
    announced = False
    while time.monotonic() < end and not stop():
        if client.loop(timeout=0.1) != 0:  # the broker went away: try again every second until the end
            try:
                client.reconnect()
                client.subscribe(topics)
            except OSError:
                time.sleep(1.0)
        if subscribed and not announced:
            note(f"listening on {target.host}:{target.port}/{target.prefix}/+/{{visits,aggregates}} "
                 f"for {duration_s:g} s")
            announced = True
    client.disconnect()
    return events


def _keep(payload: bytes, events: list) -> None:
    try:
        e = json.loads(payload)
    except ValueError:
        return
    if isinstance(e, dict) and e.get("type") in ("visit", "aggregate") and "device" in e:
        events.append(e)


def dedupe(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """(visits, aggregates), each unique and sorted by device and time."""
    visits = {(e["device"], e.get("track_id"), e.get("start")): e for e in events if e["type"] == "visit"}
    aggs = {(e["device"], e.get("start"), e.get("end"), e.get("final")): e
            for e in events if e["type"] == "aggregate"}
    key = lambda e: (e["device"], e.get("start") or "")  # noqa: E731
    return sorted(visits.values(), key=key), sorted(aggs.values(), key=key)


def counts_by_hour(visits: list[dict], aggs: list[dict]) -> list[dict]:
    """Rows (device, hour, bracket, gender, visits): from visits, or aggregates for aggregate-only devices."""
    c: Counter = Counter()
    with_visits = {v["device"] for v in visits}
    for v in visits:
        c[(v["device"], v["start"][:13], v["age_bracket"], v.get("gender") or "unknown")] += 1
    for a in aggs:
        if a["device"] in with_visits:
            continue
        for bracket, by_g in (a.get("by_bracket_gender") or {}).items():
            for g, n in by_g.items():
                if n:
                    c[(a["device"], a["start"][:13], bracket, g)] += n
    return [{"device": d, "hour": h + ":00Z", "age_bracket": b, "gender": g, "visits": n}
            for (d, h, b, g), n in sorted(c.items())]


def summarize(visits: list[dict], aggs: list[dict]) -> list[dict]:
    """One row per device: visits, by gender, dwell, attention, short tracks, frames, FPS."""
    hourly = counts_by_hour(visits, aggs)
    rows = []
    for dev in sorted({r["device"] for r in hourly} | {a["device"] for a in aggs} | {v["device"] for v in visits}):
        n_by_g = Counter()
        for r in hourly:
            if r["device"] == dev:
                n_by_g[r["gender"]] += r["visits"]
        dv = [v for v in visits if v["device"] == dev]
        da = [a for a in aggs if a["device"] == dev]
        dwell = sorted(v["dwell_s"] for v in dv)
        att = [(v["attention_s"], v["dwell_s"]) for v in dv if v.get("attention_s") is not None]
        fps = [a["fps"] for a in da if a.get("fps")]
        rows.append({"device": dev, "visits": sum(n_by_g.values()), **{g: n_by_g[g] for g in GENDERS},
                     "dwell_median_s": round(dwell[len(dwell) // 2], 2) if dwell else None,
                     "attention_share": round(sum(a for a, _ in att) / sum(d for _, d in att), 3)
                     if att and sum(d for _, d in att) > 0 else None,
                     "short_tracks": sum(a.get("short_tracks", 0) for a in da),
                     "frames": sum(a.get("frames_processed", 0) for a in da),
                     "messages_dropped": sum(a.get("messages_dropped", 0) for a in da),
                     "fps_median": round(sorted(fps)[len(fps) // 2], 1) if fps else None})
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    cols = columns or (list(rows[0]) if rows else [])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})


VISIT_COLUMNS = ["device", "track_id", "start", "end", "dwell_s", "frames", "age", "age_bracket", "gender",
                 "gender_confidence", "attention_s", "face_px", "ethnicity", "ethnicity_share"]
AGG_COLUMNS = ["device", "start", "end", "interval_s", "visits_started", "visits_ended", "short_tracks",
               "in_view", "peak_in_view", "dwell_mean_s", "dwell_median_s", "attention_share",
               "frames_processed", "frames_dropped", "fps", "messages_dropped", "final", "by_bracket_gender"]


def write_report(visits: list[dict], aggs: list[dict], out: Path, warn: Callable[[str], None]) -> list[Path]:
    """CSVs, PNGs (if matplotlib is there) and report.html in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(visits, aggs)
    hourly = counts_by_hour(visits, aggs)
    files = []
    for name, rows, cols in (("summary.csv", summary, None), ("visits_by_hour.csv", hourly,
                              ["device", "hour", "age_bracket", "gender", "visits"]),
                             ("visits.csv", visits, VISIT_COLUMNS), ("aggregates.csv", aggs, AGG_COLUMNS)):
        write_csv(out / name, rows, cols or (list(rows[0]) if rows else ["device"]))
        files.append(out / name)
    try:
        from edgeag.edge.report_plots import plot_all
    except ImportError:
        warn("PNG plots need matplotlib: pip install 'edgeag[report]' (CSVs written)")
        pngs = []
    else:
        pngs = plot_all(visits, hourly, summary, out)
    files += pngs
    files.append(_write_html(summary, pngs, out / "report.html"))
    return files


def _write_html(summary: list[dict], pngs: list[Path], path: Path) -> Path:
    """A self-contained page: the summary table and the plots inlined (no external files)."""
    cols = list(summary[0]) if summary else ["device"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r[c] is None else str(r[c]))}</td>" for c in cols)
                   + "</tr>" for r in summary)
    imgs = "".join(f'<h2>{html.escape(p.stem.replace("_", " "))}</h2><img alt="{html.escape(p.stem)}" '
                   f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs)
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>edgeag audience report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style>"
        f"<h1>Audience report</h1><p>Generated {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())} by "
        f"edgeag report. Counts, times and estimates only: no images.</p>"
        f"<table><tr>{head}</tr>{body}</table>{imgs}", encoding="utf-8")
    return path


def by_device_and_group(rows: list[dict]) -> dict:
    """hourly rows -> {device: {(bracket, gender): n}} (used by plots and tests)."""
    d: dict = defaultdict(Counter)
    for r in rows:
        d[r["device"]][(r["age_bracket"], r["gender"])] += r["visits"]
    return d
