"""CPU time per frame of `edgeag run --video` itself, per detector: the figure behind README's frame rates.

    python -m edgeag.benchmarks.run_cpu --detectors auto,tiled,full,short --rounds 2

Makes the 3-face test video (``tests/video_fixture.py``: three UTKFace faces of 160 px moving in a 640x480
frame, 300 frames, and a 1-frame copy), then runs ``edgeag run --video V --headless --threads 1 -q --detector D``
on both, detectors interleaved, ``--rounds`` times. CPU time per frame = (user + system CPU of the 300-frame run
minus that of the 1-frame run, which holds start-up and model loading) / 299; "FPS on a free core" is 1000
over that. CPU time, not wall time, so a busy machine inflates it less (it still does: caches, clocks).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from edgeag.benchmarks.common import DetectorsOpt, OutOpt, exits_cleanly, machine_facts, write_json

app = typer.Typer(add_completion=False)
FRAMES = 300


def child_cpu_s(cmd: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one command run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def make_videos(folder: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import video_fixture as vf  # the tests' generator: UTKFace faces from ../shared/data

    faces = vf.pick_faces()
    return (vf.make_video(folder / "faces3.mp4", faces, n_frames=FRAMES).path,
            vf.make_video(folder / "faces3_1.mp4", faces, n_frames=1).path)


@app.command()
@exits_cleanly
def main(
    detectors: DetectorsOpt = "auto,tiled,full,short",
    rounds: int = typer.Option(2, "--rounds", help="Runs per detector (interleaved)."),
    out: OutOpt = Path("benchmarks/results/run_cpu.json"),
) -> None:
    """CPU ms per frame of `edgeag run --video` (3 faces of 160 px, 640x480) per detector."""
    names = [d.strip() for d in detectors.split(",") if d.strip()]
    result = {"tool": "python -m edgeag.benchmarks.run_cpu", "machine": machine_facts(),
              "load_average_start": [round(v, 2) for v in os.getloadavg()], "frames": FRAMES, "runs": []}
    with tempfile.TemporaryDirectory() as d:
        long, short = make_videos(Path(d))
        for r in range(1, rounds + 1):
            for name in names:
                cmd = [sys.executable, "-m", "edgeag.cli", "run", "--headless", "--threads", "1", "-q",
                       "--detector", name, "--video"]
                cpu_long, wall = child_cpu_s(cmd + [str(long)])
                cpu_one, _ = child_cpu_s(cmd + [str(short)])
                ms = (cpu_long - cpu_one) * 1e3 / (FRAMES - 1)
                result["runs"].append({"round": r, "detector": name, "cpu_ms_per_frame": round(ms, 2),
                                       "fps_on_a_free_core": round(1000 / ms), "wall_s": round(wall, 2)})
                typer.echo(f"round {r} {name}: {ms:.2f} ms CPU per frame ({1000 / ms:.0f} FPS on a free core)",
                           err=True)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    write_json(result, out, indent=1)
    typer.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    app()
