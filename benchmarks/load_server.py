"""Load test of `edgeag serve`: requests/s and latency percentiles at a few concurrency levels.

    python benchmarks/load_server.py                       # starts a server on 127.0.0.1, 1 and 2 clients
    python benchmarks/load_server.py --save                # writes benchmarks/results/serve_load.json
    python benchmarks/load_server.py --url http://127.0.0.1:8000   # an already running server

Loopback only and bounded: a fixed number of requests per level, cut short after --max-seconds.
Every request is one JPEG with a single face (a UTKFace test face pasted into a 640x480 scene, read from
../shared/data at run time, or --image FILE). Numbers depend on whatever else the CPU is doing: say so.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from edgeag.benchmarks.common import exits_cleanly, write_json
from edgeag.errors import BadInputError, EdgeagError

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EDGEAG_SHARED", ROOT.parent / "shared")) / "data"
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"


def default_image() -> bytes:
    """A 640x480 JPEG with one UTKFace face pasted at the centre (never written to disk)."""
    import cv2

    from edgeag.edge.images import decode_bgr

    tar = DATA / "UTKFace.tar"
    if not tar.is_file():
        raise BadInputError(f"{tar} not found: pass --image FILE (a photo with one face)")
    with tarfile.open(tar) as tf:
        member = next(m for m in tf if m.isfile() and os.path.basename(m.name).count("_") >= 3)
        face = decode_bgr(tf.extractfile(member).read()).bgr
    scene = np.full((480, 640, 3), 110, np.uint8)
    h, w = face.shape[:2]
    scene[(480 - h) // 2:(480 - h) // 2 + h, (640 - w) // 2:(640 - w) // 2 + w] = face
    return cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def start_server(workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    """`edgeag serve --port 0` in a subprocess (so client and server do not share a GIL); its URL."""
    p = subprocess.Popen([sys.executable, "-m", "edgeag.cli", "serve", "--port", "0", "--workers", str(workers),
                          "--threads", str(threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = p.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        p.kill()
        raise EdgeagError(f"the server did not start (got {url!r})")
    return p, url


def wait_ready(url: str, timeout: float = 60) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url + "/healthz", timeout=5).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise EdgeagError(f"no answer from {url}/healthz")
            time.sleep(0.2)


def run_level(url: str, body: bytes, concurrency: int, requests: int, max_seconds: float) -> dict:
    """`requests` POSTs shared by `concurrency` client threads (one keep-alive connection each)."""
    import httpx

    lat, server_ms, wait_ms, errors = [], [], [], []
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        with httpx.Client(timeout=60, headers={"content-type": "image/jpeg"}) as c:
            while True:
                with lock:
                    if issued[0] >= requests or time.monotonic() > deadline:
                        return
                    issued[0] += 1
                t0 = time.perf_counter()
                r = c.post(url + "/v1/analyze", content=body)
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    if r.status_code != 200:
                        errors.append(r.status_code)
                        continue
                    t = r.json()["timings"]
                    lat.append(dt)
                    server_ms.append(t["total_ms"])
                    wait_ms.append(t.get("wait_ms", 0.0))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    a = np.array(lat) if lat else np.zeros(1)
    return {"concurrency": concurrency, "requests": len(lat), "errors": len(errors), "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 2),
            "latency_ms": {"mean": round(float(a.mean()), 1),
                           **{f"p{q}": round(float(np.percentile(a, q)), 1) for q in (50, 90, 99)}},
            "server_total_ms_p50": round(float(np.median(server_ms)), 1) if server_ms else None,
            "server_wait_ms_p50": round(float(np.median(wait_ms)), 1) if wait_ms else None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="target a running server (loopback only); default: start one")
    ap.add_argument("--image", type=Path, help="image to send (default: a UTKFace face in a 640x480 scene)")
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level (default 200)")
    ap.add_argument("--concurrency", default="1,2", help="comma-separated client counts (default 1,2)")
    ap.add_argument("--max-seconds", type=float, default=30, help="time cap per level (default 30)")
    ap.add_argument("--workers", type=int, default=2, help="analyzers of the started server (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="LiteRT threads per analyzer (default 1)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--save", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    ap.add_argument("--out", type=Path, help="write the JSON here instead")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. other load)")
    args = ap.parse_args(argv)
    try:
        args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        args.levels = []
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 16 or not 1 <= args.requests <= 10_000:
        raise BadInputError("--concurrency in 1..16, --requests in 1..10000")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise BadInputError("load tests target loopback servers only (127.0.0.1 / localhost)")
    if args.image and not args.image.is_file():
        raise BadInputError(f"image not found: {args.image}")
    return args


def load_levels(url: str, body: bytes, args: argparse.Namespace) -> tuple[int, list[dict]]:
    """Faces the server finds in ``body``, and every concurrency level's figures (after the warm-up)."""
    import httpx

    first = httpx.post(url + "/v1/analyze", content=body, timeout=60)
    if first.status_code != 200:
        raise BadInputError(f"the server refused the image: {first.text}")
    for _ in range(args.warmup):
        httpx.post(url + "/v1/analyze", content=body, timeout=60)
    return len(first.json()["faces"]), [run_level(url, body, c, args.requests, args.max_seconds) for c in args.levels]


def print_levels(url: str, body: bytes, faces: int, health: dict, results: list[dict]) -> None:
    print(f"edgeag serve load test: {url}, image {len(body) / 1024:.0f} KB with {faces} face(s), "
          f"server workers={health.get('workers')}")
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'mean ms':>8} {'p50':>7} {'p90':>7} {'p99':>7} "
          f"{'server p50':>10} {'queue p50':>9}")
    for r in results:
        lm = r["latency_ms"]
        print(f"{r['concurrency']:>7} {r['requests']:>8} {r['requests_per_s']:>7.1f} {lm['mean']:>8.1f} "
              f"{lm['p50']:>7.1f} {lm['p90']:>7.1f} {lm['p99']:>7.1f} {r['server_total_ms_p50']:>10} "
              f"{r['server_wait_ms_p50']:>9}" + (f"  ({r['errors']} errors)" if r["errors"] else ""))


@exits_cleanly
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    body = args.image.read_bytes() if args.image else default_image()
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        proc, url = start_server(args.workers, args.threads)
    try:
        health = wait_ready(url)
        faces, results = load_levels(url, body, args)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # graceful shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print_levels(url, body, faces, health, results)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "url": url,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "load_avg_1min_at_end": load},
              "server": {"workers": health.get("workers"), "threads": args.threads if proc else None,
                         "model": health.get("model"), "version": health.get("version")},
              "image": {"bytes": len(body), "faces": faces, "source": str(args.image or "UTKFace test face, 640x480")},
              "levels": results, "note": args.note}
    out = args.out or (RESULTS if args.save else None)
    if out:
        print(f"wrote {write_json(report, out)}")
    return report


if __name__ == "__main__":
    main()
