"""Rank correlation of two bias metrics' Δs across compressed cells (leaderboard.agreement)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lm_eval_bias.leaderboard.agreement import agreement_columns, agreement_lines, agreements, rank_correlation

CROWS, BBQ, ICAT = "crows_pairs_bias/stereotype_score", "bbq_bias/bias_disambig", "stereoset_bias/icat"


def test_spearman_by_hand():
    # ranks equal the values; d = (-1, 1, -1, 1, 0), sum d^2 = 4: rho = 1 - 6*4 / (5 * (25 - 1)) = 0.8
    rho, low, high = rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert rho == pytest.approx(0.8)
    assert -1 <= low <= high <= 1


def test_spearman_with_ties_equals_pearson_of_average_ranks():
    x, y = [0.5, -1.0, 2.0, 2.0, 3.5, -0.2], [1.0, 0.0, 0.0, 3.0, 2.0, 1.0]
    ranks = pd.DataFrame({"x": x, "y": y}).rank()  # average ranks for ties
    want = np.corrcoef(ranks["x"], ranks["y"])[0, 1]
    assert rank_correlation(x, y)[0] == pytest.approx(want)


def test_a_monotone_relation_has_a_degenerate_interval_and_a_constant_side_no_rho():
    assert rank_correlation([1, 2, 3, 4, 5, 6], [-3, -1, 0, 2, 9, 10]) == pytest.approx((1.0, 1.0, 1.0))
    rho, low, high = rank_correlation([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(rho) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="equally long"):
        rank_correlation([1, 2], [1, 2, 3])


def _wide():
    crows = [-7.0, -0.5, 0.2, -6.0, -1.5, 40.0]
    bbq = [1.0, 0.3, -0.2, 2.0, 0.1, -30.0]
    return pd.DataFrame(
        {
            "compression": ["a", "b", "c", "d", "e", "broken"],
            CROWS: [50.0] * 6,
            f"{CROWS} delta": crows,
            BBQ: [1.0] * 6,
            f"{BBQ} delta": bbq,
            ICAT: [70.0] * 6,
            f"{ICAT} delta": bbq,
            "capability": ["held"] * 5 + ["degraded"],
        }
    )


def test_degraded_cells_and_icat_are_left_out():
    wide = _wide()
    columns = [CROWS, ICAT, BBQ]
    assert agreement_columns(wide, columns) == [CROWS, BBQ]
    (found,) = agreements(wide, columns)
    # the five held cells: crows ranks (1, 4, 5, 2, 3), bbq ranks (4, 3, 1, 5, 2); d = (-3, 1, 4, -3, 1),
    # sum d^2 = 36: rho = 1 - 6*36 / (5*24) = -0.8
    assert (found.first, found.second, found.n) == (CROWS, BBQ, 5)
    assert found.rho == pytest.approx(-0.8)
    (line,) = agreement_lines(wide, columns)
    assert line.startswith(f"Δ {CROWS} vs Δ {BBQ}: Spearman ρ = −0.80 [") and "over 5 non-degraded cells" in line


def test_too_few_cells_give_no_line():
    wide = _wide().iloc[[0, 1, 2, 5]]
    assert agreements(wide, [CROWS, BBQ]) == []
