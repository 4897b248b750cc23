"""The HTTP API of `edgeag serve` (FastAPI TestClient), its limits, concurrency and the CLI around it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb, default_sigint, needs_data

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
import cv2  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from edgeag.edge.face import AnalysisResult  # noqa: E402
from edgeag.edge.server import (  # noqa: E402
    AnalyzerPool, AnalyzeService, ServerOptions, create_app, is_loopback)
from edgeag.edge.images import image_header as _image_size  # noqa: E402

WEB = Path(__file__).resolve().parents[1] / "edge" / "web"


# ------------------------------------------------------------------------------------------------ helpers

def background(h: int = 480, w: int = 800) -> np.ndarray:
    """A smooth, face-free scene (gradient), uint8 RGB."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 60 + 100 * xx / w
    g = 90 + 60 * yy / h
    b = 140 - 50 * xx / w
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def paste(scene: np.ndarray, face: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    h, w = face.shape[:2]
    scene[y:y + h, x:x + w] = face
    return x, y, w, h


def png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def utk_label(name: str) -> tuple[int, str]:
    age, gender = name.split("_")[:2]
    return int(age), ("male", "female")[int(gender)]


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def client():
    app = create_app(workers=2, threads=1)
    with TestClient(app) as c:  # the context runs the lifespan: analyzers are closed at the end
        yield c


@pytest.fixture(scope="module")
def small_client():
    """Tight limits, to test 413 without sending megabytes."""
    app = create_app(workers=1, max_upload_bytes=60_000, max_side=400)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def clean_faces(utk_sample, client):
    """UTKFace test faces (name, RGB) that the detector finds alone on the plain background."""
    out = []
    for name, data in utk_sample:
        face = decode_rgb(data)
        scene = background()
        paste(scene, face, 300, 140)
        faces = client.post("/v1/analyze", content=png(scene)).json()["faces"]
        if len(faces) == 1:
            out.append((name, face))
        if len(out) >= 12:
            break
    assert len(out) >= 4, "the detector should find most UTKFace faces pasted on a plain background"
    return out


@pytest.fixture(scope="module")
def scenes(clean_faces):
    """Four scenes with two faces each at different places: (PNG bytes, [pasted rects])."""
    out = []
    spots = [((40, 60), (480, 200)), ((520, 20), (100, 260)), ((300, 10), (60, 270)), ((560, 260), (200, 40))]
    for i, (p, q) in enumerate(spots):
        scene = background()
        (_, a), (_, b) = clean_faces[i % len(clean_faces)], clean_faces[(i + 1) % len(clean_faces)]
        rects = [paste(scene, a, *p), paste(scene, b, *q)]
        out.append((png(scene), rects))
    return out


# ------------------------------------------------------------------------------------------------ API

@needs_data
def test_faces_found_where_pasted(client, scenes):
    for body, rects in scenes:
        r = client.post("/v1/analyze", files={"image": ("scene.png", body, "image/png")})
        assert r.status_code == 200, r.text
        res = r.json()
        assert (res["width"], res["height"]) == (800, 480)
        assert len(res["faces"]) == 2
        for rect in rects:
            best = max(iou(f["box"], rect) for f in res["faces"])
            assert best > 0.4, (rect, res["faces"])
        for f in res["faces"]:
            assert set(f) >= {"box", "score", "age", "gender", "gender_confidence", "ethnicity",
                              "ethnicity_confidence"}
            assert f["gender"] in ("male", "female") and 0.5 <= f["gender_confidence"] <= 1
            assert 0 <= f["age"] <= 120
        assert {"decode_ms", "detect_ms", "crop_ms", "classify_ms", "total_ms"} <= set(res["timings"])


@needs_data
def test_same_records_as_python_api(client, scenes):
    """The server returns exactly Face.to_dict() of the Python API for the same pixels (PNG is lossless)."""
    from edgeag import FaceAnalyzer

    body, _ = scenes[0]
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    with FaceAnalyzer(threads=1) as fa:
        expected = [f.to_dict() for f in fa.analyze(rgb)]
    raw = client.post("/v1/analyze", content=body, headers={"content-type": "image/png"}).json()
    assert raw["faces"] == expected


@needs_data
def test_jpeg_raw_body_and_multipart_agree(client, scenes):
    body, _ = scenes[1]
    data = jpeg(decode_rgb_png(body))
    a = client.post("/v1/analyze", content=data, headers={"content-type": "image/jpeg"}).json()
    b = client.post("/v1/analyze", files={"image": ("x.jpg", data, "image/jpeg")}).json()
    c = client.post("/v1/analyze", files={"other": ("x.jpg", data, "application/octet-stream")}).json()
    assert a["faces"] == b["faces"] == c["faces"] and len(a["faces"]) == 2


def decode_rgb_png(body: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@needs_data
def test_ages_and_genders_agree_with_labels(client, clean_faces):
    """Needs the real trained model (the 1-epoch placeholder guesses): a sanity bound, not an evaluation."""
    errs, right = [], 0
    for name, face in clean_faces:
        scene = background()
        paste(scene, face, 300, 140)
        f = client.post("/v1/analyze", content=png(scene)).json()["faces"][0]
        age, gender = utk_label(name)
        errs.append(abs(f["age"] - age))
        right += f["gender"] == gender
    assert np.mean(errs) < 12, f"age MAE {np.mean(errs):.1f} over {len(errs)} faces"
    assert right / len(clean_faces) >= 0.7, f"gender {right}/{len(clean_faces)}"


def test_blank_image_gives_no_faces(client):
    r = client.post("/v1/analyze", files={"image": ("blank.jpg", jpeg(background()), "image/jpeg")})
    assert r.status_code == 200
    assert r.json()["faces"] == [] and r.json()["width"] == 800


@pytest.mark.parametrize("kind", ["raw-text", "multipart-text", "json"])
def test_text_is_refused_with_json_error(client, kind):
    text = b"this is not an image\n" * 20
    if kind == "raw-text":
        r = client.post("/v1/analyze", content=text, headers={"content-type": "text/plain"})
    elif kind == "multipart-text":
        r = client.post("/v1/analyze", files={"image": ("notes.txt", text, "text/plain")})
    else:
        r = client.post("/v1/analyze", json={"image": "x"})
    assert r.status_code in (400, 415)
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and "Traceback" not in r.text


@pytest.mark.parametrize("body,status", [
    (b"", 400),  # empty
    (b"\xff\xd8\xff\xe0" + b"\x00" * 200, 400),  # JPEG magic, garbage inside
    (b"\x89PNG\r\n\x1a\n" + b"\x01" * 100, 400),  # PNG magic, garbage inside
    (b"GIF89a" + b"\x00" * 50, 415),  # an image, but not one we take
])
def test_undecodable_bodies(client, body, status):
    r = client.post("/v1/analyze", content=body, headers={"content-type": "application/octet-stream"})
    assert r.status_code == status
    assert set(r.json()) == {"error"}


def test_multipart_without_file(client):
    r = client.post("/v1/analyze", data={"note": "hello"}, files={"x": ("", b"", "application/octet-stream")})
    assert r.status_code in (400, 415) and "error" in r.json()


def test_oversized_upload_is_413(small_client):
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)  # noise: ~270 KB as PNG
    data = png(big)
    assert len(data) > 60_000
    for kwargs in ({"content": data, "headers": {"content-type": "image/png"}},
                   {"files": {"image": ("big.png", data, "image/png")}}):
        r = small_client.post("/v1/analyze", **kwargs)
        assert r.status_code == 413 and "limit" in r.json()["error"]


def test_oversized_upload_default_limit(client):
    r = client.post("/v1/analyze", content=b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024 + 10))
    assert r.status_code == 413


