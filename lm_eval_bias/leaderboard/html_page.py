"""The HTML leaderboard as a picture: what a reader opens first.

Δ cells are shaded by sign (red: up, blue: down) and size (the deeper, the larger against the
largest |Δ| of that column); a cell whose capability fell past its threshold has an orange
`degraded` badge, an orange bar at the row's start, and its bias Δs framed by orange dashes
(shown, but not evidence). Bold: paired test p < 0.05. The study's figures (PNG files of
`lm-eval-bias plot`) follow the table, embedded so that the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from lm_eval_bias.leaderboard.verdicts import DEGRADED, degraded_rows, is_bias_column

UP, DOWN, WHITE = (214, 39, 40), (31, 119, 180), (255, 255, 255)
DEGRADED_COLOR = "#ff8c00"
STYLE = f"""
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; white-space: nowrap; }}
th {{ background: #f3f3f3; position: sticky; top: 0; }}
td.sig {{ font-weight: bold; }}
tr.degraded td:first-child {{ border-left: 8px solid {DEGRADED_COLOR}; }}
td.flagged {{ outline: 3px dashed {DEGRADED_COLOR}; outline-offset: -3px; }}
span.badge {{ background: {DEGRADED_COLOR}; color: #000; padding: 0.15em 0.5em; border-radius: 0.3em;
  font-weight: bold; }}
span.held {{ color: #2ca02c; font-weight: bold; }}
p.note, ul.verdicts {{ max-width: 70em; color: #444; }}
figure {{ display: inline-block; margin: 1em 1em 0 0; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }}
"""


def shade(delta: float, largest: float) -> str | None:
    """Background for a Δ: white blended towards red (up) or blue (down) by |Δ| / largest.

    Args:
        delta: the cell's Δ.
        largest: the largest |Δ| of its column.

    Returns:
        A ``#rrggbb`` colour, or None (no shading) for a NaN or zero Δ or a zero ``largest``.
    """
    if math.isnan(delta) or delta == 0 or not largest:
        return None
    weight = 0.15 + 0.5 * min(1.0, abs(delta) / largest)  # at most 0.65: black text stays legible
    target = UP if delta > 0 else DOWN
    red, green, blue = (round(w + (t - w) * weight) for w, t in zip(WHITE, target))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _delta_sources(frame: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """Display column 'task/metric Δ' -> wide column 'task/metric delta'."""
    return {f"{column} Δ": f"{column} delta" for column in columns if f"{column} Δ" in frame.columns}


def _cell(value, classes: list[str], background: str | None, column: str) -> str:
    text = html.escape(str(value))
    if column == "capability" and value == DEGRADED:
        text = f'<span class="badge">{DEGRADED}</span>'
    elif column == "capability" and value == "held":
        text = '<span class="held">held</span>'
    attributes = f' class="{" ".join(classes)}"' if classes else ""
    attributes += f' style="background:{background}"' if background else ""
    return f'<td{attributes} data-column="{html.escape(column)}">{text}</td>'


def _rows(frame: pd.DataFrame, wide: pd.DataFrame, columns: list[str], significant: pd.DataFrame) -> list[str]:
    sources = _delta_sources(frame, columns)
    largest = {
        shown: float(wide[source].abs().max()) if wide[source].notna().any() else 0.0
        for shown, source in sources.items()
    }
    degraded = degraded_rows(wide)
    rows = []
    for i, (values, flags) in enumerate(zip(frame.itertuples(index=False), significant.itertuples(index=False))):
        cells = []
        for column, value, flag in zip(frame.columns, values, flags):
            classes = ["sig"] if flag else []
            background = None
            if column in sources:
                background = shade(float(wide[sources[column]].iloc[i]), largest[column])
                if degraded[i] and is_bias_column(column[: -len(" Δ")]):
                    classes.append("flagged")
            cells.append(_cell(value, classes, background, column))
        row_class = ' class="degraded"' if degraded[i] else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return rows


def _figures(folder: str | Path | None) -> str:
    if folder is None or not Path(folder).is_dir():
        return ""
    parts = []
    for path in sorted(Path(folder).glob("*.png")):
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
        )
    return "<h2>Figures</h2>\n" + "\n".join(parts) + "\n" if parts else ""


def html_page(
    frame: pd.DataFrame,
    wide: pd.DataFrame,
    columns: list[str],
    significant: pd.DataFrame,
    verdicts: list[str],
    note: str,
    title: str,
    figures: str | Path | None = None,
) -> str:
    """`frame`: the display strings; `wide`: the numbers behind them (same rows, same order).

    Args:
        frame: the display strings (``render.display_frame``).
        wide: the numbers behind them (``Leaderboard.wide``), same rows in the same order.
        columns: the metric columns ("task/metric") whose Δ cells are shaded.
        significant: a frame shaped like ``frame``, True where a cell is set in bold (p < 0.05).
        verdicts: the closing sentences, listed under the table (none: no list).
        note: the explanatory paragraph above the table.
        title: the page title and heading.
        figures: a folder whose PNG files are embedded after the table, or None.

    Returns:
        The page, one self-contained HTML document.
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    legend = (
        f"Δ cells: red = up, blue = down, deeper = larger (against the column's largest |Δ|). Bold: p &lt; 0.05. "
        f'<span class="badge">{DEGRADED}</span>: capability fell past its threshold against the baseline; '
        "that cell's bias Δs (dashed frame) are shown but are not evidence about bias."
    )
    verdict_list = "".join(f"<li>{html.escape(line)}</li>" for line in verdicts)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f'<p class="note">{html.escape(note)}</p>\n<p class="note">{legend}</p>\n'
        f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(_rows(frame, wide, columns, significant))
        + "\n</tbody></table>\n"
        + (f'<h2>Verdicts</h2>\n<ul class="verdicts">{verdict_list}</ul>\n' if verdicts else "")
        + _figures(figures)
        + "</body></html>\n"
    )
