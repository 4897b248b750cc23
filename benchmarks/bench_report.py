"""How ``edgeag benchmark`` shows its result: rich tables (one per run, then a comparison) and a PNG chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeag.benchmarks.bench_config import STAGES, TARGETS
from edgeag.benchmarks.common import pyplot, save_figure


def _fmt(v, spec: str = ".2f", none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def _human(n: int | None, unit: str = "") -> str:
    if n is None:
        return "n/a"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{suf}{unit}"
    return f"{n}{unit}"


def _stage_table(r: dict, c: dict):
    """One run: stages x (p50, p90, p99, FPS)."""
    from rich.table import Table

    m, f = r["model"], r["faces"]
    t = Table(title=f"{m['name']} ({m['mode']}, {m['input'][0]}x{m['input'][1]}) - {r['threads']} thread"
              f"{'s' if r['threads'] > 1 else ''} - {c['width']}x{c['height']}, {c['frames']} frames, "
              f"{f['mean_per_frame']:g} faces/frame ({f['source']})", title_justify="left")
    for col in ("stage", "p50 ms", "p90 ms", "p99 ms", "FPS"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for name, s in r["stages"].items():
        style = "bold" if name.startswith("end_to_end") else None
        fps = _fmt(s["fps"], ".0f") + (" faces/s" if name == "classify_face" else "")
        t.add_row(name, _fmt(s["p50_ms"], ".3f"), _fmt(s["p90_ms"], ".3f"), _fmt(s["p99_ms"], ".3f"), fps,
                  style=style)
    return t


def _comparison_row(r: dict, has_acc: bool) -> list[str]:
    m, s, su, vs = r["model"], r["stages"], r["summary"], r.get("vs_baseline", {})
    row = [m["name"], str(m["mode"]), str(r["threads"]), f"{m['size_bytes'] / 1024:.0f} KB", _human(m["params"]),
           _human(m["macs"]), _fmt(s["classify_face"]["p50_ms"], ".3f"), _fmt(s["classify_batch"]["p50_ms"], ".3f"),
           _fmt(s["detect"]["p50_ms"], ".2f"), _fmt(s["end_to_end"]["p50_ms"], ".2f"),
           _fmt(s["end_to_end"]["fps"], ".0f"),
           "n/a" if su["non_model_share"] is None else f"{100 * su['non_model_share']:.0f}%",
           "base" if vs.get("baseline") == m["name"]
           else f"{_fmt(vs.get('speedup_classify_face'), '.2f')}x vs {vs.get('baseline_mode')}",
           _fmt(su["peak_rss_mb"], ".0f")]
    if has_acc:
        a = r.get("accuracy") or {}
        row += [_fmt(a.get("age_mae"), ".2f"),
                "n/a" if a.get("gender_accuracy") is None else f"{100 * a['gender_accuracy']:.1f}%"]
    return row


def _comparison_table(result: dict):
    """One row per run: size, MACs, per-face and per-frame times, FPS, speed-up, memory (and accuracy)."""
    from rich.table import Table

    cmp = Table(title="comparison", title_justify="left")
    cols = ["model", "mode", "thr", "size", "params", "MACs/face", "face ms", f"batch/{result['config']['faces']} ms",
            "detect ms", "e2e ms", "FPS", "non-model", "speed-up", "peak MB"]
    has_acc = any(r.get("accuracy") for r in result["runs"])
    if has_acc:
        cols += ["age MAE", "gender"]
    for col in cols:
        cmp.add_column(col, justify="left" if col in ("model", "mode") else "right")
    for r in result["runs"]:
        cmp.add_row(*_comparison_row(r, has_acc))
    return cmp


def _print_notes(result: dict, console) -> None:
    """Machine, clip, targets and how to share the figures, under the tables."""
    mach, clip = result["machine"], result["clip"]
    cpu = mach.get("cpu") or {}
    console.print(f"machine: {mach['processor']} ({mach['machine']}, {mach['cpu_count']} CPUs, load "
                  f"{mach['load_average']}); CPU features: {cpu.get('summary', 'unknown')}; LiteRT "
                  f"{mach['versions'].get('litert')}, mediapipe {mach['versions'].get('mediapipe')}", highlight=False)
    console.print(f"clip: {clip['source']}, {clip['distinct_frames']} distinct JPEG frames of "
                  f"{clip['jpeg_kb_mean']} KB; face boxes: {clip['face_boxes']}; loop: {clip['pipeline']}. "
                  f"speed-up: classifier per face against the float32 variant of the same model at the same threads. "
                  f"Peak RSS of the process: {result['memory']['peak_rss_mb']} MB.", highlight=False)
    if result["targets"]:
        parts = [f"{'[green]ok[/]' if t['ok'] else '[red]miss[/]'} {t['name']} {t['value']} (target "
                 f"{'>=' if t['name'] in ('int8_speedup_vs_float32', 'end_to_end_fps') else '<='} {t['target']}, "
                 f"{t['run']})" for t in result["targets"]]
        console.print("targets (1 thread): " + "; ".join(parts))
    console.print("To share these figures (e.g. from a Raspberry Pi): add --json bench.json and send bench.json; it "
                  "holds the machine, CPU features, versions and every figure above.", highlight=False)


def print_report(result: dict, console=None) -> None:
    """Rich tables: one per run (stages x percentiles), then one comparison row per run."""
    from rich.console import Console

    console = console or Console()
    for r in result["runs"]:
        console.print(_stage_table(r, result["config"]))
    console.print(_comparison_table(result))
    _print_notes(result, console)


def plot(result: dict, out_png: str | Path) -> Path:
    """A PNG: per-stage p50 latency (bars, p90 whiskers) per run, and end-to-end FPS per run."""
    plt = pyplot()
    runs = result["runs"]
    stages = [s for s in STAGES if s not in ("end_to_end", "end_to_end_drawn")]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(stages))
    labels = [f"{r['model']['name']} ({r['model']['mode']}, {r['threads']}t)" for r in runs]
    for i, r in enumerate(runs):
        p50 = [r["stages"][s]["p50_ms"] or 0 for s in stages]
        p90 = [r["stages"][s]["p90_ms"] or 0 for s in stages]
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, p50, width, label=labels[i],
               yerr=[np.zeros(len(p50)), np.maximum(0, np.subtract(p90, p50))], capsize=2)
    ax.set_xticks(x, stages, rotation=20)
    ax.set_ylabel("ms (p50, whisker to p90)")
    c = result["config"]
    ax.set_title(f"per-stage latency, {c['width']}x{c['height']}, {c['faces']} faces/frame")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fps = [r["stages"]["end_to_end"]["fps"] or 0 for r in runs]
    ax2.barh(np.arange(len(runs)), fps, color=[f"C{i}" for i in range(len(runs))])
    ax2.set_yticks(np.arange(len(runs)), labels, fontsize=8)
    ax2.axvline(TARGETS["end_to_end_fps"], color="k", ls="--", lw=1, label="target")
    for i, r in enumerate(runs):
        a = r.get("accuracy")
        if a:
            ax2.text(fps[i], i, f" MAE {a['age_mae']:.2f}, {100 * a['gender_accuracy']:.1f}%", va="center",
                     fontsize=8)
    ax2.set_xlabel("end-to-end FPS (headless)")
    ax2.invert_yaxis()
    ax2.legend(fontsize=8)
    return save_figure(fig, out_png)
