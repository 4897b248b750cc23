"""Architecture comparison: train a small grid, quantize each to int8, measure accuracy, latency and size.

    python benchmarks/experiments/arch_grid.py ../shared/data/UTKFace.tar \\
        --split-file ../shared/data/utkface_split.csv --epochs 12 --budget-min 240

For every grid entry (default: mobilenet 0.5/0.75/1.0, resnet 0.5, efficientnet 0.75, all at 80x80):
``edgeag train`` (``edgeag.train.fit.train``) into ``--work/NAME``, ``edgeag quantize`` to int8, test-split
age MAE / gender accuracy of the int8 file with ``evaluate_model`` (and of the float model, to show the
quantization drop), int8 classifier latency per face at 1 thread, file size. Results go to
``--out/arch_grid.json`` after every model, and a Pareto plot to ``--out/arch_grid.png``.

Time-boxed: ``--epochs`` caps each model (early stopping may end sooner), ``--model-budget-min`` stops one
model's training at a wall-clock limit (keeping its best epoch), ``--budget-min`` caps the whole grid (a
model is not started when the remaining budget is below its estimated time, and the running one is
stopped when the budget runs out). Resumable: models whose results are already in the JSON are skipped,
a finished training or int8 file in ``--work`` is reused; run the same command again to continue.
"""

from __future__ import annotations

import json
import platform
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer

from edgeag.errors import BadInputError

SCHEMA_VERSION = 1
DEFAULT_GRID = "mobilenet:0.5,mobilenet:0.75,mobilenet:1.0,resnet:0.5,efficientnet:0.75"


@dataclass(frozen=True)
class GridEntry:
    """One architecture of the grid."""

    arch: str
    width: float
    depth: float = 1.0
    size: int | None = None  # crop size; None: the grid's --input-size
    channels: int = 3  # 1 = grayscale, as in the Kaggle 48x48 CSV format

    @property
    def name(self) -> str:
        return (f"{self.arch}_w{self.width:g}" + ("" if self.depth == 1.0 else f"_d{self.depth:g}")
                + (f"_{self.size}px" if self.size else "") + ("_gray" if self.channels == 1 else ""))


def parse_grid(text: str) -> list[GridEntry]:
    """'mobilenet:0.5,resnet:0.5:1.0,mobilenet:0.75@48g' -> entries (arch:width[:depth][@SIZE[g]]).

    ``@48`` trains that entry on 48 px crops instead of ``--input-size``; ``@48g`` on 48 px grayscale
    (what the Kaggle CSV format holds). BadInputError on a bad item.
    """
    from edgeag.train.model import ARCHS

    out = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        spec, at, fmt = item.partition("@")
        parts = spec.split(":")
        try:
            if parts[0] not in ARCHS or not 1 <= len(parts) <= 3 or (at and not fmt):
                raise ValueError
            gray = fmt.endswith("g")
            size = int(fmt[:-1] if gray else fmt) if fmt else None
            e = GridEntry(parts[0], float(parts[1]) if len(parts) > 1 else 0.75,
                          float(parts[2]) if len(parts) > 2 else 1.0, size, 1 if gray else 3)
            if e.width <= 0 or e.depth <= 0 or (size is not None and size < 16):
                raise ValueError
        except ValueError:
            raise BadInputError(f"bad grid entry {item!r}: use arch:width[:depth][@SIZE[g]] with arch one of "
                                f"{', '.join(ARCHS)}") from None
        if e not in out:
            out.append(e)
    if not out:
        raise BadInputError("the grid is empty")
    return out


def pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (both minimised), sorted by x."""
    idx = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        dominated = any((xo <= x and yo <= y) and (xo < x or yo < y) for j, (xo, yo) in enumerate(zip(xs, ys))
                        if j != i)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (xs[i], ys[i]))


def int8_latency(path: str | Path, threads: int = 1, n: int = 300, warmup: int = 30) -> dict:
    """Per-face (batch 1) latency of a classifier file with LiteRT: p50/p90 ms over ``n`` calls."""
    from edgeag.benchmarks.bench import summarize
    from edgeag.edge.classifier import AgeGenderClassifier

    clf = AgeGenderClassifier(path, threads=threads)
    s = clf.crop_spec
    x = np.random.default_rng(0).integers(0, 256, (8, 1, s.size, s.size, s.channels), dtype=np.uint8)
    for i in range(warmup):
        clf.predict(x[i % 8])
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        clf.predict(x[i % 8])
        ts.append((time.perf_counter() - t0) * 1e3)
    st = summarize(ts)
    return {"p50_ms": st["p50_ms"], "p90_ms": st["p90_ms"], "threads": threads, "n": n}


class _Deadline:
    """Stops training at a wall-clock deadline by raising KeyboardInterrupt in the main thread, which
    ``fit.train`` turns into "keep the best epoch so far". Unix only (SIGALRM); elsewhere a no-op."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._old = None

    def __enter__(self) -> "_Deadline":
        if self.seconds and hasattr(signal, "SIGALRM"):
            self._old = signal.signal(signal.SIGALRM, self._handler)
            signal.setitimer(signal.ITIMER_REAL, max(1.0, self.seconds))
        return self

    def _handler(self, signum, frame) -> None:
        self.fired = True
        raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        if self._old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)
        # Swallow only our own interrupt; a real Ctrl-C propagates and stops the grid.
        return bool(exc[0] is KeyboardInterrupt and self.fired)


def _overall(m: dict) -> dict:
    o = m["overall"]
    return {"n": o["n"], "age_mae": round(o["age_mae"], 4), "gender_accuracy": round(o["gender_accuracy"], 4),
            "ethnicity_accuracy": round(o["ethnicity_accuracy"], 4)}


def train_entry(entry: GridEntry, model_dir: Path, data: Path, split_file: Path | None, *, input_size: int,
                epochs: int, limit: int | None, patience: int, seconds: float | None, seed: int,
                progress: bool) -> dict:
    """Train one entry into ``model_dir`` (reusing a finished training). Returns its config.json."""
    cfg_path = model_dir / "config.json"
    if cfg_path.is_file() and (model_dir / "model.keras").is_file():
        cfg = json.loads(cfg_path.read_text())
        if "epochs_run" in cfg:  # written only after fit returned: a finished (or time-boxed) training
            return cfg
    from edgeag.train.fit import TrainConfig, train
    from edgeag.train.model import ModelConfig

    input_size = entry.size or input_size
    mcfg = ModelConfig(arch=entry.arch, input_size=input_size, channels=entry.channels, width=entry.width,
                       depth=entry.depth)
    tcfg = TrainConfig(epochs=epochs, patience=patience, limit=limit, seed=seed)
    with _Deadline(seconds) as dl:
        train(data, model_dir, split_file=split_file, model_cfg=mcfg, train_cfg=tcfg, progress=progress)
    if not (model_dir / "model.keras").is_file() or not cfg_path.is_file():
        raise BadInputError(f"{entry.name}: stopped before the first epoch finished (budget too small?)")
    cfg = json.loads(cfg_path.read_text())
    if dl.fired:
        cfg["time_limited"] = True
        cfg.setdefault("epochs_run", _epochs_in_history(model_dir))
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return cfg


def _epochs_in_history(model_dir: Path) -> int:
    h = model_dir / "history.csv"
    return max(0, sum(1 for _ in h.open()) - 1) if h.is_file() else 0


def evaluate_entry(entry: GridEntry, model_dir: Path, data: Path, split_file: Path | None, *,
                   float_eval: bool = True, latency_n: int = 300, progress: bool = False) -> dict:
    """Quantize (int8, reused if present), evaluate on the test split and time one trained entry."""
    from edgeag.quantize.convert import quantize
    from edgeag.train.evaluate import evaluate_model

    cfg = json.loads((model_dir / "config.json").read_text())
    int8 = model_dir / "int8.tflite"
    if not int8.is_file():
        tmp = model_dir / "int8.tmp.tflite"
        quantize(model_dir, tmp, data=data, split_file=split_file, mode="int8", progress=progress)
        tmp.replace(int8)
    test_int8 = _overall(evaluate_model(int8, data, split="test", split_file=split_file, progress=progress))
    test_float = (_overall(evaluate_model(model_dir, data, split="test", split_file=split_file, progress=progress))
                  if float_eval else None)
    val = {}
    mpath = model_dir / "metrics.json"
    if mpath.is_file():
        o = json.loads(mpath.read_text()).get("overall", {})
        val = {k: round(o[k], 4) for k in ("age_mae", "gender_accuracy", "ethnicity_accuracy") if k in o}
    m = cfg["model"]
    return {
        "name": entry.name, "arch": entry.arch, "width": entry.width, "depth": entry.depth,
        "input_size": m["input_size"], "channels": m.get("channels", 3), "params": cfg.get("params"), "macs": cfg.get("macs"),
        "epochs": cfg.get("train", {}).get("epochs"), "epochs_run": cfg.get("epochs_run"),
        "train_seconds": cfg.get("train_seconds"), "seconds_per_epoch": cfg.get("seconds_per_epoch"),
        "time_limited": bool(cfg.get("time_limited")), "interrupted": bool(cfg.get("interrupted")),
        "train_limit": cfg.get("train", {}).get("limit"),
        "val_float": val or None, "test_float": test_float, "test_int8": test_int8,
        "int8_bytes": int8.stat().st_size, "int8_latency": int8_latency(int8, threads=1, n=latency_n),
        "model_dir": str(model_dir), "int8_path": str(int8),
    }


