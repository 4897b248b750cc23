"""Peak memory of `edgeag predict` on a huge JPEG (12000x12000 by default) against a 640x480 one.

    python benchmarks/big_image_memory.py [--side 12000]

Both JPEGs are generated in a temporary folder; each `edgeag predict` runs in its own process and its peak
resident set size (ru_maxrss of the child) is printed. Big images are decoded reduced (edge/images.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeag.benchmarks.common import exits_cleanly
from edgeag.errors import EdgeagError


def peak_rss_mb(image: Path) -> float:
    """Peak RSS (MB) of one `edgeag predict IMAGE --json` process (its own rusage, from wait4)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgeag.cli", "predict", str(image), "--json", "-"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise EdgeagError(f"edgeag predict failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024


def make_jpeg(path: Path, width: int, height: int) -> None:
    """A JPEG with a smooth pattern, built in bands (uint8 only: about width*height*3 bytes in memory)."""
    import cv2

    img = np.empty((height, width, 3), np.uint8)
    x = np.arange(width)
    for y0 in range(0, height, 1000):
        y = np.arange(y0, min(height, y0 + 1000))[:, None]
        img[y0:y0 + len(y), :, 0] = (x // 47) % 256
        img[y0:y0 + len(y), :, 1] = (y // 31) % 256
        img[y0:y0 + len(y), :, 2] = ((x + y) // 97) % 256
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 85])


@exits_cleanly
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=12000)
    ap.add_argument("--make", nargs=3, metavar=("PATH", "W", "H"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.make:
        make_jpeg(Path(args.make[0]), int(args.make[1]), int(args.make[2]))
        return
    with tempfile.TemporaryDirectory() as d:
        small, big = Path(d) / "small.jpg", Path(d) / "big.jpg"
        # Made in child processes: Linux carries a parent's peak RSS into the rusage of a child it forks.
        for path, w, h in ((small, 640, 480), (big, args.side, args.side)):
            subprocess.run([sys.executable, __file__, "--make", str(path), str(w), str(h)], check=True)
        print(f"640x480 JPEG: peak RSS {peak_rss_mb(small):.0f} MB")
        print(f"{args.side}x{args.side} JPEG ({big.stat().st_size / 1e6:.1f} MB file): "
              f"peak RSS {peak_rss_mb(big):.0f} MB")


if __name__ == "__main__":
    main()