def test_too_many_pixels_is_413_before_decoding(client, small_client):
    thin = png(np.zeros((4, 9000, 3), np.uint8))  # tiny file, 9000 px wide
    assert client.post("/v1/analyze", content=thin).status_code == 413
    assert small_client.post("/v1/analyze", content=png(np.zeros((401, 10, 3), np.uint8))).status_code == 413
    assert small_client.post("/v1/analyze", content=png(np.zeros((400, 10, 3), np.uint8))).status_code == 200


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
def test_header_sizes(ext):
    img = np.zeros((37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        pytest.skip(f"OpenCV cannot encode {ext}")
    fmt, size = _image_size(buf.tobytes())
    assert fmt and size == (53, 37)


@needs_data
def test_concurrent_requests_match_sequential(client, scenes):
    bodies = [b for b, _ in scenes]
    sequential = [client.post("/v1/analyze", content=b).json()["faces"] for b in bodies]
    jobs = [i % len(bodies) for i in range(16)]
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda i: client.post("/v1/analyze", content=bodies[i]).json()["faces"], jobs))
    for i, faces in zip(jobs, results):
        assert faces == sequential[i]


def test_pool_lends_each_analyzer_to_one_caller_at_a_time():
    """The pool never hands one analyzer to two threads at once (LiteRT/MediaPipe are not thread-safe)."""
    overlaps = []

    class Fake:
        metadata = {"crop": {"size": 8}}

        def __init__(self):
            self.busy = threading.Lock()
            self.closed = False

        def analyze(self, rgb):
            if not self.busy.acquire(blocking=False):
                overlaps.append(self)
                return AnalysisResult()
            time.sleep(0.01)
            self.busy.release()
            return AnalysisResult()

        def close(self):
            self.closed = True

    service = AnalyzeService(ServerOptions(workers=2), factory=Fake)
    body = png(np.zeros((8, 8, 3), np.uint8))
    with ThreadPoolExecutor(6) as ex:
        list(ex.map(lambda _: service.analyze_bytes(body), range(30)))
    assert not overlaps
    service.close()
    assert all(a.closed for a in service.pool._all)


