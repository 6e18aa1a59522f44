"""A metric value that carries the per-item outcomes it was computed from."""

from __future__ import annotations

from collections.abc import Sequence


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
