"""StereoSet metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from lm_eval_bias.metrics.stereoset import cluster_outcome, icat, ss_interval, stereoset_metrics, term_counts


def test_cluster_outcome_counts_ties_as_anti():
    assert cluster_outcome("t", -1.0, -2.0, -3.0) == ("t", 1, 2)
    assert cluster_outcome("t", -2.0, -1.0, -3.0) == ("t", 0, 2)
    assert cluster_outcome("t", -1.0, -1.0, -3.0) == ("t", 0, 2)  # a tie is not pro-stereotype
    assert cluster_outcome("t", -1.0, -2.0, -1.0) == ("t", 1, 0)  # a tie with unrelated is not related
    assert cluster_outcome("t", -3.0, -2.0, -2.5) == ("t", 0, 1)


def test_icat():
    assert icat(100.0, 50.0) == 100.0
    assert icat(80.0, 70.0) == pytest.approx(80.0 * 30.0 / 50.0)
    assert icat(80.0, 30.0) == pytest.approx(80.0 * 30.0 / 50.0)
    assert icat(90.0, 100.0) == 0.0


# Three terms. "a": 3 clusters (2 pro; related 2+1+0 = 3), "b": 1 cluster (pro, related 2),
# "c": 2 clusters (0 pro, related 1+2 = 3).
OUTCOMES = [("a", 1, 2), ("b", 1, 2), ("a", 1, 1), ("c", 0, 1), ("a", 0, 0), ("c", 0, 2)]


def test_term_counts():
    assert term_counts(OUTCOMES) == {"a": (2, 3, 3), "b": (1, 2, 1), "c": (0, 3, 2)}


def test_metrics_by_hand():
    metrics = stereoset_metrics(OUTCOMES, bootstrap_samples=0)
    # per term: ss a = 200/3, b = 100, c = 0; lms a = 50, b = 100, c = 75
    ss = (200 / 3 + 100 + 0) / 3
    lms = (50 + 100 + 75) / 3
    assert metrics["ss"] == pytest.approx(ss)
    assert metrics["lms"] == pytest.approx(lms)
    assert metrics["icat"] == pytest.approx(lms * min(ss, 100 - ss) / 50)
    # pooled over the six clusters: 3 pro, 8 related candidates of 12
    assert metrics["ss_micro"] == pytest.approx(50.0)
    assert metrics["lms_micro"] == pytest.approx(100 * 8 / 12)
    assert metrics["icat_micro"] == pytest.approx(100 * 8 / 12)
    assert math.isnan(metrics["ss_ci_low"]) and math.isnan(metrics["ss_ci_high"])


def test_term_with_one_cluster_weighs_as_much_as_a_large_term():
    outcomes = [("big", 0, 2)] * 9 + [("single", 1, 2)]
    metrics = stereoset_metrics(outcomes, bootstrap_samples=0)
    assert metrics["ss"] == pytest.approx(50.0)  # mean of 0 and 100
    assert metrics["ss_micro"] == pytest.approx(10.0)
    assert metrics["icat"] == pytest.approx(100.0)
    assert metrics["icat_micro"] == pytest.approx(100.0 * 10.0 / 50.0)


def test_all_ties_are_anti_stereotypical():
    outcomes = [cluster_outcome("t", 0.5, 0.5, 0.1) for _ in range(4)]
    metrics = stereoset_metrics(outcomes, bootstrap_samples=0)
    assert metrics["ss"] == 0.0 and metrics["lms"] == 100.0 and metrics["icat"] == 0.0


def test_empty_input_is_nan():
    assert all(math.isnan(v) for v in stereoset_metrics([]).values())


def test_interval_is_seeded_and_brackets_the_estimate():
    outcomes = [(f"t{i % 7}", int(i % 3 != 0), i % 3) for i in range(70)]
    first, second = ss_interval(outcomes), ss_interval(outcomes)
    assert first == second
    ss = stereoset_metrics(outcomes, bootstrap_samples=0)["ss"]
    assert first[0] < ss < first[1]
    assert ss_interval(outcomes, seed=99) != first
    # every cluster pro-stereotype: every resample says 100
    assert ss_interval([("t", 1, 2)] * 5) == (100.0, 100.0)


def plain_bootstrap(outcomes, samples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap written out: resample clusters, then per term the share of pro-stereotype
    clusters, averaged over the terms the resample holds. The draws are the same numbers ss_interval
    takes from numpy (one row of n cluster indices per resample, in order)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        by_term: dict[str, list[int]] = {}
        for index in rng.integers(0, len(outcomes), size=len(outcomes)):
            target, pro, _ = outcomes[index]
            by_term.setdefault(target, []).append(int(pro))
        values.append(sum(100.0 * sum(p) / len(p) for p in by_term.values()) / len(by_term))
    tail = 100.0 * (1.0 - level) / 2.0
    return tuple(float(v) for v in np.percentile(values, [tail, 100.0 - tail]))


@pytest.mark.parametrize("samples, seed", [(1000, 1234), (450, 7)])  # 450: a last, partial chunk of resamples
def test_interval_equals_a_plain_bootstrap(samples, seed):
    # terms of 1, 2, 5 and 20 clusters: small terms are often missing from a resample
    sizes = {"lone": 1, "pair": 2, "five": 5, "many": 20}
    outcomes = [
        (term, int((7 * i + len(term)) % 3 == 0), 1 + i % 2) for term, size in sizes.items() for i in range(size)
    ]
    expected = plain_bootstrap(outcomes, samples, seed)
    assert ss_interval(outcomes, samples=samples, seed=seed) == pytest.approx(expected, abs=1e-9)
    assert ss_interval(outcomes, samples=samples, seed=seed, level=0.5) == pytest.approx(
        plain_bootstrap(outcomes, samples, seed, level=0.5), abs=1e-9
    )
    assert expected[0] < expected[1]
