"""The robustness evaluation's outputs: metrics.json, report.md, robustness.png and a Rich table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeag.train.corruptions import catalogue_markdown


def _f(x, fmt: str, none: str = "-") -> str:
    return none if x is None else format(x, fmt)


def _ci(ci, scale: float = 1.0, fmt: str = ".2f") -> str:
    return f" ({format(scale * ci[0], fmt)}-{format(scale * ci[1], fmt)})" if ci else ""


def pass_cells(row: dict) -> dict[str, str]:
    """One pass as table cells by header: faces found, MAE, ratios, CS@5, gender, the bias groups, the worst bias."""
    cells = dict.fromkeys(HEADER, "-")
    cells.update({"pass": row["pass"], "faces found": f"{row['faces_found']} ({100 * row['face_rate']:.1f}%)"})
    m = row.get("metrics")
    if not m:
        return cells
    o, se = m["overall"], row["signed_error"]
    if "gender_accuracy" in o:
        cells["gender (change)"] = f"{100 * o['gender_accuracy']:.1f}%" + (
            f" ({100 * row['gender_accuracy_delta']:+.1f})" if row["kind"] != "clean" else "")
    cells.update({"MAE": f"{o['age_mae']:.2f}", "x clean": _f(row.get("age_mae_ratio"), ".3f"),
                  "x same": _f(row.get("same_faces", {}).get("ratio"), ".3f"), "CS@5": f"{100 * o['age_cs5']:.1f}%",
                  "bias": f"{o['age_mean_signed_error']:+.2f}", "bias 0-8": _f(se["0-8"]["mean"], "+.2f"),
                  "bias 61+": _f(se["61+"]["mean"], "+.2f"),
                  "worst bias": f"{row['worst_bucket_bias'][0]}: {row['worst_bucket_bias'][1]:+.2f}"})
    return cells


HEADER = ["pass", "faces found", "MAE", "x clean", "x same", "CS@5", "gender (change)", "bias", "bias 0-8",
          "bias 61+", "worst bias"]


def headers(m: dict) -> list[str]:
    """The columns that say something here: no ratios for one pass, no gender without gender labels."""
    drop = set()
    if len(m["passes"]) == 1:
        drop |= {"x clean", "x same"}
    if m["data"]["format"] == "fgnet":
        drop.add("gender (change)")
    return [h for h in HEADER if h not in drop]


def floors_markdown(m: dict) -> str:
    """Each kind at its middle severity against the issue's floors: MAE <= 1.12 x clean, |bias| <= 4 years for
    0-8 and 61+ (figures on the faces found; the clean MAE is that of this evaluation's clean pass)."""
    lines = ["| kind (middle severity) | faces found | MAE | x clean | bias 0-8 | bias 61+ | within floors |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in m["passes"]:
        if r["kind"] == "clean" or not r["middle"] or not r.get("metrics"):
            continue
        se = [r["signed_error"][g]["mean"] for g in ("0-8", "61+")]
        ok = r["age_mae_ratio"] <= 1.12 and all(b is not None and abs(b) <= 4 for b in se)
        lines.append(f"| {r['pass']} | {100 * r['face_rate']:.1f}% | {r['metrics']['overall']['age_mae']:.2f} | "
                     f"{r['age_mae_ratio']:.3f} | {_f(se[0], '+.2f')} | {_f(se[1], '+.2f')} | "
                     f"{'yes' if ok else '**no**'} |")
    return "\n".join(lines) + "\n"


def markdown_report(m: dict) -> str:
    d = m["data"]
    lines = [f"# Robustness: {m['model']} on {d['path']} [{m['split']}]", "",
             f"{d['images']} images" + (f" (a seeded sample of {d['limit']}, seed {m['seed']})" if d["limit"] else "")
             + f"; corruption seed {m['seed']}; " + ("test-time flip; " if m["tta_flip"] else "")
             + f"skipped entries: {sum(d['skipped'].values())}" + (f" {d['skipped']}." if d["skipped"] else "."),
             "Each image: corruption of the full image "
             + ("(the photograph) -> BlazeFace -> the largest face" if d.get("format") == "fgnet" else
                "(a UTKFace chip framed by its reflection) -> BlazeFace -> the subject's face")
             + " -> crop_face -> model. Figures are on the faces found; 'x same' is the MAE ratio to the clean "
             "pass on the faces found in both. Bias = mean signed error (predicted - true) in years; worst bias: the age bucket (>= 5 faces) with the "
             "largest. Gender change in points against clean.", "",
             "| " + " | ".join(headers(m)) + " |", "|" + " --- |" + " ---: |" * (len(headers(m)) - 1)]
    lines += ["| " + " | ".join(pass_cells(r)[h] for h in headers(m)) + " |" for r in m["passes"]]
    if len(m["passes"]) > 1:
        lines += ["", "## Middle severity against the floors (issue 17)", "", floors_markdown(m).rstrip()]
    rows = [r for r in m["passes"] if r.get("metrics")]
    buckets = list(rows[0]["metrics"]["by_age"]) if rows else []
    lines += ["", "## Mean signed error per age bucket (years)", "",
              "| pass | " + " | ".join(buckets) + " |", "| --- |" + " ---: |" * len(buckets)]
    for r in rows:
        cells = [_f(g.get("age_mean_signed_error"), "+.2f") for g in r["metrics"]["by_age"].values()]
        lines.append(f"| {r['pass']} | " + " | ".join(cells) + " |")
    if rows and rows[0]["kind"] == "clean":
        lines += ["", "## Clean pass per age bucket (95% intervals)", "",
                  "| age | n | MAE | CS@5 | mean signed error |", "| --- | ---: | ---: | ---: | ---: |"]
        for name, g in rows[0]["metrics"]["by_age"].items():
            if not g["n"]:
                lines.append(f"| {name} | 0 | | | |")
                continue
            ci = g["interval95"]
            lines.append(f"| {name} | {g['n']} | {g['age_mae']:.2f}{_ci(ci.get('age_mae'))} | "
                         f"{100 * g['age_cs5']:.1f}%{_ci(ci.get('age_cs5'), 100, '.1f')} | "
                         f"{g['age_mean_signed_error']:+.2f}{_ci(ci.get('age_mean_signed_error'), fmt='+.2f')} |")
    if len(m["passes"]) > 1:
        lines += ["", "## Corruption catalogue (train/corruptions.py; severity 2 is the middle one)", "",
                  catalogue_markdown(m.get("catalogue")).rstrip()]
    return "\n".join(lines) + "\n"


def write_robustness_report(m: dict, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "metrics.json", out / "report.md", out / "robustness.png"]
    files[0].write_text(json.dumps(m, indent=2))
    files[1].write_text(markdown_report(m))
    plot_robustness(m, files[2])
    return files


def plot_robustness(m: dict, path: Path) -> None:
    """Corruptions: MAE ratio to clean and the worst bucket's bias per kind and severity, and the bias of every
    bucket per pass. Clean only (e.g. FG-NET): MAE and bias per age bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in m["passes"] if r.get("metrics")]
    title = f"{m['model']} on {m['data']['path']} [{m['split']}]"
    if len(rows) <= 1:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        if rows:
            _bucket_bars(ax, rows[0]["metrics"])
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    fig, axes = plt.subplots(1, 3, figsize=(19, 5), gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    kinds = list(dict.fromkeys(r["kind"] for r in rows if r["kind"] != "clean"))
    for ax, key in ((axes[0], "ratio"), (axes[1], "bias")):
        for s, colour in zip((1, 2, 3), ("#9ecae1", "#3182bd", "#08519c")):
            vals = {r["kind"]: r for r in rows if r["severity"] == s}
            x = np.arange(len(kinds)) + (s - 2) * 0.27
            ys = [(vals[k].get("age_mae_ratio") if key == "ratio" else vals[k]["worst_bucket_bias"][1])
                  if k in vals else np.nan for k in kinds]
            ax.bar(x, ys, 0.27, color=colour, label=f"severity {s}")
            if key == "bias":
                for xi, k in zip(x, kinds):
                    if k in vals:
                        b = vals[k]["worst_bucket_bias"]
                        ax.text(xi, b[1], b[0], ha="center", va="bottom" if b[1] >= 0 else "top", fontsize=7)
        ax.set_xticks(np.arange(len(kinds)), kinds, rotation=30)
        ax.legend(fontsize=8)
    axes[0].axhline(1.0, color="k", lw=1)
    axes[0].axhline(1.12, color="r", ls="--", lw=1, label="1.12 (floor, middle severity)")
    axes[0].set_ylim(bottom=min(0.9, axes[0].get_ylim()[0]))
    axes[0].set_title("age MAE / clean MAE")
    axes[0].legend(fontsize=8)
    axes[1].axhline(0, color="k", lw=1)
    for y in (-4, 4):
        axes[1].axhline(y, color="r", ls="--", lw=1)
    axes[1].set_title("worst age bucket's mean signed error (years)")
    _bias_heatmap(axes[2], rows)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bucket_bars(ax, metrics: dict) -> None:
    names = [k for k, g in metrics["by_age"].items() if g["n"]]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [metrics["by_age"][k]["age_mae"] for k in names], 0.4, label="MAE")
    ax.bar(x + 0.2, [metrics["by_age"][k]["age_mean_signed_error"] for k in names], 0.4, label="mean signed error")
    ax.axhline(metrics["overall"]["age_mae"], color="k", ls="--", lw=1, label="overall MAE")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, names)
    ax.set_ylabel("years")
    ax.set_title("age error by true age")
    ax.legend()


def _bias_heatmap(ax, rows: list[dict]) -> None:
    buckets = list(rows[0]["metrics"]["by_age"])
    z = np.array([[r["metrics"]["by_age"][b].get("age_mean_signed_error", np.nan) for b in buckets] for r in rows])
    lim = max(4.0, float(np.nanmax(np.abs(z))))
    im = ax.imshow(z, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(buckets)), buckets, rotation=30)
    ax.set_yticks(range(len(rows)), [r["pass"] for r in rows], fontsize=6)
    ax.set_title("mean signed error per age bucket (years)")
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


def print_robustness(m: dict) -> None:
    """The passes as a Rich table on stdout (and the clean pass per age bucket)."""
    from rich.console import Console
    from rich.table import Table

    d = m["data"]
    t = Table(title=f"{m['model']} - {d['path']} [{m['split']}], {d['images']} images"
                    + (" +flip" if m["tta_flip"] else ""))
    for i, col in enumerate(headers(m)):
        t.add_column(col, justify="left" if i == 0 else "right")
    for r in m["passes"]:
        t.add_row(*(pass_cells(r)[h] for h in headers(m)), style="bold" if r["kind"] == "clean" else None)
    console = Console()
    console.print(t)
    clean = m["passes"][0].get("metrics")
    if clean:
        b = Table(title="clean pass per age bucket (95% intervals)")
        for col in ("age", "n", "MAE", "CS@5", "mean signed error"):
            b.add_column(col, justify="left" if col == "age" else "right")
        for name, g in clean["by_age"].items():
            if g["n"]:
                ci = g["interval95"]
                b.add_row(name, str(g["n"]), f"{g['age_mae']:.2f}{_ci(ci.get('age_mae'))}",
                          f"{100 * g['age_cs5']:.1f}%", f"{g['age_mean_signed_error']:+.2f}"
                          f"{_ci(ci.get('age_mean_signed_error'), fmt='+.2f')}")
        console.print(b)
    if d["skipped"]:
        console.print(f"skipped: {d['skipped']} (e.g. {d['skipped_examples']})", highlight=False)
