"""Do two bias benchmarks move together under compression? The rank correlation of their Δs across cells.

Each compared cell (a compressed model against its baseline, or a student against its teacher) has a Δ
on every bias metric it holds. Over the cells whose capability held, Spearman's ρ between the Δs of two
metrics says whether the compressions that move one benchmark most also move the other most; its 95%
interval is a percentile bootstrap over cells. Degraded cells are left out: their bias Δs measure the
broken model (``capability``), and a few of them would dominate any correlation. ``icat`` is left out
too, since it folds StereoSet's language-model score into the bias score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from lm_eval_bias.leaderboard.verdicts import degraded_rows, is_bias_column

RESAMPLES = 2000
MIN_CELLS = 4  # fewer cells give a ρ whose interval spans almost [-1, 1]
NOT_AGREEMENT_METRICS = ("icat", "effect_size")  # a blend with LMS; SEAT's signed size beside its absolute one


@dataclass(frozen=True)
class Agreement:
    """Spearman's ρ between two bias metrics' Δs over the non-degraded compared cells.

    Attributes:
        first: the first "task/metric" column.
        second: the second one.
        n: the cells holding a Δ on both.
        rho: Spearman's ρ (NaN when either side is constant).
        ci_low: the 2.5th percentile of ρ over bootstrap resamples of the cells.
        ci_high: the 97.5th percentile.
    """

    first: str
    second: str
    n: int
    rho: float
    ci_low: float
    ci_high: float


def rank_correlation(x, y, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's ρ of paired values and its 95% percentile-bootstrap interval (cells resampled in pairs).

    Args:
        x: one value per cell.
        y: the other metric's value for the same cells, in the same order.
        resamples: bootstrap resamples; those where a side is constant (ρ undefined) are dropped.
        seed: seed of the resampling.

    Returns:
        ``(rho, ci_low, ci_high)``; NaN for ρ when a side is constant, NaN bounds when no resample
        defines ρ.

    Raises:
        ValueError: ``x`` and ``y`` differ in length or hold fewer than two values.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"rank correlation needs two equally long sequences of 2+ values, got {len(x)} and {len(y)}")
    rho = _spearman(x, y)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), size=(resamples, len(x)))
    values = np.array([_spearman(x[p], y[p]) for p in picks])
    values = values[~np.isnan(values)]
    if not len(values):
        return rho, math.nan, math.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return rho, float(low), float(high)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def agreement_columns(wide: pd.DataFrame, columns: list[str]) -> list[str]:
    """The shown bias columns whose Δ enters the agreement.

    Args:
        wide: ``Leaderboard.wide()``.
        columns: the metric columns shown ("task/metric"), in order.

    Returns:
        Those that are bias metrics (``verdicts.is_bias_column``), not in ``NOT_AGREEMENT_METRICS``, with a
        Δ column in ``wide``.
    """
    return [
        column
        for column in columns
        if is_bias_column(column)
        and column.split("/", 1)[-1] not in NOT_AGREEMENT_METRICS
        and f"{column} delta" in wide.columns
    ]


def agreements(wide: pd.DataFrame, columns: list[str], min_cells: int = MIN_CELLS) -> list[Agreement]:
    """Spearman's ρ between every two bias columns' Δs, over the compared cells whose capability held.

    Args:
        wide: ``Leaderboard.wide()``.
        columns: the metric columns shown ("task/metric"), in order.
        min_cells: pairs of columns with fewer common non-degraded cells are left out.

    Returns:
        One ``Agreement`` per pair of ``agreement_columns``, in column order.
    """
    held = wide[[not flag for flag in degraded_rows(wide)]]
    found = []
    for first, second in combinations(agreement_columns(wide, columns), 2):
        deltas = held[[f"{first} delta", f"{second} delta"]].dropna()
        if len(deltas) < min_cells:
            continue
        rho, low, high = rank_correlation(deltas.iloc[:, 0], deltas.iloc[:, 1])
        found.append(Agreement(first, second, len(deltas), rho, low, high))
    return found


def agreement_lines(wide: pd.DataFrame, columns: list[str]) -> list[str]:
    """One sentence per pair of bias columns: ρ of their Δs, its interval and the cells it rests on.

    Args:
        wide: ``Leaderboard.wide()``.
        columns: the metric columns shown ("task/metric"), in order.

    Returns:
        The sentences (none with fewer than ``MIN_CELLS`` common non-degraded cells).
    """
    return [
        f"Δ {a.first} vs Δ {a.second}: Spearman ρ = {_number(a.rho)} [{_number(a.ci_low)}, {_number(a.ci_high)}] "
        f"over {a.n} non-degraded cells (95% bootstrap over cells)"
        for a in agreements(wide, columns)
    ]


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}".replace("-", "−")
