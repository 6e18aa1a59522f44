"""The leaderboard: metrics with intervals, Δ against a baseline, paired tests, flips.

Baseline of a run: the same model and revision uncompressed (compression "none"); for an
uncompressed student, its teacher uncompressed (teacher given as STUDENT=TEACHER, else from the
study's cell.json, else from the `distillation` record of the results config). Runs without one show no Δ.

With a multiple-comparison correction (``correction="holm"``) the paired p-values of the family — every
bias metric (``capability.BIAS_METRICS``) of every compared row shown, that is every compressed cell (or
student) × bias metric with a paired test, after the filters — are adjusted together, into ``p_holm``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from lm_eval_bias.leaderboard.capability import BIAS_METRICS, BIAS_TASK_METRICS, DEFAULT_THRESHOLDS, Thresholds
from lm_eval_bias.leaderboard.cells import cell_frame
from lm_eval_bias.leaderboard.paired import CORRECTIONS, paired_score_test, paired_test
from lm_eval_bias.leaderboard.protocols import check_pairable
from lm_eval_bias.leaderboard.results import Run, metric_frame
from lm_eval_bias.model_wrappers.quantizers.config import UNCOMPRESSED

# metrics shown by default, in this order: bias benchmarks' (BIAS_TASK_METRICS) first, then capability
CAPABILITY_METRICS = ("acc_norm", "acc", "exact_match", "f1", "word_perplexity", "perplexity", "bleu", "mcc")
KEYS = ["model", "revision", "compression"]


@dataclass
class Leaderboard:
    """The comparison, long (one row per cell and metric) and per cell.

    Attributes:
        long: one row per (model, revision, compression, task, metric): ``results.metric_frame``'s
            columns plus ``baseline``, ``delta``, ``p_value``, ``test``, ``n_pairs``, ``flips``,
            where capability was judged ``capability``, and with a correction ``p_<correction>`` (the
            adjusted p-value; NaN outside the family).
        columns: the metric columns, "task/metric", in display order.
        cells: per-cell judgements (``cells.cell_frame``: capability, tercile flips).
    """

    long: pd.DataFrame  # one row per (model, revision, compression, task, metric)
    columns: list[str]  # "task/metric" in display order
    cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=KEYS))  # capability, tercile flips

    def wide(self) -> pd.DataFrame:
        """One row per (model, revision, compression); per metric: value, 95% interval, Δ, p, flips, n.

        Returns:
            The key columns, ``size``, ``step``, ``bits``, ``sparsity``, ``method``, then per metric
            column ``C`` (in ``columns`` order) ``C`` and ``C ci_low``, ``C ci_high``, ``C delta``,
            ``C p_value``, ``C p_holm`` (with the correction, for the family's columns only), ``C flips``,
            ``C n_pairs``, ``C baseline``, ``C test``, then the ``cells`` columns; only the key columns
            when ``long`` is empty.
        """
        if self.long.empty:
            return pd.DataFrame(columns=KEYS)
        frame = self.long.assign(column=self.long["task"] + "/" + self.long["metric"])
        index = frame.groupby(KEYS, sort=False)[["size", "step", "bits", "sparsity", "method"]].first()
        adjusted = [f"p_{name}" for name in CORRECTIONS if f"p_{name}" in frame.columns]
        fields = ("ci_low", "ci_high", "delta", "p_value", *adjusted, "flips", "n_pairs", "baseline", "test")
        parts = []
        for name in ("value", *fields):
            part = frame.pivot_table(
                index=KEYS, columns="column", values=name, aggfunc="first", sort=False, dropna=False
            )
            part.columns = [column if name == "value" else f"{column} {name}" for column in part.columns]
            if name in adjusted:  # only the family's columns hold adjusted p-values
                part = part.dropna(axis=1, how="all")
            parts.append(part)
        wide = index.join(parts, how="left")
        ordered = [
            name
            for column in self.columns
            for name in (column, *(f"{column} {f}" for f in fields))
            if name in wide.columns
        ]
        wide = wide[["size", "step", "bits", "sparsity", "method", *ordered]].reset_index()
        return wide.merge(self.cells, on=KEYS, how="left") if len(self.cells) else wide


def default_metrics(frame: pd.DataFrame, task: str) -> list[str]:
    """The metrics of a task shown when none are asked for.

    Args:
        frame: the long metric frame (``results.metric_frame``).
        task: a task name in it.

    Returns:
        Its bias metrics in ``BIAS_METRICS`` order (a single SEAT test: its signed effect size, not
        the absolute one); else its first metric in ``CAPABILITY_METRICS``; else its first metric
        (none when the task has no rows).
    """
    present = list(dict.fromkeys(frame.loc[frame["task"] == task, "metric"]))
    bias = [metric for metric in BIAS_TASK_METRICS if metric in present]
    if "effect_size" in bias and "abs_effect_size" in bias:  # one SEAT test: its signed effect size
        bias.remove("abs_effect_size")
    if bias:
        return bias
    capability = next((metric for metric in CAPABILITY_METRICS if metric in present), None)
    return [capability] if capability else present[:1]


def _select(frame: pd.DataFrame, metrics: list[str] | None, all_metrics: bool) -> pd.DataFrame:
    if all_metrics:
        return frame
    if metrics:
        keep = frame.apply(
            lambda row: any(
                fnmatch.fnmatchcase(row["metric"], m) or fnmatch.fnmatchcase(f"{row['task']}/{row['metric']}", m)
                for m in metrics
            ),
            axis=1,
        )
        return frame[keep]
    keep = pd.Series(False, index=frame.index)
    for task in frame["task"].unique():
        keep |= (frame["task"] == task) & frame["metric"].isin(default_metrics(frame, task))
    return frame[keep]


def _filter(frame: pd.DataFrame, filters: dict[str, list[str]]) -> pd.DataFrame:
    for column, patterns in filters.items():
        if patterns:
            frame = frame[
                frame[column].astype(str).map(lambda v, ps=patterns: any(fnmatch.fnmatchcase(v, p) for p in ps))
            ]
    return frame


def _baseline_key(run: Run, keys: set[tuple[str, str, str]], teachers: dict[str, str]) -> tuple[str, str, str] | None:
    """The uncompressed cell a run is compared with: its own model uncompressed; else the model
    `teachers` names for it (a distilled student's teacher, or the base of a checkpoint compressed
    elsewhere), at the run's teacher revision or its own revision, or the only one there is."""
    if run.compression != UNCOMPRESSED:
        key = (run.model, run.revision, UNCOMPRESSED)
        if key in keys:
            return key
        base, preferred = teachers.get(run.model), (run.revision,)
    else:
        base, preferred = teachers.get(run.model) or run.teacher, (run.teacher_revision, run.revision)
    if not base:
        return None
    revisions = sorted(
        {revision for model, revision, compression in keys if model == base and compression == UNCOMPRESSED}
    )
    for revision in preferred:
        if revision in revisions:
            return (base, revision, UNCOMPRESSED)
    return (base, revisions[0], UNCOMPRESSED) if len(revisions) == 1 else None


def build_leaderboard(
    runs: list[Run],
    metrics: list[str] | None = None,
    all_metrics: bool = False,
    subtasks: bool = False,
    teachers: dict[str, str] | None = None,
    filters: dict[str, list[str]] | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    correction: str | None = None,
) -> Leaderboard:
    """Compare every run with its baseline: Δ and a paired test per metric, and per-cell judgements.

    Args:
        runs: the runs (``loading.load_runs``).
        metrics: shell-style patterns matched against "metric" or "task/metric"; None for each task's
            ``default_metrics``.
        all_metrics: keep every metric (``metrics`` is then ignored).
        subtasks: also show the members of groups (``results.metric_frame``).
        teachers: model -> the model whose uncompressed run is its baseline where its own uncompressed
            run is not (a distilled student's teacher, or the base of a checkpoint compressed elsewhere).
        filters: column (``model``, ``revision``, ``compression``, ...) -> shell-style patterns, a row
            kept when its value matches any; applied after the comparison.
        thresholds: where a cell's capability counts as degraded.
        correction: ``"holm"`` to adjust the paired p-values of the family (``adjust``) into ``p_holm``;
            None for raw p-values only.

    Returns:
        The leaderboard; one with no rows and no metric columns when no run holds a metric.

    Raises:
        ValueError: a run and its baseline were made under different protocols or StereoSet splits
            (``protocols.check_pairable``), or ``correction`` is not one of ``paired.CORRECTIONS``.
    """
    if correction is not None and correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    frame = metric_frame(runs, subtasks=subtasks)
    if frame.empty:
        return Leaderboard(frame.assign(baseline=[], delta=[], p_value=[], test=[], n_pairs=[], flips=[]), [])
    every_key = set(zip(frame["model"], frame["revision"], frame["compression"]))
    check_pairable(runs, lambda run: _baseline_key(run, every_key, teachers or {}))
    cells = cell_frame(runs, frame, lambda run: _baseline_key(run, every_key, teachers or {}), thresholds)
    frame = _select(frame, metrics, all_metrics)
    rows_by_key = {(row.model, row.revision, row.compression, row.task, row.metric): row for row in frame.itertuples()}
    keys = set(zip(frame["model"], frame["revision"], frame["compression"]))
    added = {name: [] for name in ("baseline", "delta", "p_value", "test", "n_pairs", "flips")}
    for row in frame.itertuples():
        run = runs[row.run]
        base_key = _baseline_key(run, keys, teachers or {})
        base = rows_by_key.get((*base_key, row.task, row.metric)) if base_key else None
        result = None
        if base is not None:
            result = paired_test(
                run.item_values(row.task, row.metric), runs[base.run].item_values(row.task, row.metric)
            )
            scored = run.item_records(row.task, row.metric)
            base_scored = runs[base.run].item_records(row.task, row.metric)
            if scored is not None and base_scored is not None:  # a score of its items' totals (BBQ's bias):
                records, score = scored  # tested as that score; the flips stay the items' values' (chose biased)
                tested = paired_score_test(records, base_scored[0], score)
                if tested is not None and result is not None:
                    tested = replace(tested, flips=result.flips, up=result.up, down=result.down)
                result = tested
        added["baseline"].append(" · ".join(base_key) if base is not None else "")
        added["delta"].append(row.value - base.value if base is not None else math.nan)
        added["p_value"].append(result.p_value if result else math.nan)
        added["test"].append(result.test if result else "")
        added["n_pairs"].append(result.n if result else math.nan)
        added["flips"].append(result.flips if result and result.flips is not None else math.nan)
    frame = frame.assign(**added)
    if "capability" in cells.columns:  # each row says whether its cell's capability held (for the plots)
        frame = frame.merge(cells[[*KEYS, "capability"]], on=KEYS, how="left")
    frame = adjust(_filter(frame, filters or {}), correction)
    frame = frame.sort_values(
        ["size", "model", "step", "revision", "bits", "sparsity", "compression", "task", "metric"],
        ascending=[True, True, True, True, False, True, True, True, True],
        na_position="last",
        key=lambda col: col.map(lambda v: (v != UNCOMPRESSED, v)) if col.name == "compression" else col,
    )
    return Leaderboard(frame.reset_index(drop=True), _column_order(frame), cells)


def adjust(frame: pd.DataFrame, correction: str | None) -> pd.DataFrame:
    """Adjust the family's paired p-values for multiple comparisons.

    The family is every row of ``frame`` that holds a bias metric (``capability.BIAS_METRICS``) and a
    paired p-value: each compared cell (a compressed cell, or a student against its teacher) × each bias
    metric shown. Capability metrics and untested rows (no baseline, no per-item values) are not in it.

    Args:
        frame: the long leaderboard frame, with its ``metric`` and ``p_value`` columns.
        correction: a name of ``paired.CORRECTIONS`` (``"holm"``), or None.

    Returns:
        ``frame`` with a ``p_<correction>`` column: the adjusted p-value of each family row, NaN elsewhere;
        ``frame`` unchanged when ``correction`` is None.
    """
    if correction is None:
        return frame
    family = frame["metric"].isin(BIAS_METRICS) & frame["p_value"].notna()
    adjusted = pd.Series(math.nan, index=frame.index)
    if family.any():
        adjusted[family] = CORRECTIONS[correction](frame.loc[family, "p_value"].to_numpy())
    return frame.assign(**{f"p_{correction}": adjusted})


def _column_order(frame: pd.DataFrame) -> list[str]:
    """Bias benchmarks first (CrowS-Pairs, StereoSet, SEAT), then the rest; known metrics in their order."""
    known = BIAS_TASK_METRICS + CAPABILITY_METRICS

    def rank(metric: str) -> int:
        return known.index(metric) if metric in known else len(known)

    pairs = set(zip(frame["task"], frame["metric"]))
    task_rank = {task: min(rank(metric) for t, metric in pairs if t == task) for task, _ in pairs}
    ordered = sorted(
        pairs, key=lambda p: (task_rank[p[0]] >= len(BIAS_TASK_METRICS), task_rank[p[0]], p[0], rank(p[1]), p[1])
    )
    return [f"{task}/{metric}" for task, metric in ordered]


def sort_wide(wide: pd.DataFrame, columns: list[str], key: str | None, descending: bool = False) -> pd.DataFrame:
    """Sort by model/revision/compression/step/bits/sparsity/size, a metric ("stereotype_score" or "task/metric"),
    its Δ ("delta:METRIC"), or its distance from 50 ("dist50:METRIC").

    Args:
        wide: ``Leaderboard.wide()``.
        columns: its metric columns ("task/metric").
        key: a column of ``wide``, a metric, ``delta:METRIC`` or ``dist50:METRIC``; empty or None
            leaves the order as it is.
        descending: largest first (missing values stay last).

    Returns:
        ``wide`` with its rows reordered.

    Raises:
        ValueError: ``key`` names no column or metric, or has an unknown prefix.
    """
    if not key:
        return wide
    prefix, _, name = key.partition(":") if ":" in key else ("", "", key)
    if name in wide.columns and not prefix:
        return wide.sort_values(name, ascending=not descending, kind="stable", na_position="last")
    column = next((c for c in columns if c == name or c.split("/", 1)[1] == name), None)
    if column is None:
        raise ValueError(
            f"cannot sort by {key!r}: not one of {', '.join(KEYS + ['step', 'bits', 'sparsity', 'size'] + columns)}"
        )
    if prefix == "delta":
        values = wide[f"{column} delta"]
    elif prefix == "dist50":
        values = (wide[column] - 50).abs()
    elif prefix:
        raise ValueError(f"unknown sort prefix {prefix!r}: use delta: or dist50:")
    else:
        values = wide[column]
    order = np.argsort(values.fillna(np.inf if not descending else -np.inf).to_numpy(), kind="stable")
    return wide.iloc[order[::-1] if descending else order]
