"""Compact multi-head CNNs for age, gender and ethnicity (Keras 3, functional API).

Every architecture takes uint8-range pixels and normalises them itself (first layer), so the model file
is the single place that defines normalisation. Heads, by name:
  ``age``        years: linear regression, or (``age_head="distribution"``) the expectation of
                 ``age_logits``, a softmax over the ages 0..116 trained towards a Gaussian around the label;
  ``gender``     P(female), sigmoid;
  ``ethnicity``  5-way softmax (White, Black, Asian, Indian, Others).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from edgeag.errors import BadInputError
from edgeag.train.config import ModelConfig  # noqa: F401 - the config of build_model, re-exported

ARCHS = ("mobilenet", "resnet", "efficientnet")
AGE_HEADS = ("regression", "distribution")
AGE_BINS = 117  # ages 0..116, UTKFace's range
DLDL_SIGMA = 2.0  # years: width of the Gaussian target of the distribution head


@keras.saving.register_keras_serializable(package="edgeag")
def age_distribution_loss(y_true, logits):
    """Label-distribution loss: cross-entropy between a Gaussian around the true age (sigma 2 years,
    over the ages 0..116) and the softmax of ``logits``. Equal to the KL divergence up to a constant.
    Unlike L1 it tells the model how far off each wrong age is, and it keeps the gradient alive near
    the label, where L1's is a constant sign."""
    from keras import ops

    ages = ops.arange(AGE_BINS, dtype="float32")
    d = ops.reshape(ops.cast(y_true, "float32"), (-1, 1)) - ages
    target = ops.exp(-0.5 * ops.square(d / DLDL_SIGMA))
    target = target / ops.sum(target, axis=-1, keepdims=True)
    return -ops.sum(target * ops.log_softmax(ops.cast(logits, "float32"), axis=-1), axis=-1)


PRIOR_FLOOR = 1e-4  # added to every age's probability, so an age absent from training is not pushed up without bound


def train_log_prior(train_ages: np.ndarray, bins: int, sigma: float) -> np.ndarray:
    """log p_train(age) over the ages 0..bins-1: the training ages spread as the distribution loss spreads its
    targets (a Gaussian of ``sigma`` years), plus ``PRIOR_FLOOR``, normalised."""
    ages = np.arange(bins)
    hist = np.bincount(np.clip(np.asarray(train_ages).astype(int), 0, bins - 1), minlength=bins).astype(np.float64)
    if hist.sum() == 0:
        raise BadInputError("--age-prior needs the training split's ages, and the data has no train split")
    p = np.exp(-0.5 * ((ages[:, None] - ages[None, :]) / sigma) ** 2) @ hist
    p = p / p.sum() + PRIOR_FLOOR
    return np.log(p / p.sum())


# Keras's default 0.99 lets the moving statistics lag so far behind fast-changing weights in the first
# epochs that inference-mode outputs collapse to a constant (measured here: val = constant predictor
# after 2 epochs). 0.9 tracks within ~10 steps.
BN_MOMENTUM = 0.9


def _ch(c: float, width: float, divisor: int = 8) -> int:
    """Channels scaled by width, rounded to a multiple of 8 (fast SIMD paths in XNNPACK)."""
    v = max(divisor, int(c * width + divisor / 2) // divisor * divisor)
    return v + divisor if v < 0.9 * c * width else v


def _blocks(n: int, depth: float) -> int:
    return max(1, round(n * depth))


def _conv_bn(x, filters: int, kernel: int = 3, stride: int = 1, act: str | None = "relu6", name: str = ""):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation(act, name=f"{name}_{act}")(x) if act else x


def _inverted_residual(x, expand: int, out: int, stride: int, name: str, kernel: int = 3,
                       act: str = "relu6", se: bool = False):
    """MobileNetV2 block: 1x1 expand, depthwise kxk, (squeeze-excite), 1x1 linear project."""
    inp = x.shape[-1]
    h = x
    if expand != 1:
        h = _conv_bn(h, inp * expand, 1, act=act, name=f"{name}_expand")
    h = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_dw")(h)
    h = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(h)
    h = layers.Activation(act, name=f"{name}_dw_{act}")(h)
    if se:
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(h)
        s = layers.Conv2D(max(8, inp // 4), 1, activation="relu", name=f"{name}_se_reduce")(s)
        s = layers.Conv2D(h.shape[-1], 1, activation="hard_sigmoid", name=f"{name}_se_expand")(s)
        h = layers.Multiply(name=f"{name}_se")([h, s])
    h = _conv_bn(h, out, 1, act=None, name=f"{name}_project")
    if stride == 1 and inp == out:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def _fused_block(x, expand: int, out: int, stride: int, name: str):
    """Fused-MBConv (EfficientNetV2): a full 3x3 conv replaces expand + depthwise at high resolution,
    where depthwise convolutions are slow to train on CPUs and cheap full convs are not."""
    inp = x.shape[-1]
    h = _conv_bn(x, inp * expand, 3, stride, name=f"{name}_fused")
    h = _conv_bn(h, out, 1, act=None, name=f"{name}_project")
    if stride == 1 and inp == out:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


# (expansion, channels, blocks, stride): MobileNetV2's table, last stage trimmed for small inputs.
MOBILENET_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 128, 3, 2)]


def _mobilenet(x, cfg: ModelConfig):
    # The first `fused_stages` stages use Fused-MBConv (see _fused_block), the rest depthwise-separable blocks.
    x = _conv_bn(x, _ch(32, cfg.width), 3, cfg.stem_stride, name="stem")
    for si, (t, c, n, s) in enumerate(MOBILENET_STAGES):
        t = min(t, cfg.expansion)
        for bi in range(_blocks(n, cfg.depth)):
            if si < cfg.fused_stages:
                x = _fused_block(x, min(t, 4), _ch(c, cfg.width), s if bi == 0 else 1, name=f"f{si}_{bi}")
            else:
                x = _inverted_residual(x, t, _ch(c, cfg.width), s if bi == 0 else 1, name=f"b{si}_{bi}")
    return _conv_bn(x, _ch(512, cfg.width), 1, name="top")


def _efficientnet(x, cfg: ModelConfig):
    # EfficientNet-lite style (no SE, relu6, 5x5 kernels in later stages): (expansion, ch, blocks, stride, k).
    table = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
             (6, 192, 3, 2, 5)]
    x = _conv_bn(x, _ch(32, cfg.width), 3, cfg.stem_stride, name="stem")
    for si, (t, c, n, s, k) in enumerate(table):
        for bi in range(_blocks(n, cfg.depth)):
            x = _inverted_residual(x, t, _ch(c, cfg.width), s if bi == 0 else 1, name=f"e{si}_{bi}", kernel=k)
    return _conv_bn(x, _ch(512, cfg.width), 1, name="top")


