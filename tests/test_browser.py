"""The page of `edgeag serve` in a real browser (Debian's chromium driven by Playwright).

Skipped only when /usr/bin/chromium is absent (CI installs it: apt-get install -y chromium).
Never runs `playwright install`: the system browser is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb, needs_data

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]
pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

import cv2  # noqa: E402

from test_server import background, iou, paste, png  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
BOX_RGB = (0x00, 0xE6, 0x76)  # BOX_COLOR in app.js
WAIT_MS = 60_000  # upper bound for waits only (the machine is shared with training); not a speed assertion


@pytest.fixture(scope="module")
def server():
    """A real uvicorn server on 127.0.0.1, a free port, in a thread; shut down gracefully at the end."""
    from edgeag.edge.server import ServerThread, create_app

    app = create_app(workers=1, threads=1)
    with ServerThread(app) as url:
        yield url, app.state.service


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:  # one per module: the sync API cannot nest
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    yield b
    b.close()


@pytest.fixture
def page(browser, server):
    url, _ = server
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    context.grant_permissions(["camera"], origin=url)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.requests = []  # every URL the page fetches: all must be this server (no CDN)
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.console_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    pg.goto(url + "/")
    yield pg
    context.close()


@pytest.fixture(scope="module")
def face_scene(tmp_path_factory, utk_sample):
    """A PNG with one UTKFace face pasted at a known place, and that place."""
    from edgeag import FaceAnalyzer

    with FaceAnalyzer(threads=1) as fa:
        for name, data in utk_sample:
            scene = background(480, 720)
            rect = paste(scene, decode_rgb(data), 420, 150)
            if len(fa.analyze(scene)) == 1:
                path = tmp_path_factory.mktemp("page") / "scene.png"
                path.write_bytes(png(scene))
                return path, rect
    pytest.fail("no UTKFace face was detected on a plain background")


def canvas_pixel(page, x: float, y: float) -> tuple[int, int, int]:
    return tuple(page.evaluate(
        "([x, y]) => Array.from(document.getElementById('canvas').getContext('2d')"
        ".getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3))", [x, y]))


def near(rgb, ref, tol: int = 40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(rgb, ref))


def faces_in_dom(page) -> list[dict]:
    return page.eval_on_selector_all("#faces li", "els => els.map(e => ({...e.dataset, text: e.textContent}))")


# ------------------------------------------------------------------------------------------------ tests

@needs_data
def test_photo_upload_draws_box_and_label(page, server, face_scene):
    url, _ = server
    path, rect = face_scene
    assert "Nothing is stored" in page.inner_text(".notice")
    page.wait_for_function("() => document.getElementById('model').textContent.includes('.tflite')")
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#faces li")

    faces = faces_in_dom(page)
    assert len(faces) == 1
    f = faces[0]
    box = [int(v) for v in f["box"].split(",")]
    assert iou(box, rect) > 0.4, (box, rect)
    assert f["gender"] in ("male", "female") and 0 <= float(f["age"]) <= 120
    assert f["gender"] in f["text"] and f"{round(float(f['age']))} y" in f["text"]
    result = json.loads(page.text_content("#result-json"))
    assert result["width"] == 720 and result["faces"][0]["box"] == box
    assert float(page.get_attribute("#latency", "data-ms")) > 0
    assert page.get_attribute("#stage", "data-mode") == "image"

    # The canvas shows the photo with the box and the label drawn in BOX_COLOR.
    scale = float(page.get_attribute("#canvas", "data-scale"))
    x, y, w, h = (v * scale for v in box)
    assert near(canvas_pixel(page, x + w / 2, y), BOX_RGB), "box top edge"
    assert near(canvas_pixel(page, x, y + h / 2), BOX_RGB), "box left edge"
    assert not near(canvas_pixel(page, x + w / 2, y + h / 2), BOX_RGB), "the face itself is not painted over"
    label_pixels = [canvas_pixel(page, x + dx, y - 8) for dx in range(2, 60, 3)]
    assert sum(near(p, BOX_RGB) for p in label_pixels) >= 5, "label background above the box"
    assert any(max(p) < 60 for p in label_pixels), "dark label text"

    assert all(r.startswith(url) or r.startswith(("data:", "blob:")) for r in page.requests), page.requests
    assert not page.console_errors, page.console_errors


def test_non_image_file_shows_error(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.inner_text("#error")


def test_blank_photo_gives_no_faces(page, tmp_path):
    path = tmp_path / "blank.png"
    path.write_bytes(png(background(300, 400)))
    page.set_input_files("#file", str(path))
    page.wait_for_function("() => document.getElementById('frames').dataset.count === '1'")
    assert faces_in_dom(page) == []
    assert page.get_attribute("#face-count", "data-count") == "0"


def test_webcam_frames_are_sent_and_analysed(page, server):
    """Chromium's fake camera (a test pattern, no face): frames flow over the WebSocket, one at a time."""
    _, service = server
    before = service.requests
    page.select_option("#rate", "10")
    page.click("#camera-start")
    page.wait_for_function("() => Number(document.getElementById('frames').dataset.count) >= 5")
    assert page.get_attribute("#stage", "data-mode") == "camera"
    assert page.is_hidden("#error")
    assert page.evaluate("document.getElementById('video').videoWidth") > 0
    assert service.requests - before >= 5
    assert not any("/v1/analyze" in r for r in page.requests), "the camera should use the WebSocket"

    page.click("#camera-stop")
    stopped = int(page.get_attribute("#frames", "data-count"))
    page.wait_for_timeout(1000)
    assert int(page.get_attribute("#frames", "data-count")) == stopped  # a reply in flight is dropped
    assert page.get_attribute("#stage", "data-mode") == "idle"
    # The test pattern has no face (BlazeFace may still see one in the Pac-Man now and then): whatever the
    # last result was, the list and the counter show the same faces as the JSON.
    result = json.loads(page.text_content("#result-json"))
    assert result["width"] == 640 and result["height"] == 480
    assert len(faces_in_dom(page)) == len(result["faces"]) == int(page.get_attribute("#face-count", "data-count"))
    assert not page.console_errors, page.console_errors


