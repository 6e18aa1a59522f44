"""Closed-form standard errors, and aggregations that carry theirs.

lm-eval 0.4.13 (``lm_eval.api.metrics.stderr_for_metric``) gives its own ``mean`` aggregation the
closed-form standard error of a mean, runs a bootstrap of ``--bootstrap_iters`` resamples (100,000
by default, about four seconds each on two cores) for a few others, ``nanmean`` among them, and
reports any other aggregation's stderr as "N/A". An aggregation made by :func:`with_stderr` carries
its own closed-form standard error; the lm-eval-bias plugin hands it to lm-eval where lm-eval would
otherwise bootstrap or give none (``lm_eval_bias.plugin.on_metrics``), under the same rules: no
stderr with ``--bootstrap_iters 0``, "N/A" for a task with a single document.

Every standard error here is that of a mean of n independent items, the sample standard deviation
(ddof = 1) over sqrt(n), as lm-eval's ``mean_stderr`` computes it; for a proportion p of n items on
a 0-``scale`` scale that is scale * sqrt(p (1 - p) / (n - 1)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

# the attribute of an aggregation function that holds its closed-form stderr (items -> float)
STDERR_ATTRIBUTE = "closed_form_stderr"


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean of the values that are not NaN.

    Args:
        values: the items' values; NaN ones are left out (the items a ``nanmean`` leaves out).

    Returns:
        sample standard deviation (ddof = 1) / sqrt(n) over the n non-NaN values; NaN when n < 2.
    """
    kept = np.asarray(values, dtype=np.float64)
    kept = kept[~np.isnan(kept)]
    if len(kept) < 2:
        return math.nan
    return float(np.std(kept, ddof=1) / math.sqrt(len(kept)))


def proportion_stderr(successes: float, n: float, scale: float = 1.0) -> float:
    """Standard error of a proportion of n items (each 0 or ``scale``), in closed form.

    Args:
        successes: how many of the n items count.
        n: the number of items.
        scale: the value of an item that counts (1 for a fraction, 100 for a percentage).

    Returns:
        scale * sqrt(p (1 - p) / (n - 1)) with p = successes / n, which is :func:`mean_stderr` of the
        items' 0/scale values; NaN when n < 2.
    """
    if n < 2:
        return math.nan
    p = successes / n
    return scale * math.sqrt(p * (1.0 - p) / (n - 1))


def with_stderr(aggregation: Callable, stderr: Callable[[Sequence], float]) -> Callable:
    """Give an lm-eval aggregation function its closed-form standard error.

    Args:
        aggregation: the aggregation (items -> value), as a task YAML names it.
        stderr: items -> the standard error of that value.

    Returns:
        ``aggregation`` itself, carrying ``stderr`` as its ``closed_form_stderr`` attribute.
    """
    setattr(aggregation, STDERR_ATTRIBUTE, stderr)
    return aggregation


def closed_form_stderr(aggregation: Callable) -> Callable[[Sequence], float] | None:
    """The closed-form stderr an aggregation carries, if any.

    Args:
        aggregation: an lm-eval aggregation function.

    Returns:
        Its ``closed_form_stderr`` (items -> float), or None.
    """
    return getattr(aggregation, STDERR_ATTRIBUTE, None)


def nanmean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN, as lm-eval's ``nanmean`` aggregation computes it.

    Args:
        values: per-item values, NaN where an item does not count.

    Returns:
        ``np.nanmean`` of the values; NaN when there are none or all are NaN. Its closed-form
        stderr (``closed_form_stderr``) is :func:`mean_stderr`.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or np.isnan(values).all():
        return np.nan
    return np.nanmean(values)


with_stderr(nanmean, mean_stderr)