def load_results(path: Path) -> dict:
    """The grid's JSON (or an empty one)."""
    if path.is_file():
        try:
            res = json.loads(path.read_text())
            if res.get("schema_version") == SCHEMA_VERSION:
                return res
        except json.JSONDecodeError:
            pass
    return {"schema_version": SCHEMA_VERSION, "models": []}


def add_pareto(res: dict) -> dict:
    """Names on the Pareto fronts (lower latency/size and lower MAE / higher gender accuracy)."""
    ms = [m for m in res["models"] if m.get("test_int8")]
    lat = [m["int8_latency"]["p50_ms"] for m in ms]
    size = [m["int8_bytes"] for m in ms]
    mae = [m["test_int8"]["age_mae"] for m in ms]
    gerr = [-m["test_int8"]["gender_accuracy"] for m in ms]
    res["pareto"] = {
        "age_mae_vs_latency": [ms[i]["name"] for i in pareto_front(lat, mae)],
        "age_mae_vs_size": [ms[i]["name"] for i in pareto_front(size, mae)],
        "gender_accuracy_vs_latency": [ms[i]["name"] for i in pareto_front(lat, gerr)],
        "gender_accuracy_vs_size": [ms[i]["name"] for i in pareto_front(size, gerr)],
    }
    return res


def plot_grid(res: dict, out_png: str | Path) -> Path:
    """2x2 scatter: test age MAE and gender accuracy (int8) against int8 latency and file size, fronts drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [m for m in res["models"] if m.get("test_int8")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    xs = {"latency": [m["int8_latency"]["p50_ms"] for m in ms], "size": [m["int8_bytes"] / 1024 for m in ms]}
    ys = {"age_mae": [m["test_int8"]["age_mae"] for m in ms],
          "gender_accuracy": [100 * m["test_int8"]["gender_accuracy"] for m in ms]}
    xlabel = {"latency": "int8 latency per face, 1 thread (ms)", "size": "int8 file size (KB)"}
    ylabel = {"age_mae": "test age MAE (years, lower is better)",
              "gender_accuracy": "test gender accuracy (%, higher is better)"}
    archs = sorted({m["arch"] for m in ms})
    for r, yk in enumerate(("age_mae", "gender_accuracy")):
        for c, xk in enumerate(("latency", "size")):
            ax = axes[r][c]
            for a in archs:
                sel = [i for i, m in enumerate(ms) if m["arch"] == a]
                ax.scatter([xs[xk][i] for i in sel], [ys[yk][i] for i in sel], s=50, label=a, zorder=3)
            for i, m in enumerate(ms):
                ax.annotate(f"w{m['width']:g}" + ("" if m["depth"] == 1.0 else f" d{m['depth']:g}")
                            + (f" {m['input_size']}px" if m.get("input_size") != res["config"].get("input_size")
                               else "") + (" gray" if m.get("channels") == 1 else ""),
                            (xs[xk][i], ys[yk][i]), textcoords="offset points", xytext=(5, 4), fontsize=8)
            sign = 1 if yk == "age_mae" else -1
            front = pareto_front(xs[xk], [sign * v for v in ys[yk]])
            if len(front) > 1:
                ax.plot([xs[xk][i] for i in front], [ys[yk][i] for i in front], "k--", lw=1, label="Pareto front")
            ax.set_xlabel(xlabel[xk])
            ax.set_ylabel(ylabel[yk])
            ax.ticklabel_format(useOffset=False)
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend(fontsize=8)
    cfg = res.get("config", {})
    sizes = {m.get("input_size") for m in res["models"]}
    px = f"{sizes.pop()} px" if len(sizes) == 1 else "input size as named"
    fig.suptitle(f"architecture grid: int8 on the test split ({res.get('data', '?')}, "
                 f"{cfg.get('epochs', '?')} epochs max, {px})")
    from edgeag.benchmarks.common import save_figure

    return save_figure(fig, out_png)


def run_grid(data: str | Path, *, split_file: str | Path | None = None, grid: str = DEFAULT_GRID,
             work: str | Path = "runs/arch_grid", out: str | Path = "benchmarks/results",
             epochs: int = 12, patience: int = 4, limit: int | None = None, input_size: int = 80,
             budget_min: float | None = None, model_budget_min: float | None = None, force: bool = False,
             float_eval: bool = True, latency_n: int = 300, seed: int = 0, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Train, quantize, evaluate and time every grid entry not yet in ``out/arch_grid.json``; returns the results."""
    from edgeag.train.datasets import Dataset

    data, work, out = Path(data), Path(work), Path(out)
    Dataset(data, split_file)  # fail early on a missing data path or unknown format
    if split_file and not Path(split_file).is_file():
        raise BadInputError(f"split file not found: {split_file}")
    if epochs < 1:
        raise BadInputError("--epochs must be at least 1")
    entries = parse_grid(grid)
    json_path, png_path = out / "arch_grid.json", out / "arch_grid.png"
    res = load_results(json_path)
    if force:
        res["models"] = [m for m in res["models"] if m["name"] not in {e.name for e in entries}]
    res.update({
        "schema_version": SCHEMA_VERSION, "data": data.name, "split_file": Path(split_file).name if split_file else None,
        "config": {"grid": grid, "epochs": epochs, "patience": patience, "limit": limit, "input_size": input_size,
                   "budget_min": budget_min, "model_budget_min": model_budget_min, "seed": seed},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
    })
    done = {m["name"] for m in res["models"]}
    t_start = time.time()
    per_mmac_epoch: list[float] = []  # seconds per epoch per million MACs, to estimate what fits the budget
    skipped_budget = []
    for e in entries:
        if e.name in done:
            log(f"{e.name}: results exist, skipped")
            continue
        model_dir = work / e.name
        if force and model_dir.exists():
            import shutil

            shutil.rmtree(model_dir)
        seconds = model_budget_min * 60 if model_budget_min else None
        if budget_min:
            left = budget_min * 60 - (time.time() - t_start)
            if per_mmac_epoch and left < _estimate(e, input_size, epochs, per_mmac_epoch):
                skipped_budget.append(e.name)
                log(f"{e.name}: not started, the remaining budget ({left / 60:.0f} min) is below its estimate")
                continue
            if left <= 60:
                skipped_budget.append(e.name)
                continue
            seconds = min(seconds or left, left)
        log(f"{e.name}: training (up to {epochs} epochs" + (f", {seconds / 60:.0f} min" if seconds else "") + ")")
        cfg = train_entry(e, model_dir, data, split_file and Path(split_file), input_size=input_size, epochs=epochs,
                          limit=limit, patience=patience, seconds=seconds, seed=seed, progress=progress)
        if cfg.get("seconds_per_epoch") and cfg.get("macs"):
            per_mmac_epoch.append(cfg["seconds_per_epoch"] / (cfg["macs"] / 1e6))
        log(f"{e.name}: quantizing to int8, evaluating on the test split, timing")
        r = evaluate_entry(e, model_dir, data, split_file and Path(split_file), float_eval=float_eval,
                           latency_n=latency_n, progress=progress)
        res["models"] = [m for m in res["models"] if m["name"] != e.name] + [r]
        res["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        add_pareto(res)
        out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2) + "\n")  # after every model: a crash loses one at most
        plot_grid(res, png_path)
        t = r["test_int8"]
        log(f"{e.name}: test MAE {t['age_mae']:.2f}, gender {100 * t['gender_accuracy']:.1f}% (int8), "
            f"{r['int8_latency']['p50_ms']:.3f} ms/face, {r['int8_bytes'] / 1024:.0f} KB")
        if cfg.get("interrupted") and not cfg.get("time_limited"):
            log("interrupted: stopping the grid (run the same command again to continue)")
            break
    res["not_run"] = skipped_budget
    if res["models"]:
        add_pareto(res)
        out.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2) + "\n")
        plot_grid(res, png_path)
    return res


