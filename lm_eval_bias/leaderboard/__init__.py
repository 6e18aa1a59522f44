"""Leaderboards from lm-eval results directories: `results` reads runs, `items` says which item a
logged sample is and its value under a metric, `paired` tests runs item by item, `table` builds the
comparison, `render` writes it out."""

from lm_eval_bias.leaderboard.loading import UnreadableResultsError, load_runs, scan_runs
from lm_eval_bias.leaderboard.paired import PairedResult, mcnemar_exact, paired_test, permutation_p_value
from lm_eval_bias.leaderboard.render import render
from lm_eval_bias.leaderboard.results import Run, metric_frame
from lm_eval_bias.leaderboard.table import Leaderboard, build_leaderboard, sort_wide

__all__ = [
    "PairedResult",
    "mcnemar_exact",
    "paired_test",
    "permutation_p_value",
    "render",
    "Run",
    "load_runs",
    "scan_runs",
    "UnreadableResultsError",
    "metric_frame",
    "Leaderboard",
    "build_leaderboard",
    "sort_wide",
]
