"""What the figures call things, where the unbiased line is, and one colour per compression."""

from __future__ import annotations

import math
import re

import pandas as pd

# metric -> axis label a reader understands without the code
METRIC_LABELS = {
    "stereotype_score": "stereotype score (% of pairs)",
    "ss": "stereotype score SS (%)",
    "lms": "language-model score LMS (%)",
    "icat": "ICAT (0-100, higher is better)",
    "effect_size": "effect size (Cohen's d)",
    "abs_effect_size": "mean |effect size| (Cohen's d)",
    "acc": "accuracy",
    "acc_norm": "length-normalised accuracy",
    "perplexity": "perplexity",
    "bias_ambig": "bias score, ambiguous (-100 to 100)",
    "bias_disambig": "bias score, disambiguated (-100 to 100)",
    "acc_disambig": "accuracy, disambiguated",
}
# bias metrics and their unbiased value
REFERENCE = {
    **{"stereotype_score": 50.0, "ss": 50.0, "effect_size": 0.0, "abs_effect_size": 0.0},
    **{"bias_ambig": 0.0, "bias_disambig": 0.0},
}
TASK_LABELS = {
    **{"crows_pairs_bias": "CrowS-Pairs", "stereoset_bias": "StereoSet", "seat_bias": "SEAT"},
    **{"bbq_bias": "BBQ", "bbq_bias_offline": "BBQ (6 categories)"},
}
UNCOMPRESSED_COLOR = "black"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "p")
# a cell whose capability fell past the leaderboard's threshold: its own marker, whatever the model
DEGRADED_MARKER = "X"
DEGRADED_LABEL = "✕: degraded (capability fell; bias Δ not evidence)"


def degraded(rows: pd.DataFrame) -> pd.Series:
    """True for rows of a cell the leaderboard marked degraded."""
    if "capability" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows["capability"].eq("degraded")


def significant(rows: pd.DataFrame) -> pd.Series:
    """True for rows whose paired test has p < 0.05: the adjusted p where the leaderboard was built with a
    multiple-comparison correction (``p_holm``) and the row is in its family, else the raw p."""
    p = rows["p_value"]
    for column in (c for c in rows.columns if c.startswith("p_") and c != "p_value"):
        p = rows[column].fillna(p)
    return p < 0.05


def metric_label(metric: str, task: str | None = None) -> str:
    """Axis label: '<benchmark> <metric> (<unit>)', the unbiased value on a second line."""
    label = METRIC_LABELS.get(metric, metric)
    if task is not None:
        label = f"{task_label(task)} {label}"
    reference = REFERENCE.get(metric)
    return f"{label}\n{reference:g} = unbiased" if reference is not None else label


def task_label(task: str) -> str:
    if task in TASK_LABELS:
        return TASK_LABELS[task]
    match = re.match(r"seat_bias_(.+)", task)
    return f"SEAT {match[1]}" if match else task


def panel_title(task: str, metric: str) -> str:
    return f"{task_label(task)}: {METRIC_LABELS.get(metric, metric).split(' (')[0]}"


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def compression_order(frame: pd.DataFrame) -> list[str]:
    """Uncompressed first, then by nominal bits (most first), then by name."""
    bits = frame.groupby("compression")["bits"].first()
    return sorted(bits.index, key=lambda c: (c != "none", -(0.0 if math.isnan(bits[c]) else float(bits[c])), c))


def colors(compressions: list[str]) -> dict[str, str]:
    others = [c for c in compressions if c != "none"]
    mapping = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(others)}
    mapping["none"] = UNCOMPRESSED_COLOR
    return mapping


def latest_revisions(frame: pd.DataFrame) -> pd.DataFrame:
    """Each model at its latest revision (highest step; a model without steps keeps all of its rows)."""
    keep = []
    for _, rows in frame.groupby("model", sort=False):
        if rows["step"].notna().any():
            keep.append(rows[rows["step"] == rows["step"].max()])
        else:
            keep.append(rows)
    return pd.concat(keep) if keep else frame


def save(fig, stem, formats: tuple[str, ...]) -> list:
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None} if fmt == "png" else {"Date": None})
        paths.append(path)
    return paths