def _estimate(e: GridEntry, input_size: int, epochs: int, per_mmac_epoch: list[float]) -> float:
    """Seconds one entry should take, from the seconds per epoch per MMAC measured on earlier entries."""
    from edgeag.train.model import ModelConfig, build_model, count_macs

    size = e.size or input_size
    macs = count_macs(build_model(ModelConfig(arch=e.arch, input_size=size, channels=e.channels, width=e.width,
                                              depth=e.depth)))
    return float(np.median(per_mmac_epoch)) * macs / 1e6 * epochs


def main(
    data: Path = typer.Argument(..., help="UTKFace folder/archive (as for `edgeag train`)."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="CSV file,split (default: hash split)."),
    grid: str = typer.Option(DEFAULT_GRID, help="Entries arch:width[:depth][@SIZE[g]], comma-separated "
                             "(@48g: 48 px grayscale, the Kaggle CSV's format)."),
    work: Path = typer.Option(Path("runs/arch_grid"), help="Folder for the trained models and int8 files."),
    out: Path = typer.Option(Path("benchmarks/results"), help="Folder for arch_grid.json and arch_grid.png."),
    epochs: int = typer.Option(12, help="Epoch budget per model (early stopping may end sooner)."),
    patience: int = typer.Option(4, help="Early-stopping patience (epochs)."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N training records (smoke tests)."),
    input_size: int = typer.Option(80, help="Crop size in pixels."),
    budget_min: Optional[float] = typer.Option(None, help="Wall-clock budget of the whole run, minutes."),
    model_budget_min: Optional[float] = typer.Option(None, help="Wall-clock limit of one model's training, minutes."),
    force: bool = typer.Option(False, "--force", help="Retrain the listed models even if results exist."),
    no_float_eval: bool = typer.Option(False, "--no-float-eval", help="Skip the float model's test evaluation."),
) -> None:
    """Train, quantize, evaluate and time a grid of architectures (see the module docstring)."""
    res = run_grid(data, split_file=split_file, grid=grid, work=work, out=out, epochs=epochs, patience=patience,
                   limit=limit, input_size=input_size, budget_min=budget_min, model_budget_min=model_budget_min,
                   force=force, float_eval=not no_float_eval)
    print_table(res)
    print(f"results: {Path(out) / 'arch_grid.json'}, plot: {Path(out) / 'arch_grid.png'}")


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"architecture grid ({res.get('data')}, test split, int8)", title_justify="left")
    for col in ("model", "params", "MMACs", "epochs", "age MAE", "float MAE", "gender", "ms/face", "KB", "Pareto"):
        t.add_column(col, justify="left" if col in ("model", "Pareto") else "right")
    front = set(res.get("pareto", {}).get("age_mae_vs_latency", []))
    for m in sorted(res["models"], key=lambda m: m["int8_latency"]["p50_ms"]):
        ti, tf = m["test_int8"], m.get("test_float") or {}
        t.add_row(m["name"], f"{(m['params'] or 0) / 1e3:.0f}k", f"{(m['macs'] or 0) / 1e6:.1f}",
                  f"{m['epochs_run']}/{m['epochs']}" + (" (time)" if m.get("time_limited") else ""),
                  f"{ti['age_mae']:.2f}", f"{tf['age_mae']:.2f}" if tf else "n/a",
                  f"{100 * ti['gender_accuracy']:.1f}%", f"{m['int8_latency']['p50_ms']:.3f}",
                  f"{m['int8_bytes'] / 1024:.0f}", "*" if m["name"] in front else "")
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 140)
    console.print(t)
    if res.get("not_run"):
        console.print(f"not run (budget): {', '.join(res['not_run'])}: run the same command again to continue")


def cli() -> None:
    from edgeag.benchmarks.common import exits_cleanly

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(help=__doc__.split("\n\n")[0])(exits_cleanly(main))
    app()


if __name__ == "__main__":
    cli()
