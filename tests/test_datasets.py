"""Data loaders: UTKFace folder/tar/zip, the Kaggle CSV, splits, and broken inputs."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import KAGGLE_CSV, SPLIT_FILE, needs_data, utk_members, write_tar
from edgeag.errors import BadInputError
from edgeag.train.datasets import Dataset, hash_split, parse_utk_name


def test_parse_utk_name():
    assert parse_utk_name("26_1_2_20170116174525125.jpg.chip.jpg") == (26, 1, 2)
    assert parse_utk_name("UTKFace/1_0_4_2017.jpg") == (1, 0, 4)
    assert parse_utk_name("39_1_20170116174525125.jpg.chip.jpg") is None  # missing race field
    assert parse_utk_name("26_3_2_2017.jpg") is None  # gender out of range
    assert parse_utk_name("readme.txt") is None


def test_hash_split_is_deterministic_and_roughly_80_10_10():
    ids = [f"face{i}.jpg" for i in range(5000)]
    a = [hash_split(i, seed=1) for i in ids]
    assert a == [hash_split(i, seed=1) for i in ids]
    assert a != [hash_split(i, seed=2) for i in ids]
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert 0.77 < share["train"] < 0.83 and 0.08 < share["val"] < 0.12 and 0.08 < share["test"] < 0.12


@needs_data
def test_kaggle_csv_streams_all_rows_as_48x48_gray():
    ds = Dataset(KAGGLE_CSV)
    recs = list(ds.records())
    assert len(recs) == 500 and ds.skipped.total == 0
    r = recs[0]
    assert r.image.shape == (48, 48) and r.image.dtype == np.uint8
    assert r.gender in (0, 1) and 0 <= r.ethnicity <= 4 and r.split in ("train", "val", "test")


def test_kaggle_csv_skips_malformed_rows(tmp_path):
    good = " ".join(["128"] * 2304)
    rows = ["age,ethnicity,gender,img_name,pixels",
            f"30,0,1,a.jpg,{good}",
            f"30,0,1,b.jpg,{' '.join(['1'] * 100)}",  # short pixel row
            f"thirty,0,1,c.jpg,{good}",  # non-numeric
            f"30,9,1,d.jpg,{good}",  # ethnicity out of range
            f"40,2,0,e.jpg,{good}"]
    p = tmp_path / "k.csv"
    p.write_text("\n".join(rows) + "\n")
    ds = Dataset(p)
    recs = list(ds.records())
    assert [r.id for r in recs] == ["a.jpg", "e.jpg"]
    assert ds.skipped.counts == {"wrong pixel count": 1, "non-numeric field": 1, "value out of range": 1}
    assert "line 3" in ds.skipped.summary()


def test_csv_without_kaggle_columns_is_a_clear_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(BadInputError, match="Kaggle format"):
        list(Dataset(p).records())


@needs_data
def test_utk_tar_zip_and_folder_agree_and_skip_broken_entries(tmp_path):
    members = utk_members(12)
    broken = [("39_1_20170116174525125.jpg.chip.jpg", members[0][1]),  # badly named
              ("30_0_1_2017.jpg.chip.jpg", b"\xff\xd8\xff not a jpeg")]  # corrupt bytes
    tar = write_tar(tmp_path / "utk.tar", members + broken)
    with tarfile.open(tmp_path / "utk.tar.gz", "w:gz") as tf:
        for name, data in members + broken:
            info = tarfile.TarInfo("UTKFace/" + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(tmp_path / "utk.zip", "w") as zf:
        for name, data in members + broken:
            zf.writestr("UTKFace/" + name, data)
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    for name, data in members + broken:
        (folder / name).write_bytes(data)

    results = {}
    for path in (tar, tmp_path / "utk.tar.gz", tmp_path / "utk.zip", folder):
        ds = Dataset(path)
        recs = list(ds.records())
        results[path.name] = sorted((r.id, r.age, r.gender, r.ethnicity) for r in recs)
        assert ds.skipped.counts == {"badly named file": 1, "undecodable image": 1}, path
        assert recs[0].image.ndim == 3 and recs[0].image.shape[2] == 3
    assert len({tuple(v) for v in results.values()}) == 1
    assert len(results["utk.tar"]) == 12


@needs_data
def test_split_file_selects_the_fixed_split(tmp_path):
    members = utk_members(40)
    tar = write_tar(tmp_path / "utk.tar", members)
    ds = Dataset(tar, SPLIT_FILE)
    per = {s: [r.id for r in ds.records(s)] for s in ("train", "val", "test") if _has(ds, s)}
    assert sum(len(v) for v in per.values()) == 40
    assert len(set().union(*map(set, per.values()))) == 40  # disjoint

    # The split file fixes the split, so the seed must not split the crop cache; without one it draws the split.
    assert Dataset(tar, SPLIT_FILE, seed=0).fingerprint() == Dataset(tar, SPLIT_FILE, seed=3).fingerprint()
    assert Dataset(tar, seed=0).fingerprint() != Dataset(tar, seed=3).fingerprint()


def _has(ds, split):
    try:
        next(iter(ds.records(split)))
        return True
    except (StopIteration, BadInputError):
        return False


def test_missing_path_and_empty_archive_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        Dataset(tmp_path / "nope.tar")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(BadInputError, match="no usable records"):
        list(Dataset(empty).records())
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(BadInputError):
        list(Dataset(junk).records())


def test_cli_reports_missing_data_with_exit_code_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeag.cli", "evaluate", str(tmp_path / "m.tflite"), "--data",
                        str(tmp_path / "missing.tar")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "error" in r.stderr
