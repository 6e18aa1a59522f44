"""Does compression move the bias benchmarks together? Each cell's Δ on CrowS-Pairs against its Δ on the others."""

from __future__ import annotations

import math
import re

import pandas as pd
from matplotlib.figure import Figure  # noqa: F401 - the type the function returns
from matplotlib.lines import Line2D

from lm_eval_bias.leaderboard.agreement import MIN_CELLS, NOT_AGREEMENT_METRICS, rank_correlation
from lm_eval_bias.leaderboard.capability import BIAS_METRICS
from lm_eval_bias.plots.style import (
    DEGRADED_LABEL,
    DEGRADED_MARKER,
    colors,
    compression_order,
    degraded,
    metric_label,
    new_figure,
    panel_title,
)


def _series(long: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, metric) of every bias metric with a Δ for two or more cells, in ``BIAS_METRICS`` order."""
    rows = long[long["metric"].isin(BIAS_METRICS) & ~long["metric"].isin(NOT_AGREEMENT_METRICS) & long["delta"].notna()]
    counts = rows.groupby(["task", "metric"]).size()
    found = [key for key, count in counts.items() if count >= 2]
    return sorted(found, key=lambda key: (BIAS_METRICS.index(key[1]), key[0]))


def short_name(compression: str) -> str:
    """A compression's label without its calibration text and group size: ``gptq(bits=4)``, ``wanda(structure=2:4)``."""
    short = re.sub(r"(calibration|group_size)=[^,)]*,?", "", compression)
    return re.sub(r",\)", ")", short).replace("()", "")


def cell_label(model: str, compression: str) -> str:
    """A compared cell's label: its compression, or for an uncompressed one (a student against its teacher,
    a checkpoint against its base) its model's last path component."""
    return model.rstrip("/").split("/")[-1] if compression == "none" else short_name(compression)


def delta_agreement(long: pd.DataFrame) -> Figure | None:
    """One panel per bias metric: each compared cell's Δ on the first bias metric (CrowS-Pairs' stereotype
    score where present) against its Δ on that metric, degraded cells marked, with Spearman's ρ over the
    others (``leaderboard.agreement``).

    Args:
        long: the leaderboard's long table (``Leaderboard.long``).

    Returns:
        The figure, or None when fewer than two bias metrics have Δs of two or more cells.
    """
    series = _series(long)
    if len(series) < 2:
        return None
    (x_task, x_metric), others = series[0], series[1:]
    keys = ["model", "revision", "compression"]
    data = long[long["delta"].notna()].assign(bad=degraded(long[long["delta"].notna()]))
    x = data[(data["task"] == x_task) & (data["metric"] == x_metric)].set_index(keys)
    palette = colors(compression_order(data))
    columns = min(3, len(others))
    rows_count = math.ceil(len(others) / columns)
    fig = new_figure(4.6 * columns, 4.0 * rows_count + 0.6)
    axes = fig.subplots(rows_count, columns, squeeze=False).ravel()
    for ax in axes[len(others) :]:
        ax.set_visible(False)
    for ax, (task, metric) in zip(axes, others):
        y = data[(data["task"] == task) & (data["metric"] == metric)].set_index(keys)
        both = x[["delta", "bad"]].join(y[["delta"]].rename(columns={"delta": "delta_y"}), how="inner").reset_index()
        for row in both.itertuples():
            ax.scatter(
                row.delta,
                row.delta_y,
                color=palette.get(row.compression, "grey"),
                s=80 if row.bad else 40,
                marker=DEGRADED_MARKER if row.bad else "o",
                zorder=3,
            )
            ax.annotate(
                cell_label(row.model, row.compression),
                (row.delta, row.delta_y),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=6,
            )
        ax.axhline(0, color="grey", ls=":", lw=1)
        ax.axvline(0, color="grey", ls=":", lw=1)
        held = both[~both["bad"]]
        title = panel_title(task, metric)
        if len(held) >= MIN_CELLS:
            rho, low, high = rank_correlation(held["delta"], held["delta_y"])
            title += f"\nρ = {rho:+.2f} [{low:+.2f}, {high:+.2f}], {len(held)} cells held"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Δ " + metric_label(x_metric, x_task).split("\n")[0], fontsize=8)
        ax.set_ylabel("Δ " + metric_label(metric, task).split("\n")[0], fontsize=8)
    if data["bad"].any():
        marker = Line2D([], [], color="grey", marker=DEGRADED_MARKER, ls="", label=DEGRADED_LABEL)
        fig.legend(handles=[marker], fontsize=7, loc="outside lower center")
    fig.suptitle("Δ against the baseline, cell by cell: do the benchmarks move together? (ρ: Spearman, 95% bootstrap)")
    return fig
