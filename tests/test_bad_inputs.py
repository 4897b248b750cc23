"""The bad-input catalogue: what a new user (or a hostile client) can throw at edgeag, and what must happen.

Every bad file is generated here at run time. Each CLI row asserts the exit code, a one-line message (one
``error:`` line, never wrapped), no traceback, and that the output which existed before is intact with no
temporary file left behind; each server row asserts the HTTP status and a one-line JSON error. No face data
is needed: a bad input is bad whatever the picture shows.

Exit codes (README): 0 done, 1 runtime failure, 2 bad input, 3 partly done (some images unreadable),
130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import default_sigint

cv2 = pytest.importorskip("cv2")

EARLIER = '{"earlier": "result"}\n'  # what --json FILE held before the run
MODELS = Path(__file__).resolve().parents[1] / "edge" / "models"


def run_cli(*args, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "EDGEAG_DEBUG")}
    return subprocess.run([sys.executable, "-m", "edgeag.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part*"))


# ------------------------------------------------------------------------------------------ bad files


def _video(path: Path, n: int = 30, size: tuple[int, int] = (160, 120)) -> Path:
    rng = np.random.default_rng(0)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for _ in range(n):
        w.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return path


def _scrambled(data: bytes, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    for i in range(1000, len(b) - 1000, 500):
        b[i:i + 50] = rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
    return bytes(b)


def _kaggle_csv(path: Path, good: int, bad_rows: list[str]) -> Path:
    rng = np.random.default_rng(1)
    lines = ["age,ethnicity,gender,img_name,pixels"]
    for i in range(good):
        px = " ".join(str(v) for v in rng.integers(0, 255, 48 * 48))
        lines.append(f"{20 + i % 40},{i % 5},{i % 2},img{i}.jpg,{px}")
    path.write_text("\n".join(lines + bad_rows) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    f: dict[str, Path] = {"folder": d / "a_folder", "default_model": MODELS / "edgeag_default.tflite"}
    f["folder"].mkdir()

    def put(name: str, data: bytes) -> None:
        f[name.replace(".", "_")] = d / name
        (d / name).write_bytes(data)

    jpg = cv2.imencode(".jpg", rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))[1].tobytes()
    put("good.jpg", jpg)
    put("empty.jpg", b"")
    put("truncated.jpg", jpg[: len(jpg) // 2])
    put("text.jpg", b"this is a text file, not a JPEG\n" * 20)
    put("png16.png", cv2.imencode(".png", rng.integers(0, 65535, (60, 80, 3), dtype=np.uint16))[1].tobytes())
    put("gray.png", cv2.imencode(".png", rng.integers(0, 255, (60, 80), dtype=np.uint8))[1].tobytes())
    put("rgba.png", cv2.imencode(".png", rng.integers(0, 255, (60, 80, 4), dtype=np.uint8))[1].tobytes())
    put("one_px.png", cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes())
    # 9000 px wide: over the 4096 px decode limit, so it is decoded at 1/4 size (cheap to generate here).
    put("pano.jpg", cv2.imencode(".jpg", rng.integers(0, 255, (100, 9000, 3), dtype=np.uint8))[1].tobytes())
    try:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("CMYK", (80, 60), (10, 200, 30, 0)).save(buf, "JPEG")
        put("cmyk.jpg", buf.getvalue())
    except ImportError:  # Pillow comes with the [train] extra only
        put("cmyk.jpg", jpg)
    video = _video(d / "good.mp4")
    f["good_mp4"] = video
    data = video.read_bytes()
    put("truncated.mp4", data[: len(data) * 2 // 3])
    put("scrambled.mp4", _scrambled(data))
    put("text.mp4", b"not a video\n" * 100)
    put("empty.mp4", b"")
    model = f["default_model"].read_bytes()
    put("empty.tflite", b"")
    put("truncated.tflite", model[: len(model) // 2])
    put("junk.tflite", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    put("png.tflite", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    put("detector.tflite", (MODELS / "face_detection_short_range.tflite").read_bytes())
    _kaggle_csv(d / "some_bad_rows.csv", 40, ["25,1,0,short.jpg,1 2 3", "x,1,0,nonnumeric.jpg,"
                                              + " ".join(["0"] * 2304), "30,1,0", ""])
    f["some_bad_rows_csv"] = d / "some_bad_rows.csv"
    _kaggle_csv(d / "all_bad_rows.csv", 0, ["25,1,0,short.jpg,1 2 3", "x,y,z,w,v"])
    f["all_bad_rows_csv"] = d / "all_bad_rows.csv"
    return f


# ------------------------------------------------------------------------------------------ CLI rows


@dataclass
class Row:
    id: str
    args: list[str]  # {name}: a file from ``files``; {out}: a --json file holding an earlier result; {tmp}
    code: int
    message: str  # in the one error line (codes 1, 2) or in the summary line (0, 3)


RUN = ["run", "--headless", "--json", "{out}"]
ROWS = [
    # --model
    Row("model-missing", RUN + ["{good_mp4}", "--model", "{tmp}/missing.tflite"], 2, "model file not found"),
    Row("model-empty", RUN + ["{good_mp4}", "--model", "{empty_tflite}"], 2, "not a TFLite model"),
    Row("model-truncated", RUN + ["{good_mp4}", "--model", "{truncated_tflite}"], 2, "is truncated or damaged"),
    Row("model-random-bytes", RUN + ["{good_mp4}", "--model", "{junk_tflite}"], 2, "not a TFLite model"),
    Row("model-png", RUN + ["{good_mp4}", "--model", "{png_tflite}"], 2, "not a TFLite model"),
    Row("model-foreign-tflite", RUN + ["{good_mp4}", "--model", "{detector_tflite}"], 2, "has no edgeag metadata"),
    Row("model-folder", RUN + ["{good_mp4}", "--model", "{folder}"], 2, "is a folder"),
    # outputs
    Row("save-wrong-suffix", RUN + ["{good_mp4}", "--save", "{tmp}/annotated.txt"], 2, "use a video file name"),
    Row("save-unwritable", RUN + ["{good_mp4}", "--save", "/proc/edgeag-test.mp4"], 2, "--save: cannot write in /proc"),
    Row("save-missing-folder", RUN + ["{good_mp4}", "--save", "{tmp}/no/such/x.mp4"], 2, "folder does not exist"),
    Row("save-folder-for-a-video", RUN + ["{good_mp4}", "--save", "{folder}"], 2, "use a video file name"),
    Row("json-missing-folder", ["run", "--headless", "{good_mp4}", "--json", "{tmp}/no/x.jsonl"], 2,
        "folder does not exist"),
    Row("json-is-folder", ["run", "--headless", "{good_mp4}", "--json", "{folder}"], 2, "is a folder"),
    Row("json-unwritable", ["run", "--headless", "{good_mp4}", "--json", "/proc/edgeag-test.jsonl"], 2,
        "--json: cannot write /proc/edgeag-test.jsonl"),
    Row("append-without-file", ["run", "--headless", "{good_mp4}", "--append"], 2, "--append needs --json FILE"),
    # videos, cameras, streams
    Row("video-missing", RUN + ["--video", "{tmp}/missing.mp4"], 2, "video not found"),
    Row("video-is-folder", RUN + ["--video", "{folder}"], 2, "is a folder, not a video file"),
    Row("video-truncated-mp4", RUN + ["--video", "{truncated_mp4}"], 2, "cannot open video"),
    Row("video-text", RUN + ["--video", "{text_mp4}"], 2, "cannot open video"),
    Row("video-empty", RUN + ["--video", "{empty_mp4}"], 2, "cannot open video"),
    Row("video-scrambled", RUN + ["--video", "{scrambled_mp4}"], 0, "unreadable frames skipped"),
    Row("camera-missing", RUN + ["--camera", "99", "--reconnect", "1"], 2, "gave up after 2 attempts"),
    Row("stream-unreachable-rtsp", RUN + ["--stream", "rtsp://127.0.0.1:9/none", "--reconnect", "0"], 2,
        "cannot open stream"),
    Row("stream-unreachable-http", RUN + ["--stream", "http://127.0.0.1:9/none.mp4", "--reconnect", "0"], 2,
        "cannot open stream"),
    Row("size-malformed", RUN + ["--camera", "0", "--size", "big"], 2, "--size must look like 640x480"),
    # images
    Row("images-none-readable", RUN + ["--image", "{text_jpg}", "{empty_jpg}"], 2, "no image could be read"),
    Row("images-partly-readable", RUN + ["--image", "{good_jpg}", "{truncated_jpg}"], 3,
        "partly done (1 of 2 images unreadable; exit code 3)"),
    Row("images-odd-formats", RUN + ["--image", "{png16_png}", "{gray_png}", "{rgba_png}", "{one_px_png}",
                                     "{cmyk_jpg}", "{pano_jpg}"], 0, "done: 6 images"),
    Row("predict-empty", ["predict", "{empty_jpg}"], 2, "no image could be read"),
    Row("predict-text-as-image", ["predict", "{text_jpg}"], 2, "no image could be read"),
    Row("predict-truncated", ["predict", "--json", "-", "{truncated_jpg}"], 2, "no image could be read"),
    Row("predict-missing", ["predict", "{tmp}/absent.jpg"], 2, "no image could be read"),
    Row("predict-folder-without-images", ["predict", "{folder}"], 2, "no image could be read"),
    Row("predict-partly-readable", ["predict", "{good_jpg}", "{empty_jpg}"], 3,
        "partly done (1 of 2 images unreadable; exit code 3)"),
    Row("predict-odd-formats", ["predict", "{png16_png}", "{gray_png}", "{rgba_png}", "{one_px_png}", "{cmyk_jpg}",
                                "{pano_jpg}"], 0, ""),
    Row("predict-save-is-a-file", ["predict", "{good_jpg}", "--save", "{out}"], 2, "is a file"),
    Row("predict-model-truncated", ["predict", "{good_jpg}", "--model", "{truncated_tflite}"], 2,
        "is truncated or damaged"),
    # data sets
    Row("evaluate-malformed-rows", ["evaluate", "{default_model}", "--data", "{some_bad_rows_csv}", "--split", "train"],
        0, "skipped 3 entries"),
    Row("evaluate-no-usable-rows", ["evaluate", "{default_model}", "--data", "{all_bad_rows_csv}"], 2,
        "no usable records"),
    Row("evaluate-missing-data", ["evaluate", "{default_model}", "--data", "{tmp}/none.csv"], 2,
        "data path does not exist"),
]


def _fill(args: list[str], files: dict[str, Path], out: Path, tmp: Path) -> list[str]:
    names = {**{k: str(v) for k, v in files.items()}, "out": str(out), "tmp": str(tmp)}
    return [a.format(**names) for a in args]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_cli_row(row: Row, files, tmp_path):
    out = tmp_path / "earlier_result.jsonl"
    out.write_text(EARLIER)
    p = run_cli(*_fill(row.args, files, out, tmp_path), cwd=tmp_path)
    assert p.returncode == row.code, p.stderr[-3000:]
    assert "Traceback" not in p.stderr + p.stdout, p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    if row.code in (1, 2):
        assert len(errors) == 1 and row.message in errors[0], p.stderr  # one line, whole (never wrapped)
        assert out.read_text() == EARLIER  # a failed run leaves the earlier result alone
    else:
        assert not errors and row.message in p.stderr, p.stderr
    assert not leftovers(tmp_path) and not leftovers(out.parent)


def test_long_errors_stay_on_one_line_in_a_pipe(files, tmp_path):
    """rich wraps at 80 columns when stderr is not a terminal: an error must stay one line, path and all."""
    missing = tmp_path / ("a_model_file_with_a_rather_long_name_" * 3 + ".tflite")
    p = run_cli("run", "--headless", files["good_mp4"], "--model", missing, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.splitlines() == [f"error: model file not found: {missing}"], p.stderr


def test_malformed_rows_and_grayscale_data_are_reported_on_screen(files, tmp_path):
    p = run_cli("evaluate", files["default_model"], "--data", files["some_bad_rows_csv"], "--split", "train",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "warning: some_bad_rows.csv: skipped 3 entries" in p.stderr
    assert "holds 48x48 grayscale faces but the model is RGB" in p.stderr


def test_evaluate_json_goes_to_stdout_or_replaces_a_file_only_when_done(files, tmp_path):
    """`--json -` prints the metrics alone on stdout; `--json FILE` writes them when the evaluation is done,
    and a failed evaluation leaves an earlier FILE as it was."""
    from typer.testing import CliRunner

    from edgeag.cli import app

    args = ["evaluate", str(files["default_model"]), "--data", str(files["some_bad_rows_csv"]), "--split", "train"]
    r = CliRunner().invoke(app, [*args, "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["overall"]["n"] > 0  # stdout holds the JSON alone
    out = tmp_path / "m.json"
    assert CliRunner().invoke(app, [*args, "--json", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["split"] == "train"
    out.write_text(EARLIER)
    r = CliRunner().invoke(app, [*args[:3], str(files["all_bad_rows_csv"]), "--json", str(out)])
    assert r.exit_code == 2 and out.read_text() == EARLIER and [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.slow
@pytest.mark.skipif(not __import__("importlib.util").util.find_spec("tensorflow"), reason="needs edgeag[train]")
def test_train_on_bad_data_leaves_no_empty_out_folder(files, tmp_path):
    out = tmp_path / "run"
    p = run_cli("train", "--data", files["all_bad_rows_csv"], "--out", out, "--epochs", "1", cwd=tmp_path)
    assert p.returncode == 2 and "no usable records" in p.stderr and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert not out.exists()


def test_readonly_json_file_is_refused(files, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write read-only files")
    out = tmp_path / "ro.jsonl"
    out.write_text(EARLIER)
    out.chmod(0o444)
    p = run_cli("run", "--headless", files["good_mp4"], "--json", out, cwd=tmp_path)
    assert p.returncode == 2 and "is read-only" in p.stderr and out.read_text() == EARLIER


# ------------------------------------------------------------------------------------------ outputs


def test_append_adds_and_the_default_replaces(files, tmp_path):
    out = tmp_path / "faces.jsonl"
    out.write_text(EARLIER)
    p = run_cli("run", "--headless", files["good_mp4"], "--json", out, "--append", "--max-frames", "5",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and lines[0] == EARLIER.strip()
    p = run_cli("run", "--headless", files["good_mp4"], "--json", out, "--max-frames", "3", cwd=tmp_path)
    assert p.returncode == 0 and len(out.read_text().splitlines()) == 3


def test_jsonl_sink_replaces_only_on_close(tmp_path):
    from edgeag.edge.sinks import JsonlSink

    out = tmp_path / "r.jsonl"
    out.write_text(EARLIER)
    out.chmod(0o640)
    sink = JsonlSink(out)
    sink.write({"frame": 0}, None)
    assert out.read_text() == EARLIER and len(leftovers(tmp_path)) == 1
    sink.close()
    assert out.read_text() == '{"frame":0}\n' and not leftovers(tmp_path)
    assert out.stat().st_mode & 0o777 == 0o640  # the replaced file's permissions are kept
    sink = JsonlSink(out)
    sink.abort()  # set-up failed: the last good result stays, nothing else appears
    assert out.read_text() == '{"frame":0}\n' and not leftovers(tmp_path) and sink.saved_to is None
    sink = JsonlSink(out)
    sink.write({"frame": 1}, None)
    sink.abort()  # the run crashed midway: the last good result stays, what was done is kept beside it
    assert out.read_text() == '{"frame":0}\n' and not leftovers(tmp_path)
    assert sink.saved_to == tmp_path / "r.partial.jsonl" and sink.saved_to.read_text() == '{"frame":1}\n'


def test_jsonl_sink_never_replaces_a_device(tmp_path):
    from edgeag.edge.sinks import JsonlSink

    sink = JsonlSink(os.devnull)
    sink.write({"frame": 0}, None)
    sink.close()
    assert Path(os.devnull).is_char_device()


def test_video_sink_prefers_h264_and_falls_back_to_mp4v(tmp_path, monkeypatch):
    from edgeag.edge import sinks

    class FakeWriter:
        def __init__(self, path, fourcc, fps, size):
            self.ok = fourcc == cv2.VideoWriter_fourcc(*self.accepts)
            if self.ok:
                Path(path).write_bytes(b"video")

        def isOpened(self):
            return self.ok

        def write(self, image):
            pass

        def release(self):
            pass

    frame = np.zeros((16, 16, 3), np.uint8)
    for accepts in ("avc1", "mp4v"):
        FakeWriter.accepts = accepts
        monkeypatch.setattr(cv2, "VideoWriter", FakeWriter)
        sink = sinks.VideoSink(tmp_path / f"{accepts}.mp4", 25)
        sink.write({}, frame)
        sink.close()
        assert sink.fourcc == accepts and (tmp_path / f"{accepts}.mp4").read_bytes() == b"video"
    monkeypatch.undo()
    real = sinks.VideoSink(tmp_path / "real.mp4", 25)  # whatever this OpenCV build has, silently
    real.write({}, frame)
    real.close()
    assert real.fourcc in ("avc1", "mp4v") and cv2.VideoCapture(str(tmp_path / "real.mp4")).read()[0]


def test_video_sink_abort_keeps_the_earlier_video(tmp_path):
    from edgeag.edge.sinks import VideoSink

    out = tmp_path / "v.mp4"
    out.write_bytes(b"earlier video")
    sink = VideoSink(out, 25)
    sink.abort()
    assert out.read_bytes() == b"earlier video" and not leftovers(tmp_path)
    sink = VideoSink(out, 25)
    sink.write({}, np.zeros((16, 16, 3), np.uint8))
    sink.abort()
    assert out.read_bytes() == b"earlier video" and not leftovers(tmp_path)
    assert sink.saved_to == tmp_path / "v.partial.mp4"


# ------------------------------------------------------------------------------------------ decoding


def test_one_decoder_reduces_big_images_and_maps_boxes_back(files):
    from edgeag.edge.face import Face
    from edgeag.edge.images import decode_bgr, read_image, scale_boxes, scale_faces

    d = read_image(files["pano_jpg"])
    assert d.bgr.shape[:2] == (25, 2250) and d.scale == 0.25 and d.size == (9000, 100)
    assert read_image(files["pano_jpg"], reduce_above=None).bgr.shape[:2] == (100, 9000)
    for name in ("png16_png", "gray_png", "rgba_png", "cmyk_jpg", "one_px_png"):
        img = read_image(files[name]).bgr
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
    face = Face(box=(10, 5, 20, 20), score=0.9, age=30.0, gender="female", gender_confidence=0.9)
    assert scale_faces([face], 0.25)[0].box == (40, 20, 80, 80)
    assert scale_boxes([{"box": [10, 5, 20, 20]}], 0.25) == [{"box": [40, 20, 80, 80]}]
    assert decode_bgr(files["good_jpg"].read_bytes()).scale == 1.0


@pytest.mark.parametrize("name,reason", [("empty_jpg", "empty"), ("truncated_jpg", "corrupt"),
                                         ("text_jpg", "unsupported"), ("folder", "missing")])
def test_decoder_errors_have_a_reason_and_one_line(files, name, reason):
    from edgeag.edge.images import ImageError, read_image

    with pytest.raises(ImageError) as e:
        read_image(files[name])
    assert e.value.reason == reason and "\n" not in str(e.value)


def test_predict_reports_boxes_and_size_in_the_files_pixels(files, tmp_path):
    p = run_cli("predict", files["pano_jpg"], "--json", "-", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    p = run_cli("run", "--headless", "--image", files["pano_jpg"], "--json", "-", "-q", cwd=tmp_path)
    rec = json.loads(p.stdout)
    assert (rec["width"], rec["height"]) == (9000, 100)


# ------------------------------------------------------------------------------------------ sources


class _FakeCap:
    def __init__(self, n: int) -> None:
        self.n = n

    def read(self):
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self) -> None:
        pass

    def get(self, *a) -> float:
        return 0.0


def test_reconnect_applies_to_the_first_connection(monkeypatch):
    """A camera or RTSP source still booting: the first open is retried like a dropped one."""
    from edgeag.edge import sources

    opens = iter([None, None, _FakeCap(3)])
    monkeypatch.setattr(sources.CaptureSource, "_open", lambda self: next(opens, None))
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    msgs: list[str] = []
    src = sources.CaptureSource("rtsp://127.0.0.1/booting", "stream", warn=msgs.append, reconnect=3)
    assert msgs == ["rtsp://127.0.0.1/booting: cannot open yet; retrying (1/3)",
                    "rtsp://127.0.0.1/booting: cannot open yet; retrying (2/3)"]
    assert len(list(src)) == 3
    monkeypatch.setattr(sources.CaptureSource, "_open", lambda self: None)
    with pytest.raises(sources.SourceError, match="gave up after 3 attempts"):
        sources.CaptureSource(0, "camera", reconnect=2)


# ------------------------------------------------------------------------------------------ quiet


def test_quiet_run_prints_only_its_summary(files, tmp_path):
    """-q: no native LiteRT/MediaPipe/XNNPACK/FFmpeg lines, no notes: the summary line and nothing else."""
    p = run_cli("run", files["good_mp4"], "-q", "--json", tmp_path / "o.jsonl", "--save", tmp_path / "o.mp4",
                cwd=tmp_path)
    assert p.returncode == 0
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("done: 30 frames"), p.stderr


def test_python_api_prints_nothing(files, tmp_path):
    code = ("import numpy as np\nfrom edgeag import FaceAnalyzer\n"
            "with FaceAnalyzer(video=True) as fa:\n"
            "    fa.track(np.zeros((120, 160, 3), np.uint8), 0)\n"
            f"FaceAnalyzer().analyze({str(files['good_jpg'])!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEAG_DEBUG", "TF_CPP_MIN_LOG_LEVEL",
                                                            "GLOG_minloglevel")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_video_fixture_runs_in_the_base_install(tmp_path):
    """README's test-video command works without pytest (the base install has none)."""
    from conftest import UTK_TAR

    if not UTK_TAR.is_file():
        pytest.skip("UTKFace not found (../shared/data)")
    (tmp_path / "pytest.py").write_text("raise ImportError('no pytest in the base install')\n")
    script = Path(__file__).with_name("video_fixture.py")
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "f.mp4"), "3"], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert p.returncode == 0 and "wrote" in p.stdout, p.stderr[-2000:]


