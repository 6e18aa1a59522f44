"""Likelihood Bias with its 95% interval, recomputed from the logged samples of finished HolisticBias runs.

    python benchmarks/holistic_bias_intervals.py results/gemma_full

The task reports the interval itself (`likelihood_bias_ci_low` / `_high`) since it gained it; runs made before
that (the worked example's six HolisticBias cells) hold the sentences it is computed from, and this prints it
for every run under the folder, from its samples, with the same function (`likelihood_bias_interval`: each
axis' templates resampled, 1,000 resamples, seed 1234). A run whose results file already holds the interval
is checked against it.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from pathlib import Path

from lm_eval_bias.leaderboard import load_runs
from lm_eval_bias.leaderboard.holistic_bias import sentence_item
from lm_eval_bias.metrics.holistic_bias import likelihood_bias, likelihood_bias_interval, pair_tests

TASKS = "holistic_bias*"  # the group, or an axis subtask run on its own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="a study's output folder (or any folder of lm-eval results)")
    args = parser.parse_args()
    print("| model | compression | task | likelihood_bias [95% CI] | templates | descriptor pairs |")
    print("|---|---|---|---|---|---|")
    for run in load_runs(args.results_dir):
        for task in fnmatch.filter(run.top_level_tasks(), TASKS):
            print(row(run, task))


def row(run, task: str) -> str:
    """One run's Likelihood Bias on one task and its interval, from the samples, checked against its results file."""
    items = list(run.per_item(task, lambda _leaf, sample: sentence_item(sample)).values())
    tests = pair_tests([item for item in items if item is not None])
    value, (low, high) = likelihood_bias(tests), likelihood_bias_interval(tests)
    metrics, name = run.metrics(task), f"{run.model} {run.compression} {task}"
    reported = metrics.get("likelihood_bias", (math.nan,) * 4)
    if not math.isclose(reported[0], value, rel_tol=1e-9):
        raise SystemExit(f"{name}: {value} from the samples, {reported[0]} in its results file")
    if "likelihood_bias_ci_low" in metrics and not math.isclose(reported[2], low, rel_tol=1e-9):
        raise SystemExit(f"{name}: interval from {low} from the samples, from {reported[2]} in its results file")
    templates = len({(test.axis, test.template) for test in tests})
    interval = f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"| {run.model} | {run.compression} | {task} | {interval} | {templates} | {len(tests):,} |"


if __name__ == "__main__":
    main()
