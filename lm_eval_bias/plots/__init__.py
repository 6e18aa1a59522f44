"""Figures from lm-eval results directories (matplotlib, no display needed).

`make_plots` reads a directory as the leaderboard does and writes every figure its
results support; `figures` holds one function per figure, `tradeoff` the paper's
"best trade-off" revision, `style` names, colours and reference lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from lm_eval_bias.leaderboard import UnreadableResultsError, build_leaderboard, scan_runs
from lm_eval_bias.leaderboard.capability import BIAS_TASK_METRICS
from lm_eval_bias.leaderboard.table import CAPABILITY_METRICS
from lm_eval_bias.plots import figures
from lm_eval_bias.plots.agreement import delta_agreement
from lm_eval_bias.plots.style import save
from lm_eval_bias.plots.tradeoff import QUALITY_METRICS, best_tradeoff

FORMATS = ("png", "svg")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def make_plots(
    results_dir: str | Path,
    out_dir: str | Path,
    formats: tuple[str, ...] = FORMATS,
    teachers: dict[str, str] | None = None,
    correction: str | None = None,
    skip_unreadable: bool = False,
) -> tuple[list[Path], list[str]]:
    """Write every figure the results support; returns (files written, figures and files skipped and why).
    `correction` ("holm"): significance marks judged by the adjusted p (`build_leaderboard`). A results or
    samples file that does not read back whole stops it (`UnreadableResultsError`, naming the file and line)
    unless `skip_unreadable`, which leaves out its run and lists it among the skipped."""
    runs, unreadable = scan_runs(results_dir)
    if unreadable and not skip_unreadable:
        raise UnreadableResultsError(results_dir, unreadable)
    if not runs:
        raise FileNotFoundError(f"no lm-eval results files under {results_dir}")
    metrics = sorted(set(BIAS_TASK_METRICS + CAPABILITY_METRICS + QUALITY_METRICS))
    long = build_leaderboard(runs, metrics=metrics, teachers=teachers, correction=correction).long
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [
        (
            f"bias_vs_step_{task}_{metric}",
            figures.bias_vs_step(long, task, metric),
            "no model was evaluated at two or more pretraining steps (revisions named stepN)",
        )
        for task, metric in figures.bias_series(long)
    ]
    wanted += [
        (
            "delta_bias_vs_bits",
            figures.delta_vs_bits(long),
            "no compressed run with two or more weight precisions and a baseline",
        ),
        (
            "delta_bias_vs_sparsity",
            figures.delta_vs_sparsity(long),
            "no pruned run with two or more sparsities and a baseline",
        ),
        ("lms_vs_ss", figures.lms_vs_ss(long), "no run with StereoSet ss and lms"),
        (
            "delta_agreement",
            delta_agreement(long),
            "fewer than two bias metrics with a Δ for two or more compressed cells",
        ),
        ("student_vs_teacher", figures.student_vs_teacher(long), "no student with an evaluated teacher"),
    ]
    wanted += [
        (f"by_compression_{_slug(model)}", figures.by_compression(long, model), "no bias metric")
        for model in long.sort_values(["size", "model"])["model"].unique()
    ]
    written, skipped = [], [f"unreadable {error} (its run left out)" for error in unreadable]
    for name, figure, why in wanted:
        if figure is None:
            skipped.append(f"{name}: {why}")
            continue
        written += save(figure, out / name, formats)
    return written, skipped


__all__ = ["make_plots", "best_tradeoff", "FORMATS"]
