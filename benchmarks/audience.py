"""Audience analytics measured: visit floors over several generated clips, and MQTT under a broker outage.

    python benchmarks/audience.py floors [--seeds 0,1,2,3,4,5]
    python benchmarks/audience.py mqtt [--seconds 90] [--outage 10] [--repeats 4]
    python benchmarks/audience.py cost [--seconds 90]

`floors`: for each seed, a clip of test-split UTKFace faces entering, staying and leaving
(tests/audience_clip.py) through `edgeag run --events --json`; checks visit count, dwell (+-0.5 s) and
each visit's age bracket and gender against the per-frame model's majority.
`mqtt`: a real Mosquitto on loopback (the tests' helper); runs `edgeag run` on one long clip alternately
without and with `--mqtt` (FPS from the run's own summary line), then once more with the broker stopped
for `--outage` seconds mid-run: every event of the run's --events file must reach a subscriber, in order.
`cost`: in process, the time the frame loop spends in the audience hook and the CPU time of the MQTT thread
(the FPS difference between runs is too noisy on a busy machine to resolve a few per cent).
Needs ../shared/data (faces) and the mosquitto binary. Results: benchmarks/results/audience_*.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeag.benchmarks.common import exits_cleanly, machine_facts, write_json
from edgeag.errors import EdgeagError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from audience_clip import make_clip  # noqa: E402
from broker import Listener, Mosquitto  # noqa: E402
from test_audience_clip import START, is_majority, match, per_frame_majority  # noqa: E402

EDGEAG = [sys.executable, "-m", "edgeag.cli"]


def run(clip: Path, *extra: str) -> tuple[float, str]:
    """One `edgeag run`; returns (FPS from its summary line, stderr)."""
    r = subprocess.run([*EDGEAG, "run", "--video", str(clip), "--headless", "-q", "--start-time", START, *extra],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1:] or [f"exit code {r.returncode}"]
        raise EdgeagError(f"edgeag run failed: {last[0][:300]}")
    m = re.search(r"frames in [\d.]+ s \(([\d.]+)/s\)", r.stderr)
    return float(m.group(1)), r.stderr


def floors(seeds: list[int], tmp: Path) -> dict:
    rows = []
    for seed in seeds:
        clip = tmp / f"clip{seed}.mp4"
        truth, fps, _ = make_clip(clip, seed=seed)
        frames, events = tmp / f"f{seed}.jsonl", tmp / f"e{seed}.jsonl"
        run(clip, "--json", str(frames), "--events", str(events))
        visits = [e for e in map(json.loads, events.open()) if e["type"] == "visit"]
        majority = per_frame_majority(frames)
        pairs = match(truth, visits, fps)
        errs = [abs(v["dwell_s"] - t.dwell_s(fps)) for t, v in pairs]
        agree = sum(is_majority(v, majority[v["track_id"]]) for _, v in pairs)
        truth_agree = sum(v["gender"] == t.gender for t, v in pairs)
        rows.append({"seed": seed, "truth_visits": len(truth), "visits": len(visits), "matched": len(pairs),
                     "dwell_abs_err_max_s": round(max(errs), 3), "dwell_abs_err_mean_s": round(sum(errs) / len(errs), 3),
                     "bracket_and_gender_as_per_frame_majority": agree, "gender_as_label": truth_agree})
        print(rows[-1], flush=True)
    return {"clips": rows, "count_exact": all(r["visits"] == r["truth_visits"] == r["matched"] for r in rows),
            "dwell_within_0_5_s": all(r["dwell_abs_err_max_s"] <= 0.5 for r in rows),
            "majority_agreement": f"{sum(r['bracket_and_gender_as_per_frame_majority'] for r in rows)}/"
                                  f"{sum(r['matched'] for r in rows)}"}


def mqtt(seconds: float, outage: float, repeats: int, tmp: Path) -> dict:
    clip = tmp / "long.mp4"
    make_clip(clip, seed=7, seconds=seconds)
    broker = Mosquitto(tmp).start()
    try:
        url = broker.url("bench")
        fps = {"without": [], "with": []}
        for _ in range(repeats):  # alternated, so the busy machine's drift hits both alike
            fps["without"].append(run(clip, "--events", str(tmp / "a.jsonl"), "--interval", "5")[0])
            fps["with"].append(run(clip, "--events", str(tmp / "b.jsonl"), "--interval", "5", "--mqtt", url,
                                   "--device", "bench")[0])
        outage_result = _outage_run(clip, broker, outage, tmp)
    finally:
        broker.stop()
    med = {k: statistics.median(v) for k, v in fps.items()}
    return {"clip_s": seconds, "fps_runs": fps, "fps_median": med,
            "with_over_without": round(med["with"] / med["without"], 3), **outage_result}


def _outage_run(clip: Path, broker: Mosquitto, outage: float, tmp: Path) -> dict:
    listener = Listener(broker, "outage/#")
    events = tmp / "outage.jsonl"
    p = subprocess.Popen([*EDGEAG, "run", "--video", str(clip), "--headless", "-q", "--start-time", START,
                          "--events", str(events), "--interval", "5", "--mqtt", broker.url("outage"),
                          "--device", "cam"], stderr=subprocess.PIPE, text=True)
    time.sleep(8.0)  # models loaded, frames flowing
    broker.stop()
    time.sleep(outage)
    still_running = p.poll() is None  # the broker came back while the run was going on
    broker.start()
    _, err = p.communicate(timeout=1800)
    sent = [json.loads(line) for line in events.open()]
    listener.wait_for(lambda l: len({json.dumps(e, sort_keys=True) for e in l.events()}) >= len(sent), 60)
    listener.close()
    got = list({json.dumps(e, sort_keys=True): e for e in listener.events()}.values())  # QoS 1 duplicates
    m = re.search(r"frames in ([\d.]+) s \(([\d.]+)/s\)", err)
    return {"outage_s": outage, "outage_started_s_into_run": 8.0, "run_exit_code": p.returncode,
            "run_still_going_when_broker_restarted": still_running, "run_elapsed_s": float(m.group(1)),
            "events_emitted": len(sent), "events_received": len(got), "lost": len(sent) - len(got),
            "order_kept": got == sent, "fps_with_outage": float(m.group(2))}


def cost(seconds: float, tmp: Path) -> dict:
    """In-process: what the audience path costs the frame loop, measured directly (not as an FPS difference).

    Times every ``on_frame`` call (AudienceCounter.update + queueing) and reads the CPU time of the MQTT
    publisher thread from /proc; their sum over the run's elapsed time bounds the FPS cost.
    """
    from edgeag.edge.audience_session import open_audience
    from edgeag.edge.analyzer import FaceAnalyzer, FaceAnalyzerOptions
    from edgeag.edge.runner import run_loop
    from edgeag.edge.sources import open_source

    clip = tmp / "cost.mp4"
    make_clip(clip, seed=3, seconds=seconds)
    broker = Mosquitto(tmp).start()
    try:
        src = open_source("video", str(clip))
        session = open_audience(events=str(tmp / "cost.jsonl"), mqtt=broker.url("cost"), mqtt_spool=None,
                                device="cost", aggregate_only=False, interval=5, min_dwell=1.0,
                                age_brackets="13,18,25,35,45,55,65", start_time=START, min_gender_confidence=0.0,
                                ethnicity=False, source=src, live=False, warn=print)
        spent = []

        def on_frame(frame, faces):
            t = time.perf_counter()
            session.on_frame(frame, faces)
            spent.append(time.perf_counter() - t)

        with FaceAnalyzer(FaceAnalyzerOptions(video=True)) as fa:
            summary = run_loop(src, fa, [], on_frame=on_frame)
        thread_cpu = _thread_cpu_s(session.publisher._thread.native_id)
        session.close()
    finally:
        broker.stop()
    hook = sum(spent)
    return {"frames": summary.frames, "elapsed_s": round(summary.elapsed_s, 2), "fps": round(summary.fps, 1),
            "on_frame_total_s": round(hook, 4), "on_frame_per_frame_us": round(1e6 * hook / summary.frames, 1),
            "on_frame_max_ms": round(1e3 * max(spent), 3), "publisher_thread_cpu_s": thread_cpu,
            "share_of_run_time": round((hook + thread_cpu) / summary.elapsed_s, 4),
            "messages": session.publisher.delivered}


def _thread_cpu_s(tid: int) -> float:
    """utime + stime of one thread of this process, in seconds (Linux)."""
    import os

    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 3)


@exits_cleanly
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["floors", "mqtt", "cost"])
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--outage", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if a.part == "floors":
            res = floors([int(s) for s in a.seeds.split(",")], Path(d))
        elif a.part == "cost":
            res = cost(a.seconds, Path(d))
        else:
            res = mqtt(a.seconds, a.outage, a.repeats, Path(d))
    res["machine"] = machine_facts()
    res["command"] = "python benchmarks/audience.py " + " ".join(sys.argv[1:])
    out = ROOT / "benchmarks" / "results" / f"audience_{a.part}.json"
    write_json(res, out, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
