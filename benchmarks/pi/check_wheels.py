#!/usr/bin/env python3
"""Do the runtime's dependencies resolve to binary wheels for a Raspberry Pi (Linux aarch64, CPython 3.11)?

A cheap stand-in for benchmarks/pi/verify.sh that CI runs (.ci/run): pip resolves the ``[project]
dependencies`` of pyproject.toml for Raspberry Pi OS 64-bit (Debian bookworm: glibc 2.36, Python 3.11) with
``--only-binary :all:``, so a dependency that has no aarch64 wheel, or whose wheel needs a newer glibc, fails
here. ``pip install --dry-run --report`` reads only the wheels' metadata where the index serves it (PEP 658),
so nothing large is downloaded. It checks resolution, not that the wheels run (verify.sh does that).

    python benchmarks/pi/check_wheels.py [--python-version 3.11] [--glibc 2.36]

Prints one line per resolved package and exits 0 if everything resolved, 1 if not (pip's reason printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``[project] dependencies`` list (the runtime; no extras)."""
    import tomllib  # Python 3.11+

    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def aarch64_platforms(glibc_minor: int) -> list[str]:
    """Every manylinux tag a glibc 2.<minor> aarch64 system accepts (pip does not expand them itself)."""
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc_minor + 1)]


def resolve(reqs: list[str], python_version: str, glibc_minor: int) -> tuple[int, dict | None, str]:
    """(pip's exit code, its JSON install report, its stderr) for a metadata-only resolution."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
               "--ignore-installed", "--only-binary", ":all:", "--implementation", "cp",
               "--python-version", python_version, "--target", str(Path(tmp) / "target"), "--report", str(report)]
        for p in aarch64_platforms(glibc_minor):
            cmd += ["--platform", p]
        proc = subprocess.run(cmd + reqs, capture_output=True, text=True)
        data = json.loads(report.read_text()) if report.is_file() else None
    return proc.returncode, data, proc.stderr


def download(reqs: list[str], python_version: str, glibc_minor: int, dest: Path) -> int:
    """Download the same resolution's wheels into ``dest`` (verify.sh offers them to pip in the emulated root)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary",
           ":all:", "--implementation", "cp", "--python-version", python_version, "--dest", str(dest)]
    for p in aarch64_platforms(glibc_minor):
        cmd += ["--platform", p]
    return subprocess.run(cmd + reqs).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python-version", default="3.11", help="CPython version of the device (bookworm: 3.11)")
    ap.add_argument("--glibc", default="2.36", help="glibc of the device (bookworm: 2.36)")
    ap.add_argument("--download", type=Path, metavar="DIR", help="download the wheels (and the build's "
                    "setuptools and wheel) into DIR instead of checking")
    ap.add_argument("extra", nargs="*", help="with --download: more requirements (e.g. other versions to try)")
    args = ap.parse_args()
    reqs = runtime_requirements()
    minor = int(args.glibc.split(".")[1])
    if args.download:
        code = download(reqs + ["setuptools>=68", "wheel"], args.python_version, minor, args.download)
        return code or (download(args.extra, args.python_version, minor, args.download) if args.extra else 0)
    code, report, stderr = resolve(reqs, args.python_version, minor)
    where = f"linux aarch64, CPython {args.python_version}, glibc {args.glibc}"
    if code != 0 or report is None:
        reason = [ln for ln in stderr.strip().splitlines() if ln.strip()][-3:]
        print(f"FAIL wheels for {where}: {' | '.join(reason) or f'pip exit code {code}'}")
        return 1
    for item in report["install"]:
        meta = item["metadata"]
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        print(f"ok   {meta['name']} {meta['version']}: {wheel}")
    print(f"PASS {len(report['install'])} packages resolve to binary wheels for {where} ({', '.join(reqs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
