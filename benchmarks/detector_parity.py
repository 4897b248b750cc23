"""Our BlazeFace (LiteRT + ``edge/blazeface.py``) against MediaPipe's own FaceDetector, same model file.

    pip install mediapipe   # only for this check; the runtime does not need it
    python -m edgeag.benchmarks.detector_parity --data ../shared/data

Images: UTKFace test faces pasted at random sizes (32 to 200 px) into generated scenes (``scenes.py``), and
FG-NET photographs as they are (scanned prints, some grayscale). Per detector: faces found by each, faces
found by one only (allowed only when their score is within ``--margin`` of the threshold: a borderline
face), and for the faces both found the largest difference of box coordinates in pixels (ours truncated
to integers as MediaPipe reports them, and as floats), of eye positions, and of scores.
Writes ``--out`` (JSON). tests/test_detector.py runs the same comparison on fewer images.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import typer

from edgeag.benchmarks.common import exits_cleanly, write_json

app = typer.Typer(add_completion=False)


def mediapipe_detector(path: Path, min_confidence: float):
    """A function RGB -> [(box x, y, w, h as MediaPipe's integers, score, right eye, left eye)] (pixels);
    call its ``close()`` when done."""
    hide = "tensorflow" not in sys.modules  # mediapipe.tasks would import TensorFlow for its docs only
    if hide:
        sys.modules["tensorflow"] = None
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    finally:
        if hide:
            del sys.modules["tensorflow"]
    task = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_buffer=Path(path).read_bytes()),
        min_detection_confidence=min_confidence))

    def detect(rgb: np.ndarray) -> list[tuple]:
        h, w = rgb.shape[:2]
        out = []
        for d in task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))).detections:
            b, k = d.bounding_box, d.keypoints
            out.append(((b.origin_x, b.origin_y, b.width, b.height), d.categories[0].score,
                        (k[0].x * w, k[0].y * h), (k[1].x * w, k[1].y * h)))
        return out

    detect.close = task.close  # close before exit: MediaPipe's own finalizer fails at interpreter shutdown
    return detect


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union > 0 else 0.0


def compare(name: str, images: list[tuple[str, np.ndarray]], min_confidence: float = 0.5,
            margin: float = 0.03) -> dict:
    """Our detector against MediaPipe's on ``images`` [(label, RGB)] (see the module docstring)."""
    from edgeag.edge.detector import FaceDetector

    ours = FaceDetector(name, min_confidence=min_confidence)
    theirs = mediapipe_detector(ours.path, min_confidence)
    r = {"detector": name, "images": len(images), "faces_ours": 0, "faces_mediapipe": 0, "matched": 0,
         "only_ours": [], "only_mediapipe": [], "max_box_dev_px": 0.0, "max_box_dev_float_px": 0.0,
         "max_eye_dev_px": 0.0, "max_score_dev": 0.0}
    try:
        pairs = [(label, ours.detect(rgb), theirs(rgb)) for label, rgb in images]
    finally:
        theirs.close()
    for label, a, b in pairs:
        r["faces_ours"] += len(a)
        r["faces_mediapipe"] += len(b)
        unused = list(range(len(a)))
        for box, score, reye, leye in b:
            j = max(unused, key=lambda i: _iou(a[i].box, box), default=None)
            if j is None or _iou(a[j].box, box) < 0.5:
                r["only_mediapipe"].append([label, round(score, 4)])
                continue
            unused.remove(j)
            d = a[j]
            r["matched"] += 1
            dev = max(abs(int(u) - v) for u, v in zip(d.box, box))
            r["max_box_dev_px"] = max(r["max_box_dev_px"], dev)
            r["max_box_dev_float_px"] = max(r["max_box_dev_float_px"], max(abs(u - v) for u, v in zip(d.box, box)))
            eyes = max(abs(p - q) for e, f in ((d.right_eye, reye), (d.left_eye, leye)) for p, q in zip(e, f))
            r["max_eye_dev_px"] = max(r["max_eye_dev_px"], eyes)
            r["max_score_dev"] = max(r["max_score_dev"], abs(d.score - score))
        r["only_ours"] += [[label, round(a[i].score, 4)] for i in unused]
    border = min_confidence + margin
    r["unexplained"] = [x for x in r["only_ours"] + r["only_mediapipe"] if x[1] >= border]
    for k in ("max_box_dev_float_px", "max_eye_dev_px", "max_score_dev"):
        r[k] = round(float(r[k]), 4)
    return r


def parity_images(data: Path, n_utk: int = 200, n_fgnet: int = 100, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """UTKFace test faces (1 to 3 per frame, 32-200 px) in generated scenes, and FG-NET photos as they are."""
    from edgeag.benchmarks.face_size import load_test_faces
    from edgeag.benchmarks.scenes import camera, paste, places, scene
    from edgeag.edge.images import ImageError, decode_bgr

    rng = np.random.default_rng(seed)
    faces = load_test_faces(data / "UTKFace.tar", data / "utkface_split.csv", n_utk)
    out = []
    while faces:
        side = int(rng.integers(32, 201))
        img = scene(rng)
        spots = places(rng, int(rng.integers(1, 4)), side, img.shape[1], img.shape[0])
        for rec, (x, y) in zip(faces, spots):
            paste(img, rec.image, x, y, side)
        out.append((f"utk:{faces[0].id}@{side}", camera(img, rng)))
        del faces[:len(spots)]
    with tarfile.open(data / "FGNET.tar") as tf:
        members = sorted((m for m in tf if m.isfile() and m.name.lower().endswith(".jpg")), key=lambda m: m.name)
        for m in members[::max(1, len(members) // n_fgnet)][:n_fgnet]:
            try:
                out.append((f"fgnet:{Path(m.name).name}", decode_bgr(tf.extractfile(m).read(), reduce_above=None).rgb))
            except ImageError:
                continue
    return out


@app.command()
@exits_cleanly
def main(
    data: Path = typer.Option(Path("../shared/data"), "--data", help="Folder with UTKFace.tar, "
                              "utkface_split.csv and FGNET.tar."),
    utk: int = typer.Option(300, "--utk", help="UTKFace test faces to paste."),
    fgnet: int = typer.Option(200, "--fgnet", help="FG-NET photos."),
    min_confidence: float = typer.Option(0.5, "--min-confidence"),
    out: Path = typer.Option(Path("benchmarks/results/detector_parity.json"), "--out"),
) -> None:
    """Same faces, boxes and scores as MediaPipe's FaceDetector? Both bundled detectors."""
    from importlib.metadata import version

    images = parity_images(data, utk, fgnet)
    res = {"tool": "python -m edgeag.benchmarks.detector_parity", "mediapipe": version("mediapipe"),
           "ai_edge_litert": version("ai-edge-litert"), "min_confidence": min_confidence,
           "results": [compare(name, images, min_confidence) for name in ("full", "short")]}
    for r in res["results"]:
        typer.echo(f"{r['detector']}: {r['images']} images, {r['matched']} faces matched of {r['faces_ours']} "
                   f"(ours) / {r['faces_mediapipe']} (MediaPipe), {len(r['unexplained'])} unexplained; "
                   f"max box dev {r['max_box_dev_px']} px (float {r['max_box_dev_float_px']}), eyes "
                   f"{r['max_eye_dev_px']} px, score {r['max_score_dev']}", err=True)
    write_json(res, out, indent=1)


if __name__ == "__main__":
    app()
