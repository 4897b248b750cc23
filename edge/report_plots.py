"""PNG plots of `edgeag report` (matplotlib: the ``edgeag[report]`` extra, imported only here)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GENDER_HATCH = {"female": "", "male": "//", "unknown": ".."}


def plot_all(visits: list[dict], hourly: list[dict], summary: list[dict], out: Path) -> list[Path]:
    files = [_visits_per_hour(hourly, out / "visits_per_hour.png")]
    if visits:
        files.append(_histogram([v["dwell_s"] for v in visits], "dwell (s)", out / "dwell.png"))
        att = [v["attention_s"] / v["dwell_s"] for v in visits if v.get("attention_s") is not None and v["dwell_s"]]
        if att:
            files.append(_histogram(att, "attention share of the visit", out / "attention.png"))
    files.append(_per_device(summary, out / "devices.png"))
    return files


def _visits_per_hour(hourly: list[dict], path: Path) -> Path:
    """Stacked bars: one bar per hour, one colour per age bracket, hatching per gender."""
    hours = sorted({r["hour"] for r in hourly})
    groups = sorted({(r["age_bracket"], r["gender"]) for r in hourly},
                    key=lambda g: (int(g[0].split("-")[0].rstrip("+")), g[1]))
    brackets = sorted({b for b, _ in groups}, key=lambda b: int(b.split("-")[0].rstrip("+")))
    colours = {b: plt.cm.viridis(i / max(len(brackets) - 1, 1)) for i, b in enumerate(brackets)}
    n = Counter()
    for r in hourly:
        n[(r["hour"], r["age_bracket"], r["gender"])] += r["visits"]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(hours) + 3), 4.5))
    bottom = [0] * len(hours)
    x = range(len(hours))
    for b, g in groups:
        h = [n[(hr, b, g)] for hr in hours]
        ax.bar(x, h, bottom=bottom, color=colours[b], hatch=GENDER_HATCH.get(g, ""), edgecolor="white",
               label=f"{b} {g}")
        bottom = [a + c for a, c in zip(bottom, h)]
    ax.set_xticks(list(x), [h[5:13].replace("T", " ") + "h" for h in hours], rotation=45, ha="right")
    ax.set_ylabel("visits")
    ax.set_title("Visits per hour (UTC) by age bracket and gender, all devices")
    if groups:
        ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _histogram(values: list[float], label: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="#4c72b0")
    ax.set_xlabel(label)
    ax.set_ylabel("visits")
    ax.set_title(f"{label}: {len(values)} visits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _per_device(summary: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(summary) + 2), 3.5))
    devices = [r["device"] for r in summary]
    bottom = [0] * len(devices)
    for g in ("female", "male", "unknown"):
        h = [r[g] for r in summary]
        ax.bar(devices, h, bottom=bottom, hatch=GENDER_HATCH[g], label=g, edgecolor="white")
        bottom = [a + b for a, b in zip(bottom, h)]
    ax.set_ylabel("visits")
    ax.set_title("Visits per device")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
