"""How small may a face be before its age and gender are noise? The measurement behind ``--min-face``.

    python -m edgeag.benchmarks.attributes_by_face_size --data ../shared/data/UTKFace.tar \\
        --split-file ../shared/data/utkface_split.csv

Each test-split face is found by the bundled detector at full resolution; the whole image is then shrunk
so that the detected box is W pixels wide, and the face is cropped from that low-resolution image with the
detection scaled alike (``crop_face``, as at run time: the crop is upsampled to the model's input). So only
the face's pixel size differs between columns, not detection. Writes ``--out`` (JSON) and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from edgeag.benchmarks.common import DataOpt, OutOpt, SplitFileOpt, exits_cleanly, write_json
from edgeag.errors import BadInputError

app = typer.Typer(add_completion=False)


def shrink(rgb: np.ndarray, det, width_px: float):
    """``rgb`` resized so that ``det``'s box is ``width_px`` wide, and ``det`` scaled alike."""
    import cv2

    from edgeag.edge.crop import Detection

    s = width_px / det.box[2]
    h, w = rgb.shape[:2]
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    sx, sy = nw / w, nh / h
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    x, y, bw, bh = det.box
    eye = (lambda p: None if p is None else (p[0] * sx, p[1] * sy))
    return small, Detection((x * sx, y * sy, bw * sx, bh * sy), det.score, eye(det.right_eye), eye(det.left_eye))


def classify_at_widths(clf, det, records, widths: list[int]) -> tuple[dict, list, list, int]:
    """Predictions for every record's detected face at its native size and shrunk to each width (batches of 64:
    crops are not all kept, memory); returns (predictions by width, labels, native widths, faces missed)."""
    from edgeag.edge.crop import crop_face

    preds: dict = {w: [] for w in ["native", *widths]}
    labels, native_w, missed, batch = [], [], 0, []

    def flush() -> None:
        for w in preds:
            x = [crop_face(rgb, d, clf.crop_spec) if w == "native" else crop_face(*shrink(rgb, d, w), clf.crop_spec)
                 for rgb, d in batch]
            preds[w].append(clf.predict(np.stack(x)))
        batch.clear()

    for rec in records:
        rgb = rec.image if rec.image.ndim == 3 else np.repeat(rec.image[:, :, None], 3, axis=2)
        found = det.detect(rgb)
        if not found:
            missed += 1
            continue
        batch.append((rgb, found[0]))
        labels.append((rec.age, rec.gender, rec.ethnicity))
        native_w.append(found[0].box[2])
        if len(batch) == 64:
            flush()
    if batch:
        flush()
    return preds, labels, native_w, missed


def score(preds: dict, labels: list) -> tuple[dict, dict]:
    """Age MAE, gender and ethnicity accuracy per width, and those of a constant guess."""
    age, gender, eth = (np.array(v) for v in zip(*labels))
    rows = {}
    for w, parts in preds.items():
        p = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
        rows[str(w)] = {"age_mae": float(np.abs(p["age"] - age).mean()),
                        "gender_accuracy": float(((p["p_female"] >= 0.5) == (gender == 1)).mean()),
                        "ethnicity_accuracy": float((p["ethnicity"].argmax(1) == eth).mean())}
    chance = {"age_mae": float(np.abs(age - np.median(age)).mean()),  # always guessing the median age
              "gender_accuracy": float(max(gender.mean(), 1 - gender.mean())),
              "ethnicity_accuracy": float(np.bincount(eth).max() / len(eth))}
    return rows, chance


def print_table(res: dict) -> None:
    rows, chance = res["by_width_px"], res["constant_guess"]
    print(f"{res['model']}: {res['faces']} test faces ({res['no_face_found']} without a detection), native box width "
          f"median {res['native_width_px_median']:.0f} px")
    print("| face width | " + " | ".join(rows) + " | constant guess |")
    for k, name, f in (("age_mae", "age MAE (years)", "{:.2f}"), ("gender_accuracy", "gender accuracy", "{:.1%}"),
                       ("ethnicity_accuracy", "ethnicity accuracy", "{:.1%}")):
        print(f"| {name} | " + " | ".join(f.format(r[k]) for r in rows.values()) + f" | {f.format(chance[k])} |")
    print(f"suggested --min-face: {res['suggested_min_face']} px (smallest width at which every attribute keeps at "
          "least half of the model's advantage over a constant guess)")


@app.command()
@exits_cleanly
def main(
    data: DataOpt,
    split_file: SplitFileOpt = None,
    widths: str = typer.Option("8,12,16,20,24,32,40,48,64", help="Face widths (detected box, pixels) to measure."),
    model: Path = typer.Option(None, "--model", help="Classifier .tflite (default: the bundled model)."),
    out: OutOpt = Path("benchmarks/results/attributes_by_face_size.json"),
) -> None:
    """Age MAE, gender and ethnicity accuracy of the model on test faces shrunk to each width."""
    from edgeag.edge.classifier import AgeGenderClassifier
    from edgeag.edge.detector import FaceDetector
    from edgeag.train.datasets import Dataset

    try:
        sizes = [int(v) for v in widths.split(",")]
    except ValueError:
        raise BadInputError(f"--widths must be comma-separated integers, got {widths!r}") from None
    clf = AgeGenderClassifier(model)
    preds, labels, native_w, missed = classify_at_widths(clf, FaceDetector(), Dataset(data, split_file).records("test"),
                                                         sizes)
    rows, chance = score(preds, labels)
    res = {"model": clf.path.name, "faces": len(labels), "no_face_found": missed,
           "native_width_px_median": float(np.median(native_w)), "by_width_px": rows, "constant_guess": chance,
           "suggested_min_face": suggest(rows, chance, sizes)}
    write_json(res, out)
    print_table(res)


def suggest(rows: dict, chance: dict, sizes: list[int]) -> int | None:
    """The smallest width from which on every attribute keeps at least half of the native-size model's
    advantage over a constant guess (age: MAE under the midpoint; accuracies: over it)."""
    ok = []
    for w in sizes:
        r, n = rows[str(w)], rows["native"]
        ok.append(r["age_mae"] <= (n["age_mae"] + chance["age_mae"]) / 2
                  and all(r[k] >= (n[k] + chance[k]) / 2 for k in ("gender_accuracy", "ethnicity_accuracy")))
    good = [w for i, w in enumerate(sizes) if all(ok[i:])]
    return good[0] if good else None


if __name__ == "__main__":
    app()