def test_webcam_falls_back_to_http_without_websocket(browser, server):
    url, _ = server
    context = browser.new_context()
    context.grant_permissions(["camera"], origin=url)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    posts = []
    pg.on("request", lambda r: "/v1/analyze" in r.url and posts.append(r.url))
    pg.route_web_socket("**/v1/stream", lambda ws: ws.close())  # a proxy that refuses WebSockets
    pg.goto(url + "/")
    pg.click("#camera-start")
    pg.wait_for_function("() => Number(document.getElementById('frames').dataset.count) >= 3")
    assert len(posts) >= 3
    pg.click("#camera-stop")
    context.close()


@needs_data
def test_phone_viewport(browser, server, face_scene):
    """A phone-sized touch screen: nothing overflows sideways and a photo is analysed."""
    url, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(url + "/")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    pg.set_input_files("#file", str(face_scene[0]))
    pg.wait_for_selector("#faces li")
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shown = pg.evaluate("document.getElementById('canvas').getBoundingClientRect().width")
    assert 0 < shown <= 390
    context.close()


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 10) -> Path:
    """A tiny Y4M clip of one still image, for Chromium's --use-file-for-fake-video-capture."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + i420)
    return path


@needs_data
def test_webcam_with_a_face_draws_overlay(playwright, server, face_scene, tmp_path):
    """A fake camera showing a face: the overlay canvas gets the box, aligned with the video frame."""
    url, _ = server
    scene = cv2.cvtColor(cv2.imread(str(face_scene[0])), cv2.COLOR_BGR2RGB)  # 720x480
    clip = write_y4m(tmp_path / "face.y4m", scene)
    # The fake capture file is a browser-wide flag: a browser of its own.
    b = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                   args=FLAGS + [f"--use-file-for-fake-video-capture={clip}"])
    try:
        pg = b.new_page(viewport={"width": 1000, "height": 900})
        pg.set_default_timeout(WAIT_MS)
        pg.goto(url + "/")
        pg.click("#camera-start")
        pg.wait_for_selector("#faces li")
        pg.wait_for_function("() => Number(document.getElementById('frames').dataset.count) >= 2")
        result = json.loads(pg.text_content("#result-json"))
        k = result["width"] / scene.shape[1]  # frames are sent downscaled to 640 px
        x, y, w, h = face_scene[1]
        assert iou(result["faces"][0]["box"], [x * k, y * k, w * k, h * k]) > 0.4
        bx, by, bw, bh = result["faces"][0]["box"]
        assert near(canvas_pixel(pg, bx + bw / 2, by), BOX_RGB)  # overlay canvas is in frame pixels
        assert canvas_pixel(pg, bx + bw / 2, by + bh / 2) == (0, 0, 0)  # transparent inside: video shows through
    finally:
        b.close()
