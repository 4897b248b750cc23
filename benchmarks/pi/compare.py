#!/usr/bin/env python3
"""Compare edgeag's JSON output on an emulated Pi with the x86 reference: one line, exit 0 if it matches.

    python benchmarks/pi/compare.py LABEL REFERENCE.jsonl CANDIDATE.jsonl [--age-tol 2] [--iou 0.8]

Both files are JSON Lines written by ``edgeag predict --json -`` or ``edgeag run --json`` (the same
records: {"frame", "file", "faces", ...} per image or frame). Records are paired by file or frame; faces by
box overlap (IoU). A match means: the same records, the same number of faces in each, every face paired
with IoU >= --iou, the same gender, and ages within --age-tol years.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from edgeag.edge.tracker import iou


def read_records(path: Path) -> dict:
    """Records keyed by their file name or frame index."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[r.get("file", r.get("frame"))] = r
    return out


def compare(ref: dict, cand: dict, age_tol: float, min_iou: float) -> tuple[list[str], dict]:
    """(problems, counts) of the candidate against the reference."""
    problems: list[str] = []
    counts = {"records": len(ref), "faces": 0, "max_age_diff": 0.0, "min_iou": 1.0}
    if set(ref) != set(cand):
        problems.append(f"records differ: {len(ref)} reference, {len(cand)} here, "
                        f"{len(set(ref) ^ set(cand))} unpaired")
    for key in sorted(set(ref) & set(cand), key=str):
        rf, cf = ref[key].get("faces"), cand[key].get("faces")
        if rf is None or cf is None:
            problems.append(f"{key}: error {cand[key].get('error') or ref[key].get('error')}")
            continue
        if len(rf) != len(cf):
            problems.append(f"{key}: {len(rf)} faces in the reference, {len(cf)} here")
            continue
        for a in rf:
            b = max(cf, key=lambda f: iou(a["box"], f["box"]))
            o = iou(a["box"], b["box"])
            counts["faces"] += 1
            counts["min_iou"] = min(counts["min_iou"], o)
            if o < min_iou:
                problems.append(f"{key}: face at {a['box']} has no match (best IoU {o:.2f})")
                continue
            if a["gender"] != b["gender"]:
                problems.append(f"{key}: gender {a['gender']} in the reference, {b['gender']} here")
            if a["age"] is not None and b["age"] is not None:
                d = abs(a["age"] - b["age"])
                counts["max_age_diff"] = max(counts["max_age_diff"], d)
                if d > age_tol:
                    problems.append(f"{key}: age {a['age']:.1f} in the reference, {b['age']:.1f} here")
    if not ref:
        problems.append("the reference has no records")
    return problems, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("label")
    ap.add_argument("reference", type=Path)
    ap.add_argument("candidate", type=Path)
    ap.add_argument("--age-tol", type=float, default=2.0)
    ap.add_argument("--iou", type=float, default=0.8)
    a = ap.parse_args()
    if not a.candidate.is_file() or not a.candidate.stat().st_size:
        print(f"FAIL {a.label}: no output")
        return 1
    problems, c = compare(read_records(a.reference), read_records(a.candidate), a.age_tol, a.iou)
    facts = (f"{c['records']} records, {c['faces']} faces, min IoU {c['min_iou']:.3f}, "
             f"max age difference {c['max_age_diff']:.2f} y")
    if problems:
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        print(f"FAIL {a.label}: {'; '.join(problems[:2])}{more}; {facts}")
        return 1
    print(f"PASS {a.label}: same faces and genders as x86, {facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
