"""SEAT / WEAT statistics (Caliskan et al., Science 2017; May et al., NAACL 2019).

X, Y are the target sets' embeddings, A, B the attribute sets' (one row per sentence).
With cos the cosine similarity,

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    effect size = [mean_{x in X} s(x, A, B) - mean_{y in Y} s(y, A, B)] / std_{w in X u Y} s(w, A, B)

(sample standard deviation, ddof = 1). The one-sided p-value is the share of equal-size
partitions (X_i, Y_i) of X u Y whose statistic sum_{x in X_i} s(x, A, B) is at least the
observed one (ties count, the conservative test of May et al. and bias-bench):

- exact, over all C(2n, n) partitions, when C(2n, n) <= ``samples``;
- otherwise from ``samples - 1`` random partitions plus the observed one counted as a
  hit, p = (1 + hits) / samples, as bias-bench's ``weat.py`` does; the generator is seeded.

Statistics that equal the observed one up to floating-point rounding count as ties.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

PERMUTATION_SAMPLES = 100_000
SEED = 0
_CHUNK = 5000


def _unit_rows(matrix) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def associations(W, A, B) -> np.ndarray:
    """s(w, A, B) for each row w of W.

    Args:
        W: (n, d) embeddings, or one (d,) vector; rows need not be unit-norm.
        A: (a, d) embeddings of the first attribute set.
        B: (b, d) embeddings of the second attribute set.

    Returns:
        A (n,) float64 array: each row's mean cosine with A minus its mean cosine with B.
    """
    W, A, B = _unit_rows(W), _unit_rows(A), _unit_rows(B)
    return (W @ A.T).mean(axis=1) - (W @ B.T).mean(axis=1)


def effect_size(X, Y, A, B) -> float:
    """The SEAT/WEAT effect size (module docstring): a difference of mean associations in units of
    their pooled sample standard deviation.

    Args:
        X: (n_x, d) embeddings of the first target set.
        Y: (n_y, d) embeddings of the second target set.
        A: (a, d) embeddings of the first attribute set.
        B: (b, d) embeddings of the second attribute set.

    Returns:
        The effect size; NaN when the associations of X and Y together have no spread (or are one value).
    """
    s_x, s_y = associations(X, A, B), associations(Y, A, B)
    spread = np.std(np.concatenate([s_x, s_y]), ddof=1)
    return float((s_x.mean() - s_y.mean()) / spread) if spread > 0 else math.nan


def p_value(X, Y, A, B, *, samples: int = PERMUTATION_SAMPLES, seed: int = SEED) -> float:
    """One-sided permutation p-value of the test statistic (see the module docstring).

    Args:
        X: (n, d) embeddings of the first target set.
        Y: (n, d) embeddings of the second target set (as many as X).
        A: (a, d) embeddings of the first attribute set.
        B: (b, d) embeddings of the second attribute set.
        samples: exact over every partition when C(2n, n) <= ``samples``, else this many partitions
            with the observed one.
        seed: seeds the random partitions.

    Returns:
        The p-value, in (0, 1].

    Raises:
        ValueError: X and Y differ in size.
    """
    s_x, s_y = associations(X, A, B), associations(Y, A, B)
    if len(s_x) != len(s_y):
        raise ValueError(f"the permutation test needs target sets of equal size, got {len(s_x)} and {len(s_y)}")
    return permutation_p_value(np.concatenate([s_x, s_y]), samples=samples, seed=seed)


def permutation_p_value(s_xy: np.ndarray, *, samples: int = PERMUTATION_SAMPLES, seed: int = SEED) -> float:
    """p-value from the associations of X (first half of ``s_xy``) and Y (second half).

    Args:
        s_xy: (2n,) associations s(w, A, B), X's then Y's.
        samples: exact over every partition when C(2n, n) <= ``samples``, else ``samples - 1`` random
            partitions plus the observed one.
        seed: seeds the random partitions.

    Returns:
        The share of partitions whose statistic is at least the observed one (ties count), in (0, 1].

    Raises:
        ValueError: ``s_xy`` has an odd length or fewer than 2 entries.
    """
    s_xy = np.asarray(s_xy, dtype=np.float64)
    n = len(s_xy) // 2
    if n < 1 or len(s_xy) != 2 * n:
        raise ValueError(f"need 2n >= 2 associations, got {len(s_xy)}")
    observed = s_xy[:n].sum()
    tolerance = 1e-12 * max(1.0, float(np.abs(s_xy).sum()))
    if math.comb(2 * n, n) <= samples:
        hits = total = 0
        combinations = itertools.combinations(range(2 * n), n)
        while chunk := list(itertools.islice(combinations, _CHUNK)):
            statistics = s_xy[np.array(chunk)].sum(axis=1)
            hits += int(np.count_nonzero(statistics >= observed - tolerance))
            total += len(chunk)
        return hits / total
    rng = np.random.default_rng(seed)
    hits, draws = 1, samples - 1  # the observed partition counts as one hit, as in bias-bench
    for start in range(0, draws, _CHUNK):
        size = min(_CHUNK, draws - start)
        chosen = np.argpartition(rng.random((size, 2 * n)), n, axis=1)[:, :n]
        statistics = s_xy[chosen].sum(axis=1)
        hits += int(np.count_nonzero(statistics >= observed - tolerance))
    return hits / (draws + 1)


def seat_test(X, Y, A, B, *, samples: int = PERMUTATION_SAMPLES, seed: int = SEED) -> dict[str, float]:
    """Per-test SEAT results: effect size, p-value and the absolute effect size.

    Args:
        X: (n, d) embeddings of the first target set.
        Y: (n, d) embeddings of the second target set (as many as X).
        A: (a, d) embeddings of the first attribute set.
        B: (b, d) embeddings of the second attribute set.
        samples: the permutation budget of ``p_value``.
        seed: seeds ``p_value``'s random partitions.

    Returns:
        ``{"effect_size", "p_value", "abs_effect_size"}`` -> value.

    Raises:
        ValueError: X and Y differ in size.
    """
    size = effect_size(X, Y, A, B)
    return {
        "effect_size": size,
        "p_value": p_value(X, Y, A, B, samples=samples, seed=seed),
        "abs_effect_size": abs(size),
    }
