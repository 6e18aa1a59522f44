"""Paired tests between two runs on the same items: exact McNemar, or a paired permutation test.

Item-level values come from the logged samples. A metric with two levels per item (a
preference: CrowS-Pairs' stereotype_score is 100 when the model prefers the stereotyping
sentence and 0 otherwise; accuracy is 1 or 0) is compared with the exact McNemar test on
the items whose value flipped: b items go low -> high from baseline to run, c go high -> low,
and under "no change" each flip is a fair coin, so p = two-sided binomial(b; b + c, 1/2).
Any other metric gets a paired sign-flip permutation test of the mean difference. A metric that is
not a mean over its items (BBQ's bias scores: a ratio over the answers that are not "unknown",
scaled by the error rate in ambiguous contexts) gets :func:`paired_score_test`: each item's two
records (run, baseline) are swapped at random and the score's difference recomputed.

`holm` adjusts a family of such p-values for multiple comparisons (Holm's step-down method).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

PERMUTATIONS = 10_000
EXACT_UP_TO = 14  # enumerate all 2^n sign patterns up to this many non-zero differences


@dataclass(frozen=True)
class PairedResult:
    """The outcome of a paired test between a run and its baseline.

    Attributes:
        test: ``"McNemar exact"``, ``"paired permutation"`` or ``"paired permutation of the score"``.
        n: the number of items present in both runs.
        p_value: the two-sided p-value.
        flips: McNemar: the discordant items, b + c; None for non-binary metrics.
        up: McNemar: b, the items going from the baseline's low value to the run's high one.
        down: McNemar: c, the items going from high to low.
        mean_difference: the mean of run − baseline over the paired items (the score's difference for
            :func:`paired_score_test`).
    """

    test: str  # "McNemar exact" | "paired permutation" | "paired permutation of the score"
    n: int  # items present in both runs
    p_value: float
    flips: int | None = None  # McNemar: b + c; None for non-binary metrics
    up: int | None = None  # b: baseline low -> run high
    down: int | None = None  # c: baseline high -> run low
    mean_difference: float = math.nan  # run - baseline, over the paired items


def mcnemar_exact(up: int, down: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1 when nothing flipped).

    Args:
        up: b, items that went from low to high.
        down: c, items that went from high to low.

    Returns:
        The two-sided binomial p-value of b successes in b + c trials at 1/2.
    """
    if up + down == 0:
        return 1.0
    return float(binomtest(up, up + down, 0.5, alternative="two-sided").pvalue)


def permutation_p_value(differences: np.ndarray, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided sign-flip test of mean(differences) = 0; exact for few non-zero differences.

    Args:
        differences: a 1-D float array of per-item differences, run − baseline.
        permutations: random sign patterns drawn when there are more than ``EXACT_UP_TO`` non-zero
            differences.
        seed: seeds those draws.

    Returns:
        The share of sign patterns whose |sum| is at least the observed one: over all 2^n patterns when
        exact, else (hits + 1) / (permutations + 1); 1.0 when every difference is zero.
    """
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 1.0
    observed = abs(nonzero.sum()) - 1e-12 * max(1.0, float(np.abs(nonzero).sum()))
    if nonzero.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=nonzero.size)))
        return float(np.mean(np.abs(signs @ nonzero) >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 1000):
        count = min(1000, permutations - start)
        signs = rng.choice((1.0, -1.0), size=(count, nonzero.size))
        hits += int(np.sum(np.abs(signs @ nonzero) >= observed))
    return (hits + 1) / (permutations + 1)


def paired_test(run: dict, baseline: dict, seed: int = 0) -> PairedResult | None:
    """Compare item values {item: value} of a run and its baseline on the items both have (None if < 2).

    Args:
        run: item -> the run's per-item value.
        baseline: item -> the baseline's per-item value.
        seed: seeds the permutation test.

    Returns:
        Exact McNemar when the values take at most two levels (over both runs), else the paired
        permutation test; None when fewer than two items are shared.
    """
    items = sorted(set(run) & set(baseline), key=repr)
    if len(items) < 2:  # one item (a single SEAT test, say) cannot be tested
        return None
    a = np.array([run[item] for item in items], dtype=float)
    b = np.array([baseline[item] for item in items], dtype=float)
    levels = np.unique(np.concatenate([a, b]))
    mean_difference = float(np.mean(a - b))
    if levels.size <= 2:
        high = levels.max()
        up = int(np.sum((a == high) & (b != high)))
        down = int(np.sum((a != high) & (b == high)))
        return PairedResult("McNemar exact", len(items), mcnemar_exact(up, down), up + down, up, down, mean_difference)
    return PairedResult(
        "paired permutation", len(items), permutation_p_value(a - b, seed=seed), mean_difference=mean_difference
    )


def paired_score_test(run: dict, baseline: dict, score, permutations: int = PERMUTATIONS, seed: int = 0):
    """Paired permutation test of a score computed from its items' totals (None if fewer than two items).

    Under "compression changes nothing" each item's run and baseline records are exchangeable, so each
    permutation swaps every item's two records with probability 1/2 and recomputes both scores.

    Args:
        run: item -> the run's record, a tuple of numbers (e.g. correct, chose unknown, chose biased).
        baseline: item -> the baseline's record.
        score: ``(n items, totals (..., fields)) -> scores (...)``: the metric from its items' column totals,
            NaN where undefined.
        permutations: random swap patterns drawn.
        seed: seeds those draws.

    Returns:
        ``PairedResult("paired permutation of the score", n, p)``, p = (hits + 1) / (permutations + 1), a hit a
        pattern whose |difference| is at least the observed one (a pattern with an undefined score is none);
        ``mean_difference`` is the score's run − baseline over the paired items. None when fewer than two
        items are shared, or the observed difference is undefined.
    """
    items = sorted(set(run) & set(baseline), key=repr)
    if len(items) < 2:
        return None
    a = np.array([run[item] for item in items], dtype=float)
    b = np.array([baseline[item] for item in items], dtype=float)
    n, total_a, total_b, swap = len(items), a.sum(axis=0), b.sum(axis=0), b - a
    observed = float(score(n, total_a) - score(n, total_b))
    if math.isnan(observed):
        return None
    if not np.any(swap):
        return PairedResult("paired permutation of the score", n, 1.0, mean_difference=observed)
    rng = np.random.default_rng(seed)
    threshold = abs(observed) - 1e-12 * max(1.0, abs(observed))
    hits = 0
    for start in range(0, permutations, 1000):
        flips = rng.integers(0, 2, size=(min(1000, permutations - start), n)).astype(float) @ swap
        differences = score(n, total_a + flips) - score(n, total_b - flips)
        hits += int(np.sum(np.abs(differences) >= threshold))  # NaN compares False
    p_value = (hits + 1) / (permutations + 1)
    return PairedResult("paired permutation of the score", n, p_value, mean_difference=observed)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate under any
    dependence between the tests; uniformly more powerful than Bonferroni).

    Sorted ascending, p_(1) <= ... <= p_(m), the i-th smallest becomes max over j <= i of (m − j + 1) p_(j),
    capped at 1; rejecting where the adjusted value is below alpha is Holm's procedure at level alpha.
    (statsmodels' ``multipletests(p, method="holm")`` gives the same values; it is not a dependency here.)

    Args:
        p_values: the family's p-values, a 1-D sequence of numbers in [0, 1] (no NaN).

    Returns:
        The adjusted p-values, as floats, in the order given.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# multiple-comparison corrections the leaderboard offers: name -> adjustment (its adjusted p-values: column p_<name>)
CORRECTIONS = {"holm": holm}
