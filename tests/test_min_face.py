"""`--min-face PX`: faces narrower than PX keep box, score and track ID, with age, gender and ethnicity null.

One scene with a large and a smaller UTKFace test face; the threshold is put between their detected widths,
so exactly one face loses its attributes. Checked through the Python API (analyze and track), `edgeag
predict` and `edgeag run` (which also takes `--max-gap`), and the HTTP server.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import decode_rgb, needs_data
from test_runtime import jsonl, run_cli

ATTRS = ("age", "gender", "gender_confidence", "ethnicity", "ethnicity_confidence", "p_female")


def _scene(big: np.ndarray, small: np.ndarray | None) -> np.ndarray:
    import cv2

    from video_fixture import background

    scene = background(640, 480)
    scene[100:320, 40:260] = cv2.resize(big, (220, 220), interpolation=cv2.INTER_AREA)
    if small is not None:
        scene[150:280, 420:550] = cv2.resize(small, (130, 130), interpolation=cv2.INTER_AREA)
    return scene


@pytest.fixture(scope="module")
def scene_and_cut(utk_sample):
    """(scene, widths of its two detected faces, a --min-face between them)."""
    from edgeag import FaceAnalyzer

    scene = _scene(decode_rgb(utk_sample[1][1]), decode_rgb(utk_sample[4][1]))
    with FaceAnalyzer(min_face=0) as fa:
        faces = fa.analyze(scene)
    assert len(faces) == 2 and all(f.age is not None for f in faces)
    widths = sorted(f.box[2] for f in faces)
    assert widths[1] - widths[0] > 20, widths
    return scene, faces, (widths[0] + widths[1]) // 2


def _small_and_big(faces, cut):
    small = [f for f in faces if (f["box"] if isinstance(f, dict) else f.box)[2] < cut]
    big = [f for f in faces if (f["box"] if isinstance(f, dict) else f.box)[2] >= cut]
    assert len(small) == 1 and len(big) == 1
    return small[0], big[0]


@needs_data
def test_api_leaves_small_faces_without_attributes(scene_and_cut):
    from edgeag import FaceAnalyzer

    scene, base, cut = scene_and_cut
    with FaceAnalyzer(min_face=cut) as fa:
        faces = fa.analyze(scene)
    assert [f.box for f in faces] == [f.box for f in base] and [f.score for f in faces] == [f.score for f in base]
    small, big = _small_and_big(faces, cut)
    assert all(getattr(small, k) is None for k in ATTRS) and small.ethnicity_probs is None
    assert big.age == next(f.age for f in base if f.box == big.box) and big.gender in ("male", "female")
    d = json.loads(json.dumps(small.to_dict()))
    assert all(d[k] is None for k in ATTRS) and d["box"] == list(small.box) and d["score"] > 0
    with FaceAnalyzer(min_face=cut, video=True) as fa:  # tracked: an ID, still no attributes
        for i in range(3):
            faces = fa.track(scene, timestamp_ms=i * 40)
        small, big = _small_and_big(faces, cut)
        assert small.track_id is not None and small.track_id != big.track_id
        assert all(getattr(small, k) is None for k in ATTRS) and big.age is not None


@needs_data
def test_predict_min_face_gives_null_and_question_marks(scene_and_cut, tmp_path):
    import cv2

    scene, _, cut = scene_and_cut
    cv2.imwrite(str(tmp_path / "scene.png"), cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
    p = run_cli("predict", "scene.png", "--json", "-", "--min-face", cut, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    small, big = _small_and_big(jsonl(p.stdout)[0]["faces"], cut)
    assert all(small[k] is None for k in ATTRS) and big["age"] is not None
    assert '"age":null' in p.stdout
    p = run_cli("predict", "scene.png", "--min-face", cut, cwd=tmp_path)
    assert p.returncode == 0 and "? (?)" in p.stdout, p.stdout[-2000:]


@needs_data
def test_run_takes_min_face_and_max_gap(scene_and_cut, utk_sample, tmp_path):
    """A video: both faces, then the small one hidden for 15 frames (0.6 s at 25 FPS), then both again.
    The small face keeps its ID (default --max-gap 1.5 s) unless --max-gap is shorter than the gap; it has
    no attributes throughout."""
    import cv2

    scene, _, cut = scene_and_cut
    alone = _scene(decode_rgb(utk_sample[1][1]), None)
    writer = cv2.VideoWriter(str(tmp_path / "gap.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
    for i in range(40):
        writer.write(cv2.cvtColor(alone if 10 <= i < 25 else scene, cv2.COLOR_RGB2BGR))
    writer.release()
    ids = {}
    for gap in ("1.5", "0.3"):
        p = run_cli("run", "--video", "gap.mp4", "--headless", "--json", "-", "-q", "--min-face", cut,
                    "--max-gap", gap, cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        recs = jsonl(p.stdout)
        smalls = [f for r in recs for f in r["faces"] if f["box"][2] < cut]
        assert len(smalls) >= 20 and all(f[k] is None for f in smalls for k in ATTRS)
        assert all(f["track_id"] is not None for f in smalls)
        ids[gap] = {f["track_id"] for f in smalls}
    assert len(ids["1.5"]) == 1 and len(ids["0.3"]) == 2


def test_min_face_is_one_option_on_run_predict_and_serve(tmp_path):
    for cmd in ("run", "predict", "serve"):
        p = run_cli(cmd, "--help", cwd=tmp_path)
        assert p.returncode == 0 and "--min-face" in p.stdout, (cmd, p.stdout[-2000:])
    assert "--max-gap" in run_cli("run", "--help", cwd=tmp_path).stdout


@needs_data
def test_server_min_face(scene_and_cut):
    pytest.importorskip("fastapi")
    import cv2
    from fastapi.testclient import TestClient

    from edgeag.edge.server import create_app

    scene, _, cut = scene_and_cut
    ok, buf = cv2.imencode(".png", cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
    with TestClient(create_app(workers=1, min_face=cut)) as c:
        assert c.get("/v1/model").json()["server"]["min_face"] == cut
        r = c.post("/v1/analyze", content=buf.tobytes())
    assert r.status_code == 200, r.text
    small, big = _small_and_big(r.json()["faces"], cut)
    assert all(small[k] is None for k in ATTRS) and big["age"] is not None
    assert '"age":null' in r.text
