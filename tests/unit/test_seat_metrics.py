"""SEAT effect size and permutation p-value against hand computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lm_eval_bias.metrics.seat import associations, effect_size, p_value, permutation_p_value, seat_test

# With A = {e1} and B = {e2}, s(w, A, B) = w_x - w_y for a unit vector w. Vectors are given
# unnormalised on purpose: cosine similarity must not depend on their length.
X = [[2.0, 0.0], [0.6, 0.8]]  # s = 1, -0.2
Y = [[0.0, 3.0], [0.8, 0.6]]  # s = -1, 0.2
A = [[5.0, 0.0]]
B = [[0.0, 0.5]]


def test_associations_by_hand():
    assert associations(X, A, B) == pytest.approx([1.0, -0.2])
    assert associations(Y, A, B) == pytest.approx([-1.0, 0.2])


def test_effect_size_by_hand():
    # means 0.4 and -0.4; sample std of [1, -0.2, -1, 0.2] is sqrt(2.08 / 3)
    assert effect_size(X, Y, A, B) == pytest.approx(0.8 / math.sqrt(2.08 / 3))
    assert effect_size(Y, X, A, B) == pytest.approx(-0.8 / math.sqrt(2.08 / 3))
    assert effect_size(X, Y, B, A) == pytest.approx(-0.8 / math.sqrt(2.08 / 3))


def test_exact_p_value_by_hand():
    # The six ways to pick two of {1, -0.2, -1, 0.2}: sums 0.8 (observed), 0, 1.2, -1.2, 0, -0.8.
    # Two of them are >= 0.8.
    assert p_value(X, Y, A, B) == pytest.approx(2 / 6)
    assert p_value(Y, X, A, B) == pytest.approx(5 / 6)  # sums >= -0.8: all but -1.2


def test_ties_count_as_at_least_as_extreme():
    # s = [1, 0, 1, 0]: observed 1; partitions sum to 1, 2, 1, 1, 0, 1 -> five of six are >= 1
    assert permutation_p_value(np.array([1.0, 0.0, 1.0, 0.0])) == pytest.approx(5 / 6)


def test_multi_attribute_means():
    # A holds two vectors: s(w) averages cos over both
    a2 = [[1.0, 0.0], [0.0, 1.0]]
    assert associations([[1.0, 0.0]], a2, [[0.0, 1.0]]) == pytest.approx([0.5 - 0.0])


def brute_force_p(s_xy) -> float:
    n = len(s_xy) // 2
    observed = sum(s_xy[:n])
    sums = [sum(s_xy[i] for i in c) for c in itertools.combinations(range(2 * n), n)]
    return sum(s >= observed - 1e-12 for s in sums) / len(sums)


def test_exact_test_against_brute_force():
    rng = np.random.default_rng(3)
    for n in (1, 3, 5, 8):
        s_xy = rng.normal(size=2 * n) + np.r_[np.full(n, 0.3), np.zeros(n)]
        assert permutation_p_value(s_xy) == pytest.approx(brute_force_p(list(s_xy)))


def test_sampled_test_is_seeded_and_close_to_exact():
    # C(20, 10) = 184,756 > 100,000: sampled
    rng = np.random.default_rng(4)
    s_xy = rng.normal(size=20) + np.r_[np.full(10, 0.4), np.zeros(10)]
    exact = permutation_p_value(s_xy, samples=math.comb(20, 10))
    sampled = permutation_p_value(s_xy)
    assert sampled == permutation_p_value(s_xy, seed=0)
    assert sampled != permutation_p_value(s_xy, seed=1)
    assert sampled == pytest.approx(exact, abs=0.01)
    # the observed partition counts once among the samples, so p >= 1 / samples
    assert permutation_p_value(np.r_[np.full(10, 5.0), np.zeros(10)], samples=1000) == pytest.approx(1 / 1000)


def test_seat_test_reports_all_three():
    result = seat_test(X, Y, A, B)
    assert result == pytest.approx(
        {"effect_size": 0.8 / math.sqrt(2.08 / 3), "p_value": 1 / 3, "abs_effect_size": 0.8 / math.sqrt(2.08 / 3)}
    )


def test_unequal_targets_are_refused():
    with pytest.raises(ValueError, match="equal size"):
        p_value(X, Y[:1], A, B)
