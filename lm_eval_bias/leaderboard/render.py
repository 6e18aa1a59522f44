"""Leaderboard output: terminal table, Markdown, CSV, and a self-contained HTML page."""

from __future__ import annotations

import math

import pandas as pd

from lm_eval_bias.leaderboard.agreement import agreement_lines
from lm_eval_bias.leaderboard.holistic_bias import RANK_MOVES
from lm_eval_bias.leaderboard.html_page import html_page
from lm_eval_bias.leaderboard.table import KEYS
from lm_eval_bias.leaderboard.verdicts import (
    DEGRADED,
    capability_columns,
    correction_of,
    degraded_rows,
    flips_columns,
    is_bias_column,
    judged_p,
    verdict_lines,
)

NOTE = (
    "value ± half-width of its 95% interval (1.96 × the harness's stderr), or [low, high] when the task "
    "reports its own interval (StereoSet's bootstrap interval of ss). "
    "Δ: run − baseline (the same model and revision uncompressed; for a student, its teacher), "
    "with the paired test's p-value on the items both runs scored (exact McNemar for per-item "
    "preferences and other two-level metrics, a paired permutation test otherwise; BBQ's bias scores, "
    "ratios over the non-unknown answers, a paired permutation test of the score) and the number of "
    "items whose preference flipped. CrowS-Pairs stereotype_score and StereoSet ss: 50 is unbiased."
)
ADJUSTED_NOTE = (
    " Holm p: the paired p-values of every bias metric of every compared row, adjusted together by Holm's "
    "step-down method (the family: compared cells × bias metrics shown); significance (bold, the verdicts) is "
    "judged by it where there is one, else by the raw p."
)


def _number(value: float, reference: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    scale = abs(reference if reference is not None and not math.isnan(reference) else value)
    return f"{value:.1f}" if scale >= 10 else f"{value:.3f}"


def _p(value: float, name: str = "p") -> str:
    if math.isnan(value):
        return ""
    return f"{name}<0.001" if value < 0.001 else f"{name}={value:.3f}" if value < 0.1 else f"{name}={value:.2f}"


def _interval(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return ""
    if math.isnan(low) or math.isnan(high):
        return _number(value)
    scale = max(abs(value), abs(low), abs(high))  # a bias score near 0 with a wide interval: as many digits as the ends
    if abs((high - value) - (value - low)) <= 1e-9 * max(1.0, abs(value)):
        return f"{_number(value, scale)} ± {_number(high - value, scale)}"
    return f"{_number(value, scale)} [{_number(low, scale)}, {_number(high, scale)}]"


def display_frame(wide: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Strings: per metric one `value ± ci` column and one `Δ (p, flips)` column.

    Args:
        wide: ``Leaderboard.wide()``.
        columns: the metric columns ("task/metric") to show, in order (those missing from ``wide``
            are skipped).

    Returns:
        The key columns, ``capability`` (when ``wide`` has it), per metric ``METRIC (95% CI)`` and
        ``METRIC Δ`` (with a multiple-comparison correction, its adjusted p after the raw one:
        ``−5.6 (p=0.004, Holm p=0.036, 16 flipped)``), then the capability and flips display columns,
        all as strings.
    """
    out = wide[KEYS].copy()
    degraded = degraded_rows(wide)
    if "capability" in wide.columns:
        out["capability"] = wide["capability"].fillna("").astype(str)
    for column in columns:
        if column not in wide.columns:
            continue
        out[f"{column} (95% CI)"] = [
            _interval(v, low, high)
            for v, low, high in zip(wide[column], wide[f"{column} ci_low"], wide[f"{column} ci_high"])
        ]
        correction = correction_of(wide.columns, column)
        adjusted = wide[f"{column} p_{correction}"] if correction else [math.nan] * len(wide)
        label = f"{correction.capitalize()} p" if correction else ""
        deltas = []
        for value, delta, p, q, flips, bad in zip(
            wide[column],
            wide[f"{column} delta"],
            wide[f"{column} p_value"],
            adjusted,
            wide[f"{column} flips"],
            degraded,
        ):
            if isinstance(delta, float) and math.isnan(delta):
                deltas.append("")
                continue
            sign = "+" if delta > 0 else "−" if delta < 0 else "±"
            parts = (_p(p), _p(q, label), "" if math.isnan(flips) else f"{int(flips)} flipped")
            details = [part for part in parts if part]
            deltas.append(
                f"{sign}{_number(abs(delta), value)}"
                + (f" ({', '.join(details)})" if details else "")
                + (f" [{DEGRADED}]" if bad and is_bias_column(column) else "")
            )
        out[f"{column} Δ"] = deltas
    for name, values in {**capability_columns(wide), **flips_columns(wide)}.items():
        out[name] = values
    for name in (c for c in wide.columns if c.endswith(f" {RANK_MOVES}")):  # HolisticBias: already text
        out[name] = wide[name].fillna("").astype(str)
    return out


def to_text(frame: pd.DataFrame) -> str:
    """A plain-text table for the terminal.

    Args:
        frame: the display frame (``display_frame``).

    Returns:
        Left-aligned columns two spaces apart, a line of dashes under the header.
    """
    cells = [list(frame.columns)] + [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame) -> str:
    """A Markdown table.

    Args:
        frame: the display frame (``display_frame``).

    Returns:
        The table, with "|" in cells escaped.
    """

    def escape(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(escape(c) for c in frame.columns) + " |",
        "|" + "|".join("---" for _ in frame.columns) + "|",
    ]
    lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def to_csv(wide: pd.DataFrame) -> str:
    """The numbers as CSV.

    Args:
        wide: ``Leaderboard.wide()``.

    Returns:
        CSV text with a header row, no index, floats to 6 significant digits.
    """
    return wide.to_csv(index=False, float_format="%.6g")


def _significance(frame: pd.DataFrame, wide: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    flags = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column in columns:
        if f"{column} Δ" in flags.columns:
            flags[f"{column} Δ"] = (judged_p(wide, column) < 0.05).to_numpy()
    return flags


def render(
    wide: pd.DataFrame,
    columns: list[str],
    fmt: str,
    title: str = "lm-eval-bias leaderboard",
    figures: str | None = None,
) -> str:
    """`figures`: a folder of PNG figures that the HTML page embeds (if it exists).

    Args:
        wide: ``Leaderboard.wide()``.
        columns: the metric columns ("task/metric") to show, in order.
        fmt: ``"csv"``, ``"markdown"``, ``"html"``; any other value gives the terminal table.
        title: the HTML page's title.
        figures: a folder of PNG figures that the HTML page embeds (if it exists).

    Returns:
        The leaderboard in that format; except for CSV, followed by the verdict lines and the rank
        correlations of the bias metrics' Δs (``agreement``).
    """
    if fmt == "csv":
        return to_csv(wide)
    frame = display_frame(wide, columns)
    verdicts = verdict_lines(wide, columns) + agreement_lines(wide, columns)
    if fmt == "markdown":
        return to_markdown(frame) + "\n" + "".join(f"\n- {line}" for line in verdicts) + ("\n" if verdicts else "")
    if fmt == "html":
        note = NOTE + (ADJUSTED_NOTE if any(correction_of(wide.columns, column) for column in columns) else "")
        return html_page(frame, wide, columns, _significance(frame, wide, columns), verdicts, note, title, figures)
    return to_text(frame) + "\n" + "".join(f"\n{line}" for line in verdicts) + ("\n" if verdicts else "")
