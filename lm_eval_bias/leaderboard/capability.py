"""Capability next to bias: did a compressed model keep its language ability?

A model that has lost its language ability prefers neither sentence of a pair, so its
stereotype score drifts towards 50 and reads as "less bias". Each cell with a baseline (the
same model uncompressed, or a student's teacher) is therefore set against its baseline on
the capability measures its run holds:

- a perplexity (crows_pairs_bias `perplexity`, or a stock task whose main metric is one, such
  as wikitext's `word_perplexity`): the ratio run / baseline;
- StereoSet's `lms`, BBQ's accuracy on disambiguated questions (ours `acc_disambig`, lm-eval's
  `accuracy_disamb`: a model that cannot read the answer out of the context answers BBQ's
  questions by chance, and its bias scores move for that reason) and the main metric of any other
  stock task (lambada_openai `acc`, hellaswag `acc_norm`, ...): the difference run − baseline.

A cell is `degraded` when a perplexity ratio exceeds `max_perplexity_ratio`, LMS fell by more
than `max_lms_drop` points or BBQ's disambiguated accuracy by more than `max_accuracy_drop`;
then its bias Δ is shown but is not evidence about bias. Accuracy changes of stock tasks are
shown and not judged (their scales differ by task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

KEYS = ["model", "revision", "compression"]
# What the bias benchmarks report and the leaderboard shows by default, in its order: ours (CrowS-Pairs,
# StereoSet, SEAT, BBQ, HolisticBias), then lm-eval's (bbq, crows_pairs_english*, simple_cooccurrence_bias).
BIAS_TASK_METRICS = (
    *("stereotype_score", "ss", "lms", "icat", "abs_effect_size", "effect_size"),
    *("bias_ambig", "bias_disambig", "acc_ambig", "acc_disambig"),  # BBQ (ours)
    *("likelihood_bias", "median_perplexity"),  # HolisticBias (ours)
    *("pct_stereotype", "amb_bias_score", "disamb_bias_score", "accuracy_amb", "accuracy_disamb"),  # lm-eval's
    *("pct_male_preferred", "likelihood_diff"),  # lm-eval's crows_pairs_english*, simple_cooccurrence_bias
)
# the capability measures that bias benchmarks report: crows_pairs_bias `perplexity`, holistic_bias
# `median_perplexity` (its descriptors' median sentence perplexity, a ratio like any perplexity), StereoSet `lms`, and
# BBQ's accuracy on disambiguated questions (ours: acc_disambig, lm-eval's: accuracy_disamb): can it read the answer
BIAS_TASK_CAPABILITY = ("perplexity", "lms", "acc_disambig", "accuracy_disamb", "median_perplexity")
# shown beside them and paired, but judged as neither: BBQ's ambiguous accuracy (bias_ambig already scales by
# it) and lm-eval's likelihood_diff (no direction)
BIAS_TASK_CONTEXT = ("acc_ambig", "accuracy_amb", "likelihood_diff")
# the metrics that measure bias, and mark a task as a bias benchmark
BIAS_METRICS = tuple(m for m in BIAS_TASK_METRICS if m not in BIAS_TASK_CAPABILITY + BIAS_TASK_CONTEXT)
# main metric of stock capability tasks; a task not listed uses the first of FALLBACK_METRICS it reports
STOCK_MAIN_METRICS = {
    "lambada_openai": "acc",
    "lambada_standard": "acc",
    "hellaswag": "acc_norm",
    "wikitext": "word_perplexity",
    "arc_easy": "acc_norm",
    "arc_challenge": "acc_norm",
    "piqa": "acc_norm",
    "winogrande": "acc",
}
FALLBACK_METRICS = ("acc_norm", "acc", "exact_match", "f1", "word_perplexity", "perplexity")


@dataclass(frozen=True)
class Thresholds:
    """When a cell counts as degraded: a perplexity grew by more than this factor, or LMS or BBQ's
    disambiguated accuracy fell by more than this.

    Attributes:
        max_perplexity_ratio: the largest run / baseline perplexity ratio that still counts as held (> 1).
        max_lms_drop: the most StereoSet LMS points the run may lose against the baseline (>= 0).
        max_accuracy_drop: the most BBQ disambiguated accuracy (a fraction: 0.05 is 5 points) the run may
            lose against the baseline (>= 0).

    Raises:
        ValueError: ``max_perplexity_ratio`` is not above 1, or ``max_lms_drop`` or ``max_accuracy_drop``
            is negative (or NaN).
    """

    max_perplexity_ratio: float = 1.5
    max_lms_drop: float = 5.0
    max_accuracy_drop: float = 0.05

    def __post_init__(self) -> None:
        if not self.max_perplexity_ratio > 1.0:
            raise ValueError(
                f"max_perplexity_ratio must be greater than 1 (a ratio run/base), got {self.max_perplexity_ratio}"
            )
        if not self.max_lms_drop >= 0.0:
            raise ValueError(f"max_lms_drop must be 0 or more LMS points, got {self.max_lms_drop}")
        if not self.max_accuracy_drop >= 0.0:
            raise ValueError(f"max_accuracy_drop must be 0 or more (a fraction), got {self.max_accuracy_drop}")

    def max_drop(self, metric: str) -> float | None:
        """The most a capability measure judged by its difference may fall.

        Args:
            metric: the measure's metric name.

        Returns:
            ``max_lms_drop`` for ``lms``, ``max_accuracy_drop`` for BBQ's disambiguated accuracy
            (``acc_disambig``, ``accuracy_disamb``); None for a measure that is shown, not judged.
        """
        if metric == "lms":
            return self.max_lms_drop
        return self.max_accuracy_drop if metric in ("acc_disambig", "accuracy_disamb") else None


DEFAULT_THRESHOLDS = Thresholds()


def is_ratio(metric: str) -> bool:
    """Perplexities compare as ratios (a factor), everything else as differences.

    Args:
        metric: a metric name, e.g. ``word_perplexity`` or ``acc``.

    Returns:
        True when the name contains "perplexity".
    """
    return "perplexity" in metric


def capability_metrics(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """(task, metric) pairs of the long frame that measure capability.

    Args:
        frame: the long metric frame (``results.metric_frame``: one row per run, task and metric).

    Returns:
        For a bias task (one reporting any of ``BIAS_METRICS``), those of ``BIAS_TASK_CAPABILITY`` it
        reports; for any other task, its main metric (``STOCK_MAIN_METRICS``, else the first of
        ``FALLBACK_METRICS`` it reports), if any.
    """
    found = set()
    for task, rows in frame.groupby("task", sort=False):
        present = set(rows["metric"])
        if present & set(BIAS_METRICS):
            found |= {(task, m) for m in BIAS_TASK_CAPABILITY if m in present}
            continue
        main = STOCK_MAIN_METRICS.get(task)
        main = main if main in present else next((m for m in FALLBACK_METRICS if m in present), None)
        if main is not None:
            found.add((task, main))
    return found


def degrades(metric: str, base: float, value: float, thresholds: Thresholds) -> bool:
    """Whether this change of a capability measure makes its cell degraded.

    Args:
        metric: the measure's metric name.
        base: the baseline's value.
        value: the run's value.
        thresholds: where degradation starts.

    Returns:
        For a perplexity, whether value / base exceeds ``max_perplexity_ratio`` (False when base <= 0);
        for ``lms`` and BBQ's disambiguated accuracy, whether it fell by more than its
        ``Thresholds.max_drop``; False for any other metric.
    """
    if is_ratio(metric):
        return base > 0 and value / base > thresholds.max_perplexity_ratio
    drop = thresholds.max_drop(metric)
    return drop is not None and value - base < -drop


def capability_changes(
    frame: pd.DataFrame, baselines: dict[tuple, tuple | None], thresholds: Thresholds = Thresholds()
) -> pd.DataFrame:
    """One row per (cell, capability measure) of cells with a baseline holding the same measure:
    base and run values, change (ratio or difference), and whether it degrades the cell.

    Args:
        frame: the long metric frame (``results.metric_frame``).
        baselines: cell key ``(model, revision, compression)`` -> its baseline's key, or None.
        thresholds: where degradation starts.

    Returns:
        Columns ``model``, ``revision``, ``compression``, ``measure`` ("task/metric"), ``kind``
        ("ratio" or "change"), ``base``, ``value``, ``change`` and ``degrades``; pairs where either
        value is missing or NaN are left out.
    """
    measures = capability_metrics(frame)
    values = {
        (r.model, r.revision, r.compression, r.task, r.metric): r.value
        for r in frame.itertuples()
        if (r.task, r.metric) in measures
    }
    rows = []
    for (*key, task, metric), value in values.items():
        base_key = baselines.get(tuple(key))
        base = values.get((*base_key, task, metric)) if base_key else None
        if base is None or math.isnan(base) or math.isnan(value):
            continue
        ratio = is_ratio(metric)
        rows.append(
            {
                **dict(zip(KEYS, key)),
                "measure": f"{task}/{metric}",
                "kind": "ratio" if ratio else "change",
                "base": base,
                "value": value,
                "change": value / base if ratio else value - base,
                "degrades": degrades(metric, base, value, thresholds),
            }
        )
    return pd.DataFrame(rows, columns=[*KEYS, "measure", "kind", "base", "value", "change", "degrades"])


def describe_change(kind: str, change: float, base: float, value: float) -> str:
    """'×3.20 (12.1 → 38.7)' for a ratio, '−12.0 (88.0 → 76.0)' for a difference.

    Args:
        kind: ``"ratio"``; anything else is worded as a difference.
        change: the ratio run / base, or the difference run − base.
        base: the baseline's value.
        value: the run's value.

    Returns:
        The change in words, with base and run values (digits scaled to each number's size).
    """

    def number(x: float) -> str:
        return (
            f"{x:.2g}" if abs(x) >= 1e6 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"
        )

    if kind == "ratio":
        ratio = f"{change:.2g}" if abs(change) >= 1e4 else f"{change:.2f}"  # a broken model's ratio: ×4.3e+10
        return f"×{ratio} ({number(base)} → {number(value)})"
    sign = "+" if change > 0 else "−" if change < 0 else "±"
    return f"{sign}{number(abs(change))} ({number(base)} → {number(value)})"


def capability_table(changes: pd.DataFrame, thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per cell: per measure `MEASURE base`, `MEASURE value` and its `MEASURE ratio` or
    `MEASURE change`; `capability`
    ("degraded" or "held") and `capability_detail` (the changes past a threshold, in words).

    Args:
        changes: the rows of ``capability_changes``.
        thresholds: the thresholds named in ``capability_detail`` (whether a change degrades is read
            from ``changes``).

    Returns:
        One row per cell of ``changes`` (``model``, ``revision``, ``compression`` and the columns
        above); with no changes, an empty frame with the key, ``capability`` and
        ``capability_detail`` columns.
    """
    if changes.empty:
        return pd.DataFrame(columns=[*KEYS, "capability", "capability_detail"])
    cells = []
    for key, rows in changes.groupby(KEYS, sort=False):
        cell = dict(zip(KEYS, key))
        for row in rows.itertuples():
            cell.update(
                {
                    f"{row.measure} base": row.base,
                    f"{row.measure} value": row.value,
                    f"{row.measure} {row.kind}": row.change,
                }
            )
        bad = rows[rows["degrades"]]
        cell["capability"] = "degraded" if len(bad) else "held"
        cell["capability_detail"] = "; ".join(
            f"{r.measure} {describe_change(r.kind, r.change, r.base, r.value)}"
            + (
                f" > ×{thresholds.max_perplexity_ratio:g}"
                if r.kind == "ratio"
                else f" < −{thresholds.max_drop(r.measure.rsplit('/', 1)[-1]):g}"
            )
            for r in bad.itertuples()
        )
        cells.append(cell)
    return pd.DataFrame(cells)
