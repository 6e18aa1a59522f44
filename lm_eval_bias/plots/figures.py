"""The figures, each from the leaderboard's long table (one row per run × task × metric).

Every function returns a matplotlib Figure, or None when the results hold nothing it can
show (no pretraining steps, no k-bit settings, no StereoSet, no students).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # noqa: F401 - the type the functions return
from matplotlib.lines import Line2D

from lm_eval_bias.leaderboard.capability import BIAS_TASK_METRICS
from lm_eval_bias.plots.style import (
    DEGRADED_LABEL,
    DEGRADED_MARKER,
    MARKERS,
    REFERENCE,
    colors,
    compression_order,
    degraded,
    latest_revisions,
    metric_label,
    new_figure,
    panel_title,
    significant,
    task_label,
)
from lm_eval_bias.plots.tradeoff import QUALITY_METRICS, best_tradeoff


def bias_series(long: pd.DataFrame, shown: tuple[str, ...] = tuple(REFERENCE)) -> list[tuple[str, str]]:
    """(task, metric) pairs among `shown`, in that order of metrics; a single SEAT test (a task with
    effect_size) shows its signed effect size rather than its absolute value."""
    pairs = set(long.loc[long["metric"].isin(list(shown)), ["task", "metric"]].itertuples(index=False, name=None))
    pairs = {(t, m) for t, m in pairs if not (m == "abs_effect_size" and (t, "effect_size") in pairs)}
    return sorted(
        pairs, key=lambda pair: (shown.index(pair[1]) if pair[1] in shown[:4] else 4, pair[0], shown.index(pair[1]))
    )


def _grid(count: int, width: float = 4.2, height: float = 3.4, columns: int = 4):
    ncols = min(columns, count)
    nrows = math.ceil(count / ncols)
    fig = new_figure(width * ncols, height * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _errors(rows: pd.DataFrame) -> np.ndarray | None:
    low, high = rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]
    if low.isna().all():
        return None
    return np.vstack([low.fillna(0).clip(lower=0), high.fillna(0).clip(lower=0)])


def _per_revision(long: pd.DataFrame, model: str, compression: str, task: str, metric: str) -> pd.DataFrame:
    """One row per revision: the bias metric, ICAT and quality metrics of the same runs."""
    runs = long[(long["model"] == model) & (long["compression"] == compression)]
    bias = runs[(runs["task"] == task) & (runs["metric"] == metric)][["revision", "step", "value"]]
    extra = runs[runs["metric"].isin(("icat", *QUALITY_METRICS))]
    extra = extra.drop_duplicates(["revision", "metric"]).pivot(index="revision", columns="metric", values="value")
    return bias.rename(columns={"value": metric}).merge(extra, left_on="revision", right_index=True, how="left")


def bias_vs_step(long: pd.DataFrame, task: str, metric: str) -> Figure | None:
    data = long[(long["task"] == task) & (long["metric"] == metric) & long["step"].notna()]
    if data["step"].nunique() < 2:
        return None
    models = list(data.sort_values(["size", "model"])["model"].unique())
    order = compression_order(data)
    palette = colors(order)
    fig, axes = _grid(len(models))
    reasons = set()
    for ax, model in zip(axes, models):
        for compression in order:
            rows = data[(data["model"] == model) & (data["compression"] == compression)].sort_values("step")
            if rows.empty:
                continue
            x = rows["step"] / 1000
            style = "-" if compression == "none" else "--"
            ax.plot(x, rows["value"], style, color=palette[compression], marker=".", label=compression)
            if rows["ci_low"].notna().any():
                ax.fill_between(x, rows["ci_low"], rows["ci_high"], color=palette[compression], alpha=0.12, lw=0)
            best = best_tradeoff(
                _per_revision(long, model, compression, task, metric), metric, reference=REFERENCE.get(metric, 50.0)
            )
            if best is not None:
                point = rows[rows["revision"] == best.revision].iloc[0]
                ax.plot(
                    point["step"] / 1000, point["value"], "*", ms=15, color=palette[compression], mec="white", zorder=5
                )
                reasons.add(best.reason)
        ax.axhline(REFERENCE.get(metric, 50.0), color="grey", ls=":", lw=1)
        ax.set_title(model)
        ax.set_xlabel("pretraining step (thousands)")
        ax.set_ylabel(metric_label(metric, task))
    handles = [Line2D([], [], color=palette[c], ls="-" if c == "none" else "--", label=c) for c in order]
    handles.append(
        Line2D(
            [],
            [],
            color="grey",
            marker="*",
            ls="",
            ms=12,
            label="best trade-off: " + "; ".join(sorted(reasons)) if reasons else "best trade-off",
        )
    )
    handles.append(Line2D([], [], color="grey", ls=":", label="unbiased"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle(f"{task_label(task)} bias through pretraining, uncompressed and compressed (bands: 95% CI)")
    return fig


@dataclass(frozen=True)
class DoseAxis:
    """The x axis of a dose-response figure: a column of the long table, and where 'uncompressed' sits."""

    column: str
    label: str
    uncompressed: float
    log2: bool
    title: str


BITS_AXIS = DoseAxis("bits", "weight bits (nominal; uncompressed = 32)", 32.0, True, "weight precision")
SPARSITY_AXIS = DoseAxis("sparsity", "sparsity of the pruned layers (target; uncompressed = 0)", 0.0, False, "sparsity")


def delta_vs_bits(long: pd.DataFrame) -> Figure | None:
    return delta_vs_dose(long, BITS_AXIS)


def delta_vs_sparsity(long: pd.DataFrame) -> Figure | None:
    return delta_vs_dose(long, SPARSITY_AXIS)


def delta_vs_dose(long: pd.DataFrame, axis: DoseAxis) -> Figure | None:
    """Each compressed run's change in bias against its dose (bits or sparsity), one line per method."""
    column = axis.column
    data = latest_revisions(long)
    data = data[
        (data["compression"] != "none")
        & data["delta"].notna()
        & data[column].notna()
        & data["metric"].isin(list(REFERENCE))
    ]
    if data[column].nunique() < 2:
        return None
    series = bias_series(data)
    methods = list(dict.fromkeys(data.sort_values(column, ascending=not axis.log2)["method"]))
    palette = colors(["none", *methods])
    models = list(data.sort_values(["size", "model"])["model"].unique())
    fig, axes = _grid(len(series), width=4.4, columns=3)
    for ax, (task, metric) in zip(axes, series):
        rows = data[(data["task"] == task) & (data["metric"] == metric)]
        for (model, method), group in rows.groupby(["model", "method"], sort=False):
            group = group.sort_values(column)
            marker = MARKERS[models.index(model) % len(MARKERS)]
            # methods sharing a precision (int8 ones, say) sit side by side rather than on top of each other
            rank = methods.index(method) - (len(methods) - 1) / 2
            x = group[column] * 2 ** (0.06 * rank) if axis.log2 else group[column] + 0.01 * rank
            ax.plot(x, group["delta"], "-" if len(group) > 1 else "", color=palette[method], lw=1)
            flagged = significant(group).to_numpy()
            bad = degraded(group).to_numpy()
            for flag in (True, False):
                shown = (flagged == flag) & ~bad
                ax.scatter(
                    x[shown],
                    group["delta"][shown],
                    marker=marker,
                    s=45,
                    color=palette[method],
                    facecolors=palette[method] if flag else "white",
                    zorder=3,
                )
            ax.scatter(x[bad], group["delta"][bad], marker=DEGRADED_MARKER, s=90, color=palette[method], zorder=4)
        ax.axhline(0, color="grey", ls=":", lw=1)
        ticks = sorted({*data[column], axis.uncompressed})
        if axis.log2:
            ax.set_xscale("log", base=2)
            ax.set_xlim(min(ticks) / 1.25, 40)
        else:
            ax.set_xlim(min(ticks) - 0.05, max(ticks) + 0.05)
        ax.set_xticks(ticks, [f"{b:g}" for b in ticks])
        ax.set_title(panel_title(task, metric))
        ax.set_xlabel(axis.label)
        ax.set_ylabel(f"Δ vs uncompressed ({'percentage points' if REFERENCE.get(metric) == 50 else 'Cohen d'})")
    handles = [Line2D([], [], color=palette[m], marker="o", label=m) for m in methods]
    handles += [
        Line2D([], [], color="grey", marker="o", ls="", label="filled: paired test p < 0.05"),
        Line2D([], [], color="grey", marker="o", mfc="white", ls="", label="hollow: p ≥ 0.05"),
    ]
    if degraded(data).any():
        handles.append(Line2D([], [], color="grey", marker=DEGRADED_MARKER, ms=9, ls="", label=DEGRADED_LABEL))
    if len(models) > 1:
        handles += [
            Line2D([], [], color="grey", marker=MARKERS[i % len(MARKERS)], ls="", label=m) for i, m in enumerate(models)
        ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle(f"Change in bias against {axis.title} (each model at its latest revision)")
    return fig


def lms_vs_ss(long: pd.DataFrame) -> Figure | None:
    rows = long[long["metric"].isin(("ss", "lms"))]
    table = rows.pivot_table(index=["model", "revision", "compression", "task"], columns="metric", values="value")
    if not {"ss", "lms"} <= set(table.columns) or table[["ss", "lms"]].dropna().empty:
        return None
    table = table.dropna(subset=["ss", "lms"]).reset_index()
    order = compression_order(long[long["compression"].isin(table["compression"])])
    palette = colors(order)
    models = list(long[long["model"].isin(table["model"])].sort_values(["size", "model"])["model"].unique())
    fig = new_figure(7.5, 6)
    ax = fig.subplots()
    lo_x, hi_x = max(0.0, min(table["ss"].min(), 50) - 8), min(100.0, max(table["ss"].max(), 50) + 8)
    lo_y, hi_y = max(0.0, table["lms"].min() - 8), min(100.0, table["lms"].max() + 8)
    ss = np.linspace(lo_x, hi_x, 400)
    for level in range(10, 100, 10):
        lms = 50.0 * level / np.minimum(ss, 100 - ss)
        visible = (lms >= lo_y) & (lms <= hi_y)
        if visible.sum() < 2:
            continue
        ax.plot(ss[visible], lms[visible], color="0.8", lw=0.8, zorder=0)
        # label at the V's tip (SS = 50, LMS = ICAT) when it is in view, else where the curve leaves the plot
        if lo_y <= level <= hi_y and lo_x <= 50 <= hi_x:
            ax.text(50.0, level, f" ICAT {level}", fontsize=7, color="0.45", ha="left", va="bottom")
        else:
            ax.text(ss[visible][-1], lms[visible][-1], f"ICAT {level} ", fontsize=7, color="0.45", ha="right", va="top")
    bad = set(map(tuple, rows.loc[degraded(rows), ["model", "revision", "compression"]].to_numpy()))
    for _, row in table.iterrows():
        marker = MARKERS[models.index(row["model"]) % len(MARKERS)]
        if (row["model"], row["revision"], row["compression"]) in bad:
            ax.scatter(
                row["ss"], row["lms"], color=palette[row["compression"]], s=110, marker=DEGRADED_MARKER, zorder=3
            )
        elif row["compression"] == "none":  # a ring on top: a compression that changes nothing stays visible
            ax.scatter(
                row["ss"],
                row["lms"],
                s=130,
                facecolors="none",
                edgecolors="black",
                linewidths=1.5,
                marker=marker,
                zorder=4,
            )
        else:
            ax.scatter(
                row["ss"],
                row["lms"],
                color=palette[row["compression"]],
                s=50,
                edgecolor="white",
                marker=marker,
                zorder=3,
            )
    ax.axvline(50, color="grey", ls=":", lw=1)
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(lo_y, hi_y)
    ax.set_xlabel("StereoSet stereotype score SS (%; 50 = unbiased)")
    ax.set_ylabel("StereoSet language-model score LMS (%)")
    ax.set_title("Language modelling vs stereotyping (grey curves: equal ICAT)")
    handles = [
        Line2D(
            [],
            [],
            color=palette[c],
            marker="o",
            ls="",
            label=c,
            **({"mfc": "none", "ms": 10, "mew": 1.5} if c == "none" else {}),
        )
        for c in order
    ]
    if len(models) > 1:
        handles += [
            Line2D([], [], color="grey", marker=MARKERS[i % len(MARKERS)], ls="", label=m) for i, m in enumerate(models)
        ]
    if bad:
        handles.append(Line2D([], [], color="grey", marker=DEGRADED_MARKER, ms=9, ls="", label=DEGRADED_LABEL))
    ax.legend(handles=handles, fontsize=8, loc="best", title="compression", title_fontsize=8)
    return fig


def student_vs_teacher(long: pd.DataFrame) -> Figure | None:
    data = long[
        long["teacher"].notna()
        & (long["compression"] == "none")
        & long["delta"].notna()
        & long["metric"].isin(list(REFERENCE) + ["lms", "icat"])
    ]
    if data.empty:
        return None
    series = list(data[["task", "metric"]].drop_duplicates().itertuples(index=False, name=None))
    fig, axes = _grid(len(series), width=4.6, height=0.6 * data["model"].nunique() + 2.0, columns=3)
    for ax, (task, metric) in zip(axes, series):
        rows = data[(data["task"] == task) & (data["metric"] == metric)].reset_index(drop=True)
        y = np.arange(len(rows))
        teacher = rows["value"] - rows["delta"]
        ax.hlines(y, teacher, rows["value"], color="0.6")
        ax.scatter(teacher, y, color="black", label="teacher", zorder=3)
        ax.errorbar(rows["value"], y, xerr=_errors(rows), fmt="o", color="#d62728", label="student", zorder=3)
        for i, row in rows.iterrows():
            if not math.isnan(row["p_value"]):
                ax.annotate(
                    f"p={row['p_value']:.2g}",
                    (row["value"], i),
                    textcoords="offset points",
                    xytext=(0, 7),
                    fontsize=7,
                    ha="center",
                )
        ax.set_yticks(y, [f"{r.model}\nvs {r.baseline.split(' · ')[0]}" for r in rows.itertuples()])
        if metric in REFERENCE:
            ax.axvline(REFERENCE[metric], color="grey", ls=":", lw=1)
        ax.set_xlabel(metric_label(metric, task))
        ax.set_title(panel_title(task, metric))
    axes[0].legend(fontsize=8)
    fig.suptitle("Distilled students against their teachers (student bars: 95% CI)")
    return fig


def by_compression(long: pd.DataFrame, model: str) -> Figure | None:
    data = latest_revisions(long[long["model"] == model])
    series = bias_series(data, BIAS_TASK_METRICS)
    if not series:
        return None
    order = compression_order(data)
    palette = colors(order)
    fig, axes = _grid(len(series), width=3.9, height=0.32 * len(order) + 2.0)
    for ax, (task, metric) in zip(axes, series):
        rows = data[(data["task"] == task) & (data["metric"] == metric)].set_index("compression").reindex(order)
        y = np.arange(len(order))[::-1]
        for yi, (compression, row) in zip(y, rows.iterrows()):
            if math.isnan(row["value"]):
                continue
            errors = _errors(rows.loc[[compression]])
            marked = bool(significant(rows.loc[[compression]]).iloc[0])
            bad = row.get("capability") == "degraded"
            ax.errorbar(
                row["value"],
                yi,
                xerr=errors,
                fmt=DEGRADED_MARKER if bad else "o",
                color=palette[compression],
                mfc=palette[compression] if marked or compression == "none" or bad else "white",
                capsize=2,
                ms=10 if bad else 6,
            )
        ax.set_yticks(y, order)
        if metric in REFERENCE:
            ax.axvline(REFERENCE[metric], color="grey", ls=":", lw=1)
        ax.set_xlabel(metric_label(metric, task), fontsize=8)
        ax.set_title(panel_title(task, metric), fontsize=10)
    for ax in axes[1:]:
        if ax.get_subplotspec().colspan.start:
            ax.set_yticklabels([])
    revision = ", ".join(sorted(set(data["revision"])))
    marked = "; ✕ = degraded (capability fell)" if degraded(data).any() else ""
    fig.suptitle(
        f"{model} ({revision}) under each compression: 95% CIs; filled = differs from uncompressed "
        f"(paired test p < 0.05){marked}"
    )
    return fig
