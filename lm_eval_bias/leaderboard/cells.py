"""Per-cell judgements next to the per-metric ones: capability against the baseline, and flips
by the baseline's confidence. One row per (model, revision, compression) that has a baseline."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from lm_eval_bias.leaderboard.capability import (
    DEFAULT_THRESHOLDS,
    KEYS,
    Thresholds,
    capability_changes,
    capability_table,
)
from lm_eval_bias.leaderboard.flips import TERCILES, confidence_of, tercile_flips
from lm_eval_bias.leaderboard.holistic_bias import rank_moves_table
from lm_eval_bias.leaderboard.results import Run


def flips_table(runs: list[Run], frame: pd.DataFrame, baselines: dict[tuple, tuple | None]) -> pd.DataFrame:
    """Per cell and task with a ``flips.CONFIDENCES`` entry (CrowS-Pairs, BBQ, lm-eval's multiple-choice
    bias tasks): `TASK flips_low`, `TASK n_low`, ... for the terciles of the baseline's confidence, from
    the logged samples of the run and its baseline.

    Args:
        runs: the leaderboard's runs; ``frame["run"]`` indexes them.
        frame: the long metric frame (``results.metric_frame``); its rows say which tasks each cell ran.
        baselines: cell key ``(model, revision, compression)`` -> its baseline's key, or None.

    Returns:
        One row per cell whose baseline ran such a task with logged samples: the key columns and
        ``TASK flips_T`` / ``TASK n_T`` for each tercile T (``flips.TERCILES``); an empty frame with the
        key columns when there is none.
    """
    run_of = {
        (r.model, r.revision, r.compression, r.task): r.run
        for r in frame.itertuples()
        if confidence_of(r.task) is not None
    }
    cells: dict[tuple, dict] = {}
    for (*key, task), index in run_of.items():
        base_key = baselines.get(tuple(key))
        base_index = run_of.get((*base_key, task)) if base_key else None
        if base_index is None:
            continue
        base, confidence = runs[base_index], confidence_of(task)
        margin = base.per_item(task, confidence.margin)
        if not margin:
            continue
        split = tercile_flips(
            runs[index].per_item(task, confidence.answer), base.per_item(task, confidence.answer), margin
        )
        cell = cells.setdefault(tuple(key), dict(zip(KEYS, key)))
        for name in TERCILES:
            cell[f"{task} flips_{name}"], cell[f"{task} n_{name}"] = split[name]
    return pd.DataFrame(list(cells.values()), columns=None if cells else KEYS)


def cell_frame(
    runs: list[Run],
    frame: pd.DataFrame,
    baseline_of: Callable[[Run], tuple | None],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """`frame`: every metric of every run (metric_frame); `baseline_of(run)`: its baseline's key.

    Args:
        runs: the leaderboard's runs; ``frame["run"]`` indexes them.
        frame: every metric of every run (``results.metric_frame``).
        baseline_of: a run -> its baseline's key ``(model, revision, compression)``, or None.
        thresholds: where degradation starts (``capability.Thresholds``).

    Returns:
        One row per cell that has a baseline: the key columns, ``capability_table``'s columns and
        ``flips_table``'s and HolisticBias' ``rank_moves_table``'s (outer-joined on the key); an empty
        frame with the key columns when ``frame`` is empty.
    """
    if frame.empty:
        return pd.DataFrame(columns=KEYS)
    baselines = {runs[index].key: baseline_of(runs[index]) for index in frame["run"].unique()}
    capability = capability_table(capability_changes(frame, baselines, thresholds), thresholds)
    cells = capability.merge(flips_table(runs, frame, baselines), on=KEYS, how="outer")
    return cells.merge(rank_moves_table(runs, frame, baselines), on=KEYS, how="outer")