def _resnet(x, cfg: ModelConfig):
    # A small ResNet (basic blocks), widths 32-64-128-256 times width.
    x = _conv_bn(x, _ch(32, cfg.width), 3, cfg.stem_stride, act="relu", name="stem")
    for si, (c, n, s) in enumerate([(32, 1, 1), (64, 2, 2), (128, 2, 2), (256, 2, 2)]):
        for bi in range(_blocks(n, cfg.depth)):
            stride = s if bi == 0 else 1
            out = _ch(c, cfg.width)
            h = _conv_bn(x, out, 3, stride, act="relu", name=f"r{si}_{bi}_a")
            h = _conv_bn(h, out, 3, 1, act=None, name=f"r{si}_{bi}_b")
            if stride != 1 or x.shape[-1] != out:
                x = _conv_bn(x, out, 1, stride, act=None, name=f"r{si}_{bi}_short")
            x = layers.Activation("relu", name=f"r{si}_{bi}_out")(layers.Add(name=f"r{si}_{bi}_add")([x, h]))
    return x


# Pixel statistics of a typical training crop after ``normalise`` (pixels/127.5 - 1): what ``ExposureNorm`` maps
# every face to, so that a model trained without it sees nearly the same input on an ordinary face.
TYPICAL_MEAN, TYPICAL_STD = 0.03, 0.45  # means over 3,000 UTKFace training crops (112 px, margin 0.1)


@keras.saving.register_keras_serializable(package="edgeag")
class ExposureNorm(layers.Layer):
    """Each face's brightness and contrast set to a typical crop's: (x - mean) / std, over the whole crop (all
    channels, so colour balance is kept), times ``TYPICAL_STD`` plus ``TYPICAL_MEAN``. No weights; a dim or
    washed-out face reaches the first convolution at the contrast of a well-lit one."""

    def call(self, x):
        from keras import ops

        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        var = ops.mean(ops.square(x - mean), axis=(1, 2, 3), keepdims=True)
        return (x - mean) * ops.rsqrt(var + 1e-3) * TYPICAL_STD + TYPICAL_MEAN


def build_model(cfg: ModelConfig, mean_age: float = 33.0) -> keras.Model:
    """The multi-head model. Input: float pixels in [0, 255], shape (size, size, channels)."""
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown architecture {cfg.arch!r}; choose from {', '.join(ARCHS)}")
    inp = keras.Input((cfg.input_size, cfg.input_size, cfg.channels), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(inp)
    if cfg.exposure_norm:
        x = ExposureNorm(name="exposure_norm")(x)
    x = {"mobilenet": _mobilenet, "resnet": _resnet, "efficientnet": _efficientnet}[cfg.arch](x, cfg)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(cfg.dropout, name="dropout")(x)
    outputs = {}
    if cfg.age_head == "distribution":
        # Prior at start: a broad Gaussian (sigma 15 years) around the training median.
        logits_layer = layers.Dense(AGE_BINS, name="age_logits")
        outputs["age_logits"] = logits_layer(x)
        logits_layer.bias.assign(-0.5 * ((np.arange(AGE_BINS) - mean_age) / 15.0) ** 2)
        p = layers.Softmax(name="age_softmax")(outputs["age_logits"])
        # Expected age, a fixed (non-trainable) dot product with the bin ages.
        expect = layers.Dense(1, use_bias=False, trainable=False, name="age")
        age = expect(p)
        expect.kernel.assign(np.arange(AGE_BINS, dtype="float32").reshape(-1, 1))
    elif cfg.age_head == "regression":
        age = layers.Dense(1, name="age", bias_initializer=keras.initializers.Constant(mean_age))(x)
    else:
        raise ValueError(f"unknown age head {cfg.age_head!r}; choose from {', '.join(AGE_HEADS)}")
    gender = layers.Dense(1, activation="sigmoid", name="gender")(x)
    ethnicity = layers.Dense(5, activation="softmax", name="ethnicity")(x)
    outputs.update(age=age, gender=gender, ethnicity=ethnicity)
    return keras.Model(inp, outputs, name=f"edgeag_{cfg.arch}")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates per face of the conv and dense layers (what dominates the cost)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            out_shape = layer.output.shape
            spatial = 1
            for d in out_shape[1:-1]:
                spatial *= d
            kernel = layer.get_weights()[0]
            if isinstance(layer, layers.DepthwiseConv2D):
                total += spatial * kernel.shape[0] * kernel.shape[1] * out_shape[-1]
            else:
                per_out = 1
                for d in kernel.shape[:-1]:
                    per_out *= d
                total += spatial * per_out * out_shape[-1]
    return int(total)