def test_pool_busy_gives_503():
    pool = AnalyzerPool(lambda: object(), 1)
    with pool.borrow():
        from edgeag.edge.server import ApiError

        with pytest.raises(ApiError) as e:
            with pool.borrow(timeout=0.05):
                pass
        assert e.value.status == 503


# ------------------------------------------------------------------------------------------------ other endpoints

def test_healthz_model_docs(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok"
    m = client.get("/v1/model").json()
    assert m["metadata"]["labels"]["gender"] == ["male", "female"]
    assert m["metadata"]["crop"]["size"] > 0 and m["file"].endswith(".tflite")
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/analyze" in spec["paths"] and "multipart/form-data" in str(spec["paths"]["/v1/analyze"])
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "error" in r.json()


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "nothing is stored" in r.text.lower()
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    for f in ("index.html", "app.js", "style.css"):  # no CDN, no external fonts: works offline
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", (WEB / f).read_text(), re.I), f


def test_websocket_stream(client):
    body = jpeg(background(240, 320))
    with client.websocket_connect("/v1/stream") as ws:
        for _ in range(3):
            ws.send_bytes(body)
            res = ws.receive_json()
            assert res["faces"] == [] and res["width"] == 320
        ws.send_bytes(b"not an image")
        assert ws.receive_json()["status"] == 415
        ws.send_text("hello")
        assert "error" in ws.receive_json()


def test_websocket_refuses_other_origins(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/v1/stream", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


# ------------------------------------------------------------------------------------------------ CLI

def test_cli_missing_extra(monkeypatch):
    from typer.testing import CliRunner

    from edgeag.cli import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    r = CliRunner().invoke(app, ["serve"])
    assert r.exit_code == 2
    assert "pip install 'edgeag[serve]'" in r.output


def test_cli_bad_model(tmp_path):
    from typer.testing import CliRunner

    from edgeag.cli import app

    r = CliRunner().invoke(app, ["serve", "--port", "0", "--model", str(tmp_path / "missing.tflite")])
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_cli_serves_and_shuts_down_gracefully():
    """`edgeag serve --port 0` prints its URL, answers, and stops cleanly on Ctrl-C (exit 130, no traceback)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "edgeag.cli", "serve", "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint)
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        import httpx

        for _ in range(100):
            try:
                r = httpx.get(url + "/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.json()["status"] == "ok"
        r = httpx.post(url + "/v1/analyze", content=jpeg(background(120, 160)), timeout=30)
        assert r.status_code == 200 and r.json()["faces"] == []
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_cli_port_in_use():
    import socket

    from typer.testing import CliRunner

    from edgeag.cli import app

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        r = CliRunner().invoke(app, ["serve", "--port", str(s.getsockname()[1])])
    finally:
        s.close()
    assert r.exit_code == 2 and "in use" in r.output


def test_load_script_smoke(tmp_path):
    """benchmarks/load_server.py against a running loopback server: bounded, writes its JSON."""
    from edgeag.benchmarks.load_server import main
    from edgeag.edge.server import ServerThread

    img = tmp_path / "blank.jpg"
    img.write_bytes(jpeg(background(120, 160)))
    with ServerThread(create_app(workers=1)) as url:
        report = main(["--url", url, "--image", str(img), "--requests", "4", "--concurrency", "1,2",
                       "--warmup", "0", "--out", str(tmp_path / "load.json")])
    assert [lv["requests"] for lv in report["levels"]] == [4, 4]
    assert all(lv["errors"] == 0 and lv["requests_per_s"] > 0 for lv in report["levels"])
    assert (tmp_path / "load.json").is_file()
    with pytest.raises(SystemExit):
        main(["--url", "http://example.com:8000", "--image", str(img)])


def test_unexpected_error_is_json_without_traceback():
    class Broken:
        metadata = {"crop": {"size": 8}}

        def analyze(self, rgb):
            raise RuntimeError("secret internal detail")

        def close(self):
            pass

    app = create_app(service=AnalyzeService(ServerOptions(workers=1), factory=Broken))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/analyze", content=png(np.zeros((8, 8, 3), np.uint8)))
    assert r.status_code == 500 and r.json() == {"error": "internal error"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_min_gender_confidence_reaches_the_api(clean_faces):
    """`edgeag serve --min-gender-confidence`: a gender under it is null in the response; /v1/model says so."""
    name, face = clean_faces[0]
    scene = background()
    paste(scene, face, 300, 140)
    with TestClient(create_app(workers=1, min_gender_confidence=1.0)) as c:
        assert c.get("/v1/model").json()["server"]["min_gender_confidence"] == 1.0
        f = c.post("/v1/analyze", content=png(scene)).json()["faces"][0]
    assert f["gender_confidence"] < 1.0 and f["gender"] is None
