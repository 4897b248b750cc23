"""Evaluation metrics: figures, their 95% intervals and the Markdown report (no model needed)."""

from __future__ import annotations

import json

import numpy as np

from edgeag.train.evaluate import bootstrap_mean_interval, compute_metrics, markdown_table, wilson_interval


def test_wilson_interval_matches_reference_values():
    # Reference values (Wilson 1927; e.g. Newcombe 1998, Table I): 0/10 -> 0-0.2775, 8/10 -> 0.4902-0.9433.
    assert np.allclose(wilson_interval(0, 10), (0.0, 0.2775), atol=1e-4)
    assert np.allclose(wilson_interval(8, 10), (0.4902, 0.9433), atol=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.7 < lo < 0.75
    # more faces, a narrower interval around the same proportion
    a, b = wilson_interval(92, 100), wilson_interval(2180, 2370)
    assert a[0] < b[0] < 0.92 < b[1] < a[1]


def test_bootstrap_interval_is_seeded_and_covers_the_mean_like_the_normal_approximation():
    x = np.random.default_rng(1).exponential(5.0, 2000)
    lo, hi = bootstrap_mean_interval(x)
    assert (lo, hi) == bootstrap_mean_interval(x)  # seeded
    half = 1.96 * x.std() / np.sqrt(len(x))
    assert lo < x.mean() < hi and abs((hi - lo) / 2 - half) < 0.15 * half
    assert bootstrap_mean_interval(np.array([3.0])) is None


def test_metrics_carry_intervals_per_group_and_the_report_prints_them():
    rng = np.random.default_rng(0)
    n = 400
    age = rng.integers(0, 90, n).astype(np.float32)
    gender = rng.integers(0, 2, n)
    eth = rng.integers(0, 5, n)
    wrong = rng.random(n) < 0.1  # 90% of genders right
    pred = {"age": age + rng.normal(0, 5, n), "p_female": np.where(wrong, 1 - gender, gender) * 0.8 + 0.1,
            "ethnicity": np.eye(5)[eth]}
    pred["age"][0] = 200.0  # one wild guess: the MAE and its interval move together
    m = compute_metrics(age, gender, eth, pred)
    o = m["overall"]
    assert o["gender_accuracy"] == 1 - wrong.mean()
    g_lo, g_hi = o["interval95"]["gender_accuracy"]
    assert g_lo < o["gender_accuracy"] < g_hi and g_hi - g_lo < 0.07
    a_lo, a_hi = o["interval95"]["age_mae"]
    assert a_lo < o["age_mae"] < a_hi
    # small groups get wide intervals
    small = m["by_age"]["81+"]
    assert small["n"] < 50
    s_lo, s_hi = small["interval95"]["gender_accuracy"]
    assert s_hi - s_lo > g_hi - g_lo
    json.dumps(m)  # plain JSON: no NaN, no numpy types
    table = markdown_table(m)
    assert f"{100 * o['gender_accuracy']:.1f}% ({100 * g_lo:.1f}-{100 * g_hi:.1f})" in table


def test_gender_by_coverage_keeps_the_most_confident_faces():
    from edgeag.train.evaluate import gender_by_coverage

    g_t = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    # confident and right, then two uncertain mistakes
    g_p = np.array([0.99, 0.02, 0.95, 0.1, 0.9, 0.15, 0.8, 0.25, 0.45, 0.55])
    cov = gender_by_coverage(g_t, g_p, (1.0, 0.8))
    assert cov["1.00"] == {"faces": 10, "accuracy": 0.8, "min_confidence": 0.55}
    assert cov["0.80"]["faces"] == 8 and cov["0.80"]["accuracy"] == 1.0 and cov["0.80"]["min_confidence"] == 0.75
    m = compute_metrics(np.full(10, 30.0), g_t, np.zeros(10, int),
                        {"age": np.full(10, 30.0), "p_female": g_p, "ethnicity": np.eye(5)[np.zeros(10, int)]})
    assert m["gender_by_coverage"]["1.00"]["accuracy"] == m["overall"]["gender_accuracy"] == 0.8
    assert "| 80% | 0.75 | 100.0% |" in markdown_table(m)
