"""Divide the training set's age prior out of a distribution age head (``edgeag quantize --age-prior BETA``).

A distribution head learns p(age | face), proportional to p(face | age) x p_train(age): the training set's ages
(UTKFace: many 20-35 year olds and babies, few over 60) pull every uncertain face (small, dim, blurred, or
simply old) towards the crowded ages: the regression to the mean. Subtracting ``beta * log p_train(age)`` from
the age logits removes that pull (logit adjustment): beta 0 is the model as trained, 1 treats every age as
equally likely. It is a constant added to the last layer's bias: no cost per face.
Measured in ``benchmarks/experiments/age_prior.py`` (MODEL_CARD.md).
"""

from __future__ import annotations

import numpy as np

from edgeag.errors import BadInputError


def check_age_prior(beta: float) -> None:
    if not 0.0 <= beta <= 1.0:
        raise BadInputError(f"--age-prior must be within [0, 1], got {beta}")


def divide_out_age_prior(model, config: dict, train_ages: np.ndarray, beta: float) -> dict:
    """Subtract ``beta * log p_train(age)`` from ``model``'s age-logit bias, in place; returns the config with
    an ``age_prior`` entry for the file's metadata."""
    # Lazily: the workflow module stays importable without Keras.
    from edgeag.train.model import DLDL_SIGMA, train_log_prior

    if config.get("model", {}).get("age_head") != "distribution":
        raise BadInputError("--age-prior needs a distribution age head (a model trained with --age-loss distribution)")
    check_age_prior(beta)
    layer = model.get_layer("age_logits")
    log_prior = train_log_prior(train_ages, layer.units, DLDL_SIGMA)
    layer.bias.assign(np.asarray(layer.bias.numpy(), np.float64) - beta * log_prior)
    return {**config, "age_prior": {"beta": beta, "of": f"the training split's ages ({len(train_ages)} faces)"}}