# ------------------------------------------------------------------------------------------ signals


def _lines_in_progress(folder: Path, name: str) -> int:
    """Lines written so far to the temporary file behind ``--json folder/name`` (renamed into place at the end)."""
    stem, suffix = name.rsplit(".", 1)
    return sum(p.read_text().count("\n") for p in folder.glob(f".{stem}.part*.{suffix}"))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signals_leave_valid_jsonl_and_a_playable_video(tmp_path, sig):
    """Ctrl-C, SIGTERM (docker stop) or SIGHUP (terminal closed) during `run --json --save`: exit 130, every
    JSON line complete, the MP4 playable; the earlier result in their place is replaced only then."""
    src = _video(tmp_path / "long.mp4", 3000)  # ~100 s of video: the run cannot finish before the signal
    out, mp4 = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    out.write_text(EARLIER)
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    proc = subprocess.Popen([sys.executable, "-m", "edgeag.cli", "run", "--video", str(src), "--headless",
                             "--json", str(out), "--save", str(mp4)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _lines_in_progress(tmp_path, out.name) < 10:
            time.sleep(0.1)
        assert out.read_text() == EARLIER  # untouched while the run goes on
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted ({sig})" in err and "done:" not in err and "Traceback" not in err
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses
    assert 10 <= len(records) < 3000
    cap = cv2.VideoCapture(str(mp4))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(records)
    assert not leftovers(tmp_path)


# ------------------------------------------------------------------------------------------ server rows


@dataclass
class HttpRow:
    id: str
    method: str
    path: str
    body: bytes | None
    headers: dict
    status: int


def _png(shape, dtype=np.uint8) -> bytes:
    return cv2.imencode(".png", np.zeros(shape, dtype))[1].tobytes()


def _jpeg(shape) -> bytes:
    return cv2.imencode(".jpg", np.full(shape, 128, np.uint8))[1].tobytes()


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose header claims another size (a decompression bomb's header)."""
    data = bytearray(_jpeg((16, 16, 3)))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


_BOUNDARY = "XyZ"
_MP = {"content-type": f"multipart/form-data; boundary={_BOUNDARY}"}


def _multipart(payload: bytes, name: str = "image") -> bytes:
    return (f"--{_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + payload + f"\r\n--{_BOUNDARY}--\r\n".encode()


HTTP_ROWS = [
    HttpRow("empty-body", "POST", "/v1/analyze", b"", {}, 400),
    HttpRow("text-plain", "POST", "/v1/analyze", b"hello", {"content-type": "text/plain"}, 415),
    HttpRow("json-body", "POST", "/v1/analyze", b'{"image": 1}', {"content-type": "application/json"}, 415),
    HttpRow("text-as-image", "POST", "/v1/analyze", b"not an image at all" * 10,
            {"content-type": "image/jpeg"}, 415),
    HttpRow("truncated-jpeg", "POST", "/v1/analyze", _jpeg((200, 200, 3))[:300], {}, 400),
    HttpRow("header-claims-60000px", "POST", "/v1/analyze", _jpeg_claiming(60000, 60000), {}, 413),
    HttpRow("oversize-body", "POST", "/v1/analyze", b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024), {}, 413),
    HttpRow("multipart-no-boundary", "POST", "/v1/analyze", b"--x\r\n", {"content-type": "multipart/form-data"},
            400),
    HttpRow("multipart-garbage", "POST", "/v1/analyze", b"garbage without any boundary", _MP, 400),
    HttpRow("multipart-no-image-field", "POST", "/v1/analyze",
            (f"--{_BOUNDARY}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--{_BOUNDARY}--\r\n"
             ).encode(), _MP, 400),
    HttpRow("multipart-text-file", "POST", "/v1/analyze", _multipart(b"hello"), _MP, 415),
    HttpRow("one-pixel", "POST", "/v1/analyze", _png((1, 1, 3)), {}, 200),
    HttpRow("png-16-bit", "POST", "/v1/analyze", _png((40, 30, 3), np.uint16), {}, 200),
    HttpRow("png-gray", "POST", "/v1/analyze", _png((40, 30)), {}, 200),
    HttpRow("multipart-png", "POST", "/v1/analyze", _multipart(_png((40, 30, 3))), _MP, 200),
    HttpRow("traversal-dots", "GET", "/static/..%2F..%2F..%2Fetc%2Fpasswd", None, {}, 404),
    HttpRow("traversal-encoded", "GET", "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd", None, {}, 404),
    HttpRow("unknown-static", "GET", "/static/index.html", None, {}, 404),
    HttpRow("wrong-method", "GET", "/v1/analyze", None, {}, 405),
]


@pytest.fixture(scope="module")
def http_client():
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    from fastapi.testclient import TestClient

    from edgeag.edge.server import create_app

    with TestClient(create_app(workers=1, max_upload_bytes=1024 * 1024), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("row", HTTP_ROWS, ids=[r.id for r in HTTP_ROWS])
def test_http_row(row: HttpRow, http_client):
    r = http_client.request(row.method, row.path, content=row.body, headers=row.headers)
    assert r.status_code == row.status, r.text
    assert "Traceback" not in r.text and "root:" not in r.text
    if row.status >= 400:
        body = r.json()
        assert list(body) == ["error"] and body["error"] and "\n" not in body["error"], body


def test_http_big_image_is_reduced_and_reported_in_its_own_pixels(http_client):
    body = cv2.imencode(".jpg", np.full((60, 8000, 3), 90, np.uint8))[1].tobytes()
    r = http_client.post("/v1/analyze", content=body)
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (8000, 60)


def _recv_response(s: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (headers and Content-Length body) from a raw socket."""
    reply = b""
    while b"\r\n\r\n" not in reply and (chunk := s.recv(65536)):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := s.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _raw(port: int, data: bytes, wait_reply: bool = True, timeout: float = 20) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if not wait_reply:
            time.sleep(0.3)
            return b""
        return _recv_response(s)


@pytest.mark.slow
def test_server_logs_client_faults_as_one_line_each(tmp_path):
    """A real `edgeag serve -v`: a client dropping mid-upload and a stalled upload log one line each (no
    traceback, no python-multipart line); other clients are served meanwhile; traversal gets 404."""
    pytest.importorskip("uvicorn")
    import httpx

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "edgeag.cli", "serve", "--port", "0", "-v", "--workers", "1",
                          "--upload-timeout", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, preexec_fn=default_sigint)
    try:
        url = p.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1])
        for _ in range(100):
            try:
                httpx.get(url + "/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        head = (b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                b"Content-Length: 100000\r\n\r\n")
        _raw(port, head + _multipart(b"\xff\xd8\xff" + b"0" * 5000)[:4000], wait_reply=False)  # drops mid-upload
        with socket.create_connection(("127.0.0.1", port), timeout=20) as slow:  # sends part, then stalls
            slow.sendall(head + b"--XyZ\r\n")
            assert httpx.get(url + "/healthz", timeout=5).status_code == 200  # others are served meanwhile
            reply = _recv_response(slow)
        assert reply.startswith(b"HTTP/1.1 408") and b"upload too slow" in reply, reply
        bad = httpx.post(url + "/v1/analyze", content=b"garbage", headers=_MP, timeout=10)
        assert bad.status_code == 400
        trav = _raw(port, b"GET /static/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
        assert trav.startswith(b"HTTP/1.1 404") and b"root:" not in trav
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert "Traceback" not in err and "Exception in ASGI" not in err, err
    assert "Expected boundary" not in err, err  # python-multipart's own line
    assert len([ln for ln in err.splitlines() if "disconnected during the upload" in ln]) == 1, err
    assert len([ln for ln in err.splitlines() if "upload stalled" in ln]) == 1, err
