"""The studies in benchmarks/experiments/ (not installed): their helpers still do what their results claim."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"))


# -- architecture grid -------------------------------------------------------------------------------------

def test_grid_parsing_and_pareto_front():
    from arch_grid import DEFAULT_GRID, GridEntry, parse_grid, pareto_front
    from edgeag.errors import BadInputError

    g = parse_grid(DEFAULT_GRID)
    assert [e.name for e in g] == ["mobilenet_w0.5", "mobilenet_w0.75", "mobilenet_w1", "resnet_w0.5",
                                   "efficientnet_w0.75"]
    assert parse_grid("resnet:0.5:2, resnet:0.5:2") == [GridEntry("resnet", 0.5, 2.0)]
    gray, rgb = parse_grid("mobilenet:0.75@48g,mobilenet:0.75@48")
    assert (gray.size, gray.channels, gray.name) == (48, 1, "mobilenet_w0.75_48px_gray")
    assert (rgb.size, rgb.channels, rgb.name) == (48, 3, "mobilenet_w0.75_48px")
    for bad in ("vgg:1", "mobilenet:x", "mobilenet:-1", "", "mobilenet:0.5@", "mobilenet:0.5@8", "mobilenet:0.5@x"):
        with pytest.raises(BadInputError):
            parse_grid(bad)
    # (latency, MAE): C is dominated by A, D ties A on latency but is worse; B and E trade off.
    xs, ys = [1.0, 2.0, 1.5, 1.0, 0.5], [6.0, 5.0, 6.5, 7.0, 8.0]
    assert pareto_front(xs, ys) == [4, 0, 1]


def test_deadline_stops_only_what_it_started():
    import time

    from arch_grid import _Deadline

    with _Deadline(0.05) as dl:  # SIGALRM fires inside the block and is swallowed
        t0 = time.time()
        while time.time() - t0 < 5:
            pass
    assert dl.fired and time.time() - t0 < 5
    with pytest.raises(KeyboardInterrupt):  # a real Ctrl-C still propagates
        with _Deadline(10):
            raise KeyboardInterrupt


def _fake_result(e, width_scale=1.0):
    return {"name": e.name, "arch": e.arch, "width": e.width, "depth": e.depth, "input_size": 32,
            "params": int(1e5 * e.width), "macs": int(1e6 * e.width), "epochs": 1, "epochs_run": 1,
            "train_seconds": 1.0, "seconds_per_epoch": 1.0, "time_limited": False, "interrupted": False,
            "train_limit": 8, "val_float": None, "test_float": None,
            "test_int8": {"n": 10, "age_mae": 10 - 4 * e.width, "gender_accuracy": 0.6 + 0.2 * e.width,
                          "ethnicity_accuracy": 0.5},
            "int8_bytes": int(1e5 * e.width), "int8_latency": {"p50_ms": 0.2 * e.width, "p90_ms": 0.3, "threads": 1,
                                                               "n": 5},
            "model_dir": "x", "int8_path": "x"}


def test_grid_orchestration_is_resumable_and_time_boxed(tmp_path, monkeypatch):
    """Training and evaluation are faked: this checks the bookkeeping (JSON, plot, skip, budget) cheaply."""
    import arch_grid

    calls = []

    def fake_train(e, model_dir, *a, **k):
        calls.append(e.name)
        return {"seconds_per_epoch": 1.0, "macs": 1e6}

    monkeypatch.setattr(arch_grid, "train_entry", fake_train)
    monkeypatch.setattr(arch_grid, "evaluate_entry", lambda e, *a, **k: _fake_result(e))
    import tarfile

    data = tmp_path / "d.tar"
    tarfile.open(data, "w").close()  # an empty archive: training and evaluation are faked
    kw = dict(grid="mobilenet:0.5,mobilenet:1.0,resnet:0.25", work=tmp_path / "w", out=tmp_path / "o", epochs=1,
              log=lambda s: None)
    res = arch_grid.run_grid(data, **kw)
    assert calls == ["mobilenet_w0.5", "mobilenet_w1", "resnet_w0.25"]
    saved = json.loads((tmp_path / "o" / "arch_grid.json").read_text())
    assert saved["schema_version"] == 1 and len(saved["models"]) == 3
    assert saved["pareto"]["age_mae_vs_latency"] == ["resnet_w0.25", "mobilenet_w0.5", "mobilenet_w1"]
    assert (tmp_path / "o" / "arch_grid.png").stat().st_size > 10_000
    assert res["models"] == saved["models"]
    # Run again with one more entry: only the new one trains.
    arch_grid.run_grid(data, **{**kw, "grid": kw["grid"] + ",efficientnet:0.75"})
    assert calls[3:] == ["efficientnet_w0.75"]
    # A spent budget starts nothing and says what was left out.
    res = arch_grid.run_grid(data, **{**kw, "grid": "resnet:1.0", "budget_min": 0.5})
    assert calls[4:] == [] and res["not_run"] == ["resnet_w1"]
    assert len(json.loads((tmp_path / "o" / "arch_grid.json").read_text())["models"]) == 4


def test_tta_zoom_crops_in_or_pads_about_the_centre():
    from tta_scales import zoom

    x = np.zeros((2, 20, 20, 3), np.uint8)
    x[:, 5:15, 5:15] = 200  # a bright centre square on black
    x[1, 0, :] = 255  # and a bright top edge in the second crop
    tight, loose = zoom(x, 0.5), zoom(x, 1.25)
    assert tight.shape == loose.shape == x.shape and tight.dtype == np.uint8
    assert (tight[0] == 200).all()  # the central half fills the whole crop
    assert (loose[:, :2] == 0).all() and (loose[:, :, :2] == 0).all()  # a black border of (20 - 16) / 2
    assert loose[1, 2, 10, 0] > 100 and loose[0, 10, 10, 0] == 200  # the top edge moved in, the centre stayed


def test_ensemble_score_averages_the_runs_before_thresholding():
    from ensembles import score

    age, gender, eth = np.array([10.0, 40.0]), np.array([1, 0]), np.array([2, 0])
    a = {"age": np.array([14.0, 40.0]), "p_female": np.array([0.9, 0.7]),
         "ethnicity": np.array([[0, 0, 1.0, 0, 0], [0.2, 0.8, 0, 0, 0]])}
    b = {"age": np.array([10.0, 36.0]), "p_female": np.array([0.3, 0.1]),
         "ethnicity": np.array([[0, 0, 0.6, 0.4, 0], [1.0, 0, 0, 0, 0]])}
    assert score([a], age, gender, eth) == {"age_mae": 2.0, "gender_accuracy": 0.5, "ethnicity_accuracy": 0.5}
    # mean age 12 / 38 (MAE 2), mean P(female) 0.6 / 0.4 (both right), mean ethnicity argmax 2 / 0 (both right)
    assert score([a, b], age, gender, eth) == {"age_mae": 2.0, "gender_accuracy": 1.0, "ethnicity_accuracy": 1.0}
