"""The per-cell judgements in words and as display columns: capability against the baseline,
flips by the baseline's confidence, and one closing sentence per compared cell."""

from __future__ import annotations

import math

import pandas as pd

from lm_eval_bias.leaderboard.capability import BIAS_METRICS, describe_change
from lm_eval_bias.leaderboard.flips import TERCILES
from lm_eval_bias.leaderboard.paired import CORRECTIONS

ALPHA = 0.05
DEGRADED = "degraded"


def _is_nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def degraded_rows(wide: pd.DataFrame) -> list[bool]:
    """Which rows' capability fell past its threshold.

    Args:
        wide: ``Leaderboard.wide()``.

    Returns:
        One flag per row, True where ``capability`` is "degraded" (all False without that column).
    """
    if "capability" not in wide.columns:
        return [False] * len(wide)
    return [value == DEGRADED for value in wide["capability"]]


def capability_columns(wide: pd.DataFrame) -> dict[str, list[str]]:
    """'MEASURE vs base' -> per row '×4.00 (20.0 → 80.0)' or '−20.0 (90.0 → 70.0)'.

    Args:
        wide: ``Leaderboard.wide()``, with ``capability_table``'s ``MEASURE base`` / ``value`` /
            ``ratio`` or ``change`` columns where capability was compared.

    Returns:
        Display column name -> one string per row ("" where the cell has no such change).
    """
    shown = {}
    for column in wide.columns:
        measure, _, kind = column.rpartition(" ")
        if kind not in ("ratio", "change") or f"{measure} base" not in wide.columns:
            continue
        shown[f"{measure} vs base"] = [
            "" if _is_nan(change) else describe_change(kind, change, base, value)
            for change, base, value in zip(wide[column], wide[f"{measure} base"], wide[f"{measure} value"])
        ]
    return shown


def flips_columns(wide: pd.DataFrame) -> dict[str, list[str]]:
    """'TASK flips by base confidence (low · mid · high)' -> per row '2/10 · 0/10 · 0/10'.

    Args:
        wide: ``Leaderboard.wide()``, with ``cells.flips_table``'s ``TASK flips_T`` / ``TASK n_T`` columns.

    Returns:
        Display column name -> one string per row ("" where the cell has no flips counted).
    """
    shown = {}
    for column in wide.columns:
        if not column.endswith(" flips_low"):
            continue
        task = column[: -len(" flips_low")]
        rows = zip(*(wide[f"{task} {part}_{name}"] for name in TERCILES for part in ("flips", "n")))
        shown[f"{task} flips by base confidence (low · mid · high)"] = [
            "" if _is_nan(values[0]) else " · ".join(f"{int(values[2 * i])}/{int(values[2 * i + 1])}" for i in range(3))
            for values in rows
        ]
    return shown


def correction_of(names, column: str) -> str | None:
    """The multiple-comparison correction whose adjusted p-values a metric column has, if any.

    Args:
        names: the columns of ``Leaderboard.wide()`` (or one of its rows' index).
        column: a "task/metric" column.

    Returns:
        The name of the ``paired.CORRECTIONS`` entry (``"holm"``) whose ``"task/metric p_<name>"`` is among
        ``names``, else None.
    """
    return next((name for name in CORRECTIONS if f"{column} p_{name}" in names), None)


def judged_p(wide: pd.DataFrame, column: str) -> pd.Series:
    """The p-values a metric column's significance is judged by: adjusted where the row is in the family of a
    multiple-comparison correction, else the raw paired p.

    Args:
        wide: ``Leaderboard.wide()``.
        column: a "task/metric" column with its ``p_value`` column.

    Returns:
        One p-value per row (NaN where the row has no test).
    """
    raw, name = wide[f"{column} p_value"], correction_of(wide.columns, column)
    return raw if name is None else wide[f"{column} p_{name}"].fillna(raw)


def is_bias_column(column: str) -> bool:
    """Whether a "task/metric" column holds a bias metric (whose Δ a degraded cell leaves unjudged).

    Args:
        column: a "task/metric" column, or a bare metric name.

    Returns:
        True when its metric is one of ``BIAS_METRICS``.
    """
    return column.split("/", 1)[-1] in BIAS_METRICS


def _adjusted(row: pd.Series, column: str) -> tuple[str, float] | None:
    """(correction name, adjusted p) of one row's metric column, when the leaderboard was built with one."""
    name = correction_of(row.index, column)
    return None if name is None else (name.capitalize(), row[f"{column} p_{name}"])


def _bias_changes(row: pd.Series, columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(significant, tested but not significant, untested) bias Δs of one wide row, the first as
    'task/metric −33.3, p=0.004' (with a correction, judged by the adjusted p and worded
    'task/metric −33.3, p=0.004, Holm p=0.036'), the others as 'task/metric'."""
    significant, not_significant, untested = [], [], []
    for column in filter(is_bias_column, columns):
        delta, p = row.get(f"{column} delta"), row.get(f"{column} p_value")
        correction, adjusted = _adjusted(row, column) or ("", math.nan)
        judged = p if _is_nan(adjusted) else adjusted
        if _is_nan(delta):
            continue
        if _is_nan(judged):
            untested.append(column)
        elif judged < ALPHA:
            sign = "+" if delta > 0 else "−" if delta < 0 else "±"
            extra = "" if _is_nan(adjusted) else f", {correction} p={adjusted:.2g}"
            significant.append(f"{column} {sign}{abs(delta):.3g}, p={p:.2g}{extra}")
        else:
            not_significant.append(column)
    return significant, not_significant, untested


def verdict_lines(wide: pd.DataFrame, columns: list[str]) -> list[str]:
    """One sentence per cell compared with a baseline: did bias move significantly, and did capability hold?

    Args:
        wide: ``Leaderboard.wide()``.
        columns: its metric columns ("task/metric"); the bias ones are judged.

    Returns:
        One line per row with a bias Δ, in row order; none for rows without one.
    """
    lines = []
    for _, row in wide.iterrows():
        significant, not_significant, untested = _bias_changes(row, columns)
        if not (significant or not_significant or untested):
            continue
        name = " · ".join(str(row[k]) for k in ("model", "revision", "compression"))
        if significant:
            bias = f"bias moved significantly ({'; '.join(significant)})"
        elif not_significant:
            adjusted = _adjusted(row, not_significant[0])
            p = f"{adjusted[0]} p" if adjusted else "p"  # with a correction, every tested bias metric is adjusted
            bias = f"bias did not move significantly ({p} ≥ {ALPHA:g}: {', '.join(not_significant)})"
        else:
            bias = "bias change untested (no logged samples)"
        capability = row.get("capability")
        if capability == DEGRADED:
            verdict = f"capability did not hold ({row['capability_detail']}), so the bias change is not evidence"
            joiner = " but " if significant else "; "
        elif capability == "held":
            verdict, joiner = "capability held", " and " if significant else "; "
        else:
            verdict, joiner = (
                "capability not measured (no perplexity, LMS, BBQ accuracy or capability task in both runs)",
                "; ",
            )
        lines.append(f"{name}: {bias}{joiner}{verdict}.")
    return lines
