"""Training augmentation (camera degradations + crop jitter) and the framing of face chips before cropping."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import decode_rgb, needs_data, utk_members



def faces(n: int = 8, size: int = 64) -> np.ndarray:
    import cv2

    imgs = [cv2.resize(decode_rgb(b), (size, size), interpolation=cv2.INTER_AREA)
            for _, b in utk_members(n * 40, split="val")[::40]]
    return np.stack(imgs).astype(np.float32)


def degrade_all(x, cfg, seed=0):
    from edgeag.train.augment import degrade

    rng = np.random.default_rng(seed)
    return np.stack([degrade(img, cfg, 0.1, rng) for img in x])


@needs_data
def test_augmentation_keeps_shape_and_range_is_seeded_and_off_at_p0():
    from edgeag.train.augment import DegradeConfig, augment_batch

    x = faces().astype(np.uint8)
    y = augment_batch(x, 0, DegradeConfig(p=1.0), margin=0.1)
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 255
    assert np.abs(y - x).mean() > 3  # it really changed the images
    assert np.array_equal(y, augment_batch(x, 0, DegradeConfig(p=1.0), margin=0.1))  # same seed, same batch
    assert not np.array_equal(y, augment_batch(x, 1, DegradeConfig(p=1.0), margin=0.1))
    gray = faces()[:, :, :, :1]
    assert augment_batch(gray, 0, DegradeConfig(p=1.0), margin=0.1).shape == gray.shape


@needs_data
def test_low_capture_resolution_removes_fine_detail():
    from edgeag.train.augment import DegradeConfig

    x = faces()
    only_res = DegradeConfig(p=1.0, face_px=(18.0, 18.0), p_blur=0, p_motion=0, p_exposure=0, p_cast=0,
                             p_gray=0, p_noise=0, p_jpeg=0, gamma=(1.0, 1.0))
    y = degrade_all(x, only_res)

    def fine(a):  # energy of the Laplacian: high spatial frequencies
        return np.abs(a[:, 1:-1, 1:-1] * 4 - a[:, :-2, 1:-1] - a[:, 2:, 1:-1] - a[:, 1:-1, :-2] - a[:, 1:-1, 2:]).mean()

    assert fine(y) < 0.5 * fine(x)
    assert abs(y.mean() - x.mean()) < 3  # no change of exposure


@needs_data
def test_dim_exposure_darkens_and_grayscale_has_equal_channels():
    from edgeag.train.augment import DegradeConfig

    x = faces()
    base = dict(p=1.0, face_px=(64.0, 64.0), p_blur=0, p_motion=0, p_cast=0, p_noise=0, p_jpeg=0,
                gamma=(1.0, 1.0))
    dim = degrade_all(x, DegradeConfig(**base, p_exposure=1.0, gain=(0.2, 0.2), p_gray=0))
    assert dim.mean() < 0.7 * x.mean()
    gray = degrade_all(x, DegradeConfig(**base, p_exposure=0, p_gray=1.0))
    assert np.allclose(gray[..., 0], gray[..., 1], atol=1) and np.allclose(gray[..., 1], gray[..., 2], atol=1)


def test_max_brightening_sets_the_top_exposure_gain_and_brightens():
    """--max-brightening G: the camera augmentation's exposure gain reaches G (default 2.2), and at G = 4 a
    crop degraded with every other effect off comes out brighter on average than at the default."""
    from edgeag.train.augment import batch_augmentation

    def config(**kw):
        fn = batch_augmentation("camera", 0.1, **kw)
        return next(c.cell_contents for c in fn.__closure__ if hasattr(c.cell_contents, "gain"))

    assert config().gain == (0.2, 2.2) and config(max_brightening=4.0).gain == (0.2, 4.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(40, 120, (64, 32, 32, 3)).astype(np.float32)
    means = [batch_augmentation("camera", 0.1, top)(x, 0).mean() for top in (2.2, 4.0)]
    assert means[1] > means[0]


def test_jitter_fills_edges_without_black_corners():
    from edgeag.train.augment import JitterConfig, jitter

    rng = np.random.default_rng(0)
    for _ in range(16):
        y = jitter(np.full((48, 48, 3), 200.0, np.float32), JitterConfig(), rng)
        assert y.shape == (48, 48, 3) and y.min() > 190  # reflection, never a constant black fill


def test_training_pipeline_keeps_labels_and_shapes():
    pytest.importorskip("tensorflow", reason="the training pipeline needs edgeag[train]")
    from edgeag.train.augment import DegradeConfig, augment_batch, augmenter
    from edgeag.train.cache import CropSet
    from edgeag.train.fit import _tf_dataset

    n, s = 10, 32
    rng = np.random.default_rng(0)
    crops = CropSet(rng.integers(0, 255, (n, s, s, 3), dtype=np.uint8), np.arange(n, dtype=np.float32) * 7,
                    (np.arange(n) % 2).astype(np.int8), (np.arange(n) % 5).astype(np.int8),
                    np.array([f"id{i}" for i in range(n)]), np.array(["train"] * n), np.zeros(n, bool))
    degrade_all = augmenter(lambda b, seed: augment_batch(b, seed, DegradeConfig(p=1.0), 0.1))
    ds = _tf_dataset(crops, 4, False, degrade_all, seed=0)
    xs, ages, genders, eths = [], [], [], []
    for x, t in ds:
        xs.append(x.numpy()); ages.append(t["age"].numpy()); genders.append(t["gender"].numpy())
        eths.append(t["ethnicity"].numpy())
    x = np.concatenate(xs)
    assert x.shape == (n, s, s, 3) and x.min() >= 0 and x.max() <= 255
    assert np.array_equal(np.concatenate(ages).ravel(), crops.age)
    assert np.array_equal(np.concatenate(genders).ravel(), crops.gender.astype(np.float32))
    assert np.array_equal(np.concatenate(eths).ravel(), crops.ethnicity)
    # evaluation's pipeline (no augmenter) gives the crops back unchanged
    plain = np.concatenate([x.numpy() for x, _ in _tf_dataset(crops, 4, False, None, seed=0)])
    assert np.array_equal(plain, crops.x.astype(np.float32))


def test_model_graph_has_no_augmentation():
    pytest.importorskip("tensorflow", reason="the model needs edgeag[train]")
    from edgeag.train.model import ModelConfig, build_model

    m = build_model(ModelConfig(input_size=32, width=0.35))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    a, b = m(x, training=False), m(x, training=False)
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
    assert not any("random" in layer.name or "augment" in layer.name for layer in m.layers)


@needs_data
def test_framed_chip_crop_has_no_black_corners_and_finds_the_face():
    from edgeag.edge.crop import CropSpec
    from edgeag.edge.detector import FaceDetector
    from edgeag.train.cache import chip_crop, frame_chip

    chips = [decode_rgb(b) for _, b in utk_members(200, split="test")[::20]]
    framed, pad = frame_chip(chips[0])
    assert framed.shape[0] == chips[0].shape[0] + 2 * pad
    assert np.array_equal(framed[pad:-pad, pad:-pad], chips[0])
    spec = CropSpec(size=64, margin=0.1)
    with FaceDetector() as det:
        results = [chip_crop(c, det, spec) for c in chips]
    assert sum(missed for _, missed in results) <= 1
    black = []
    for crop, _ in results:
        assert crop.shape == (64, 64, 3)
        corners = np.concatenate([crop[:4, :4], crop[:4, -4:], crop[-4:, :4], crop[-4:, -4:]]).reshape(-1, 3)
        black.append((corners.max(axis=1) < 8).mean())
    assert np.mean(black) < 0.15  # no black fill (a few chips have a black background of their own)
