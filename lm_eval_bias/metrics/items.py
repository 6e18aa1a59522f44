"""A metric value that carries the per-item outcomes it was computed from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from lm_eval_bias.metrics.stderr import with_stderr


class ItemsMetric(float):
    """A float wherever lm-eval reads it (results JSON, tables, a group's means) that also carries
    the outcomes of its items (``items``), so that a group can recompute a metric that is no
    function of its members' values (a pooled bias score, an interval) from every member's items:
    the plugin hands them, in member order, to the group's ``aggregate_items_with`` function.

    Args:
        value: the metric's value.
        items: the per-item outcomes it was computed from.

    Attributes:
        items: the per-item outcomes, as tuples.
    """

    items: tuple[tuple, ...]

    def __new__(cls, value: float, items: Sequence[Sequence] = ()) -> ItemsMetric:
        metric = super().__new__(cls, value)
        metric.items = tuple(tuple(item) for item in items)
        return metric

    def __reduce__(self):
        return (type(self), (float(self), self.items))


def resampled_weights(rng: np.random.Generator, n: int, samples: int, chunk: int = 200):
    """Bootstrap resamples of n items as item weights (how often each item was drawn), in chunks
    that keep the (chunk, n) weight matrix small.

    Args:
        rng: the random generator (its draws are consumed in resample order).
        n: the number of items.
        samples: the number of resamples.
        chunk: resamples per yielded block.

    Yields:
        ``(start, stop, weights)``: resamples start..stop-1 as a (stop - start, n) float array.
    """
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        draws = rng.integers(0, n, size=(stop - start, n)) + n * np.arange(stop - start)[:, None]
        yield (
            start,
            stop,
            np.bincount(draws.ravel(), minlength=(stop - start) * n).reshape(stop - start, n).astype(float),
        )


def items_aggregations(
    compute: Callable[[tuple], dict[str, float]],
    names: Sequence[str],
    kind: type[ItemsMetric] = ItemsMetric,
    stderrs: Callable[[tuple], dict[str, float]] | None = None,
) -> list[Callable]:
    """One lm-eval aggregation per metric name, each returning an :class:`ItemsMetric` (the value,
    carrying the items for the groups above the task); ``compute`` runs once per set of items.

    Args:
        compute: ``items -> {name: value}`` (e.g. ``bbq_metrics``).
        names: the metric names, as the task YAML names its aggregations.
        kind: the ItemsMetric class the values are made of.
        stderrs: ``items -> {name: closed-form stderr}`` for the metrics that have one (e.g.
            ``bbq_stderrs``); their aggregations carry it (``lm_eval_bias.metrics.stderr.with_stderr``).
            Called once on an empty set of items to learn which metrics those are.

    Returns:
        The aggregation functions, in ``names`` order, each named after its metric.
    """
    cached = lru_cache(maxsize=8)(compute)
    cached_stderrs = lru_cache(maxsize=8)(stderrs) if stderrs else None
    with_closed_form = set(stderrs(())) if stderrs else set()

    def aggregation(name: str) -> Callable:
        def aggregate(items):
            outcomes = tuple(tuple(item) for item in items)
            return kind(cached(outcomes)[name], outcomes)

        aggregate.__name__ = name
        aggregate.__doc__ = f"{name} over the task's items, carrying them for the groups above it."
        if name in with_closed_form:
            with_stderr(aggregate, lambda items: cached_stderrs(tuple(tuple(item) for item in items))[name])
        return aggregate

    return [aggregation(name) for name in names]
