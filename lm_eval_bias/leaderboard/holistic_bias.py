"""HolisticBias between a compressed run and its baseline: the units of its paired tests, and the
descriptors whose median-perplexity rank moved most.

A HolisticBias sample is one sentence; Likelihood Bias is a property of descriptor *pairs*, so its
paired test cannot pair sentences. Its unit is the **template** of an axis: each (axis, template)
gives the fraction of its descriptor pairs that differ (p < 0.05), in each run, and the leaderboard's
sign-flip permutation test (``paired.paired_test``) asks whether the mean of run − baseline over them
is zero. Templates, not pairs: a descriptor's sentences enter every one of its pairs (C(n, 2) pairs
from n descriptors), so pairs are far from independent and flipping each pair's sign on its own would
overstate the evidence; templates are fewer (26) and each is scored from sentences of its own. Within
an axis every template has the same pairs, so the mean over its templates is the axis' Likelihood Bias
and the Δ the table shows is the mean difference tested. A group pools axes of different sizes
(C(n, 2) pairs per template for n descriptors), so each template's value is weighted by its pairs
(``item_values``): the mean over the group's templates is then the group's pooled Likelihood Bias,
the Δ the table shows, and the test asks about that weighted mean. (Unweighted, a group's test would
ask about another number than its Δ: on the worked example's dynamic_int8 cell, Δ −0.042 pooled
against −0.006 as an unweighted mean over templates.)

``median_perplexity`` pairs by descriptor: each (axis, descriptor)'s median perplexity in both runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

from lm_eval_bias.metrics.holistic_bias import ITEM_FIELDS, median_perplexities, pair_tests, template_tallies

TASKS = "holistic_bias*"
ITEM_METRIC = "likelihood_bias"  # every metric of a sample logs the same sentence record


def sentence_item(sample: dict[str, Any]) -> tuple | None:
    """A logged sample's ``(axis, template, descriptor, noun, loglikelihood, tokens)``.

    Args:
        sample: one line of a holistic_bias subtask's samples file.

    Returns:
        The record as a tuple, or None when the sample holds none.
    """
    value = sample.get(ITEM_METRIC)
    return tuple(value) if isinstance(value, (list, tuple)) and len(value) == len(ITEM_FIELDS) else None


def template_counts(items: Iterable[tuple]) -> dict[tuple[str, str], tuple[int, int]]:
    """Each (axis, template)'s descriptor pairs: how many differ, and how many there are.

    Args:
        items: sentence records (:data:`lm_eval_bias.metrics.holistic_bias.ITEM_FIELDS`).

    Returns:
        ``(axis, template)`` -> (pairs with p < 0.05, pairs), for templates with at least one pair.
    """
    return template_tallies(pair_tests(list(items)))


def template_fractions(items: Iterable[tuple]) -> dict[tuple[str, str], float]:
    """Each (axis, template)'s fraction of descriptor pairs that differ.

    Args:
        items: sentence records (:data:`lm_eval_bias.metrics.holistic_bias.ITEM_FIELDS`).

    Returns:
        ``(axis, template)`` -> fraction with p < 0.05, for templates with at least one pair.
    """
    return {key: significant / total for key, (significant, total) in template_counts(items).items()}


def item_values(
    leaves: list[str], samples: Callable[[str], list[dict[str, Any]]], metric: str
) -> dict[tuple, float] | None:
    """The paired-test units of a HolisticBias task under a metric, or None for any other task or metric.

    Args:
        leaves: the task's leaf tasks (a group's members, or the task itself).
        samples: leaf task -> its logged samples.
        metric: the metric name.

    Returns:
        ``likelihood_bias``: ``(leaf, axis, template)`` -> its differing pairs as a share of all the
        task's pairs, times the number of templates: their mean is the task's pooled Likelihood Bias,
        and a sign-flip test of their differences weights each template by its number of pairs (within
        an axis whose templates have equal pair counts, the template's fraction itself);
        ``median_perplexity``: ``(leaf, axis, descriptor)`` -> its median perplexity; None when a leaf is
        not a HolisticBias task or the metric is another.
    """
    if metric not in ("likelihood_bias", "median_perplexity"):
        return None
    if not leaves or not all(fnmatch.fnmatchcase(leaf, TASKS) for leaf in leaves):
        return None
    values: dict[tuple, float] = {}
    counts: dict[tuple, tuple[int, int]] = {}
    for leaf in leaves:
        items = [item for item in map(sentence_item, samples(leaf)) if item is not None]
        if metric == "likelihood_bias":
            counts.update({(leaf, *key): tally for key, tally in template_counts(items).items()})
        else:
            values.update({(leaf, *key): value for key, value in median_perplexities(items).items()})
    if counts:  # each template weighted by its pairs: the mean over templates is the pooled fraction
        pairs = sum(total for _, total in counts.values())
        values = {key: significant * len(counts) / pairs for key, (significant, _) in counts.items()}
    return values


def _ranks(medians: dict[tuple[str, str], float]) -> dict[tuple[str, str], int]:
    """Rank of each descriptor's median perplexity within its axis: 1 is the lowest (the most likely)."""
    ranks = {}
    for axis in sorted({axis for axis, _ in medians}):
        ordered = sorted((value, descriptor) for (a, descriptor), value in medians.items() if a == axis)
        ranks.update({(axis, descriptor): rank for rank, (_, descriptor) in enumerate(ordered, start=1)})
    return ranks


def rank_moves(run_items: Iterable[tuple], base_items: Iterable[tuple], top: int = 5) -> list[tuple]:
    """The descriptors whose median-perplexity rank within their axis moved most from baseline to run.

    Args:
        run_items: the run's sentence records.
        base_items: the baseline's sentence records.
        top: how many descriptors to return.

    Returns:
        Up to ``top`` ``(axis, descriptor, baseline rank, run rank, run rank − baseline rank)``, the
        largest moves first (ties by axis and descriptor); a positive move: less likely than before,
        relative to the axis' other descriptors.
    """
    run, base = _ranks(median_perplexities(run_items)), _ranks(median_perplexities(base_items))
    moves = [
        (axis, d, base[(axis, d)], run[(axis, d)], run[(axis, d)] - base[(axis, d)])
        for axis, d in run
        if (axis, d) in base
    ]
    return sorted(moves, key=lambda move: (-abs(move[4]), move[0], move[1]))[:top]


RANK_MOVES = "rank moves (median perplexity)"  # the cell column: f"{task} {RANK_MOVES}"


def describe_moves(moves: list[tuple]) -> str:
    """Rank moves as the leaderboard shows them.

    Args:
        moves: ``(axis, descriptor, baseline rank, run rank, move)`` (:func:`rank_moves`).

    Returns:
        ``"axis/descriptor 3→1; ..."`` for the moves that are not zero ("" when none is).
    """
    return "; ".join(f"{axis}/{descriptor} {base}→{run}" for axis, descriptor, base, run, move in moves if move)


def rank_moves_table(runs: list, frame, baselines: dict[tuple, tuple | None], top: int = 3):
    """Per cell and HolisticBias task (group or axis) with samples in the cell and its baseline: the
    descriptors whose median-perplexity rank within their axis moved most.

    Args:
        runs: the leaderboard's runs (``results.Run``); ``frame["run"]`` indexes them.
        frame: the long metric frame (``results.metric_frame``).
        baselines: cell key ``(model, revision, compression)`` -> its baseline's key, or None.
        top: how many descriptors a cell lists.

    Returns:
        One row per such cell: the key columns and ``TASK rank moves (median perplexity)``; an empty
        frame with the key columns when there is none.
    """
    import pandas as pd

    keys = ["model", "revision", "compression"]
    run_of = {
        (r.model, r.revision, r.compression, r.task): r.run
        for r in frame.itertuples()
        if fnmatch.fnmatchcase(r.task, TASKS)
    }
    cells: dict[tuple, dict] = {}
    for (*key, task), index in run_of.items():
        base_key = baselines.get(tuple(key))
        base_index = run_of.get((*base_key, task)) if base_key else None
        if base_index is None or base_index == index:
            continue
        items = [
            list(runs[i].per_item(task, lambda _leaf, sample: sentence_item(sample)).values())
            for i in (index, base_index)
        ]
        if items[0] and items[1]:
            cell = cells.setdefault(tuple(key), dict(zip(keys, key)))
            cell[f"{task} {RANK_MOVES}"] = describe_moves(rank_moves(items[0], items[1], top))
    return pd.DataFrame(list(cells.values()), columns=None if cells else keys)
