"""Keras weights recovered from a ``.tflite`` written by ``edgeag quantize`` (``--init-from MODEL.tflite``).

A model file is all that ships (the bundled default has no Keras checkpoint beside it), so training on from
it starts here: each convolution's and dense layer's weights are read back from the file (int8 values times
their scales), and each batch norm, which the converter folded into the convolution before it, is unfolded
again: its statistics are measured on training crops and its scale and shift set so that the layer computes
what the file computes (``unfold_batchnorm``). A prior divided out of the age head (``--age-prior``) is put
back, from the training ages of the data trained on (for the bundled model, the same UTKFace split). The
recovered float model matches the file up to its int8 rounding; training on removes that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeag.errors import BadInputError

WEIGHTED_OPS = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D"}
HEADS = ("age_logits", "gender", "ethnicity")  # dense layers, told apart by their kernel's shape


def _dequantized(interp, index: int) -> np.ndarray:
    """A constant tensor of the file as float32 (int8/int32 values times their scales; float as is)."""
    detail = interp._get_tensor_details(index, 0)
    value = interp.get_tensor(index)
    q = detail["quantization_parameters"]
    if not len(q["scales"]):
        return value.astype(np.float32)
    axis = q["quantized_dimension"]
    shape = [1] * value.ndim
    if len(q["scales"]) > 1:
        shape[axis] = -1
    scales, zero = np.reshape(q["scales"], shape), np.reshape(q["zero_points"], shape)
    return ((value.astype(np.float64) - zero) * scales).astype(np.float32)


def read_layers(path: Path) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict]:
    """([(Keras layer class, kernel, bias)] of the convolutions in graph order, {kernel shape: (kernel, bias)}
    of the dense layers), in Keras layouts."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(path))
    except ValueError as exc:
        raise BadInputError(f"{path}: not a TFLite model ({str(exc).splitlines()[0]})") from None
    convs, dense = [], {}
    for op in interp._get_ops_details():
        name, inputs = op["op_name"], op["inputs"]
        if name in WEIGHTED_OPS or name == "FULLY_CONNECTED":
            w = _dequantized(interp, inputs[1])
            b = _dequantized(interp, inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else np.zeros(len(w), np.float32)
            if name == "FULLY_CONNECTED":
                dense[w.T.shape] = (w.T, b)
            else:  # TFLite: [out, kh, kw, in] (depthwise: [1, kh, kw, channels]); Keras: [kh, kw, in, out]
                convs.append((WEIGHTED_OPS[name], w.transpose(1, 2, 3, 0), b))
    return convs, dense


def load_into(model, path: Path, meta: dict, train_x: np.ndarray, train_ages: np.ndarray) -> None:
    """Set ``model`` (built from ``meta["architecture"]``) to the weights of the ``.tflite`` at ``path``."""
    from edgeag.train.model import DLDL_SIGMA, train_log_prior

    convs, dense = read_layers(path)
    layers = [lyr for lyr in model.layers if type(lyr).__name__ in ("Conv2D", "DepthwiseConv2D")]
    if [type(lyr).__name__ for lyr in layers] != [c[0] for c in convs]:
        raise BadInputError(f"{path}: its graph does not match the architecture its metadata names")
    biases = {}
    for layer, (_, kernel, bias) in zip(layers, convs):
        layer.set_weights([kernel])
        biases[layer.name] = bias
    for head in HEADS:
        if head in [lyr.name for lyr in model.layers]:
            layer = model.get_layer(head)
            if tuple(layer.kernel.shape) not in dense:
                raise BadInputError(f"{path}: no dense layer of shape {tuple(layer.kernel.shape)} for the {head} head")
            kernel, bias = dense[tuple(layer.kernel.shape)]
            if head == "age_logits" and "age_prior" in meta:  # put back what --age-prior took out
                bias = bias + meta["age_prior"]["beta"] * train_log_prior(train_ages, layer.units, DLDL_SIGMA)
            layer.set_weights([kernel, bias.astype(np.float32)])
    unfold_batchnorm(model, biases, train_x)


def unfold_batchnorm(model, folded_bias: dict, x: np.ndarray, batch: int = 64) -> None:
    """Give each batch norm after a convolution in ``folded_bias`` the statistics of that convolution's
    output on ``x`` (mean m, variance v) and the scale sqrt(v + eps) and shift m + bias, so that in inference
    it adds the folded bias and nothing else, and in training (batch statistics close to m, v) nearly so."""
    import keras

    pairs = []  # (conv layer, the batch norm that reads it)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            conv = layer._inbound_nodes[0].parent_nodes[0].operation  # the layer whose output it normalises
            pairs.append((conv, layer))
    for conv, bn in pairs:  # first as a pure bias (mean 0, variance 1 - eps): the file's function
        bias = folded_bias[conv.name]
        bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1 - bn.epsilon)])
    probe = keras.Model(model.input, [conv.output for conv, _ in pairs])
    sums = [0.0] * len(pairs)
    squares = [0.0] * len(pairs)
    for i in range(0, len(x), batch):
        for k, out in enumerate(probe(x[i:i + batch].astype(np.float32), training=False)):
            out = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
            sums[k] = sums[k] + out.sum(0)
            squares[k] = squares[k] + (out ** 2).sum(0)
    for k, (conv, bn) in enumerate(pairs):
        count = len(x) * np.prod(probe.outputs[k].shape[1:-1])  # values per channel: images x positions
        mean = sums[k] / count
        var = np.maximum(squares[k] / count - mean ** 2, 0.0)
        bias = folded_bias[conv.name]
        bn.set_weights([np.sqrt(var + bn.epsilon), mean + bias, mean, var])
