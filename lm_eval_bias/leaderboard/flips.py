"""Where flips happen: item-level answer flips against the baseline, by how sure the baseline was.

An item flips when the run answers it otherwise than the baseline did; the items are split into
terciles of the baseline's confidence in its own answer (by rank, ties broken by item, sizes
differing by at most one, the smallest confidences first). A compression that flips only
near-ties (the low tercile) adds noise; one that flips confident judgements (the high tercile)
changed the model. ``CONFIDENCES`` says, per task, what the answer and the confidence are:

- CrowS-Pairs (ours): the answer is the preferred sentence (per-pair stereotype_score 100 or 0),
  the confidence |score(sent_more) − score(sent_less)|;
- BBQ (ours): the answer is the chosen one of the three, the confidence the margin of its score
  over the second best (log-likelihoods, or per character under ``bbq_choice=normalized``, as the
  task chose);
- lm-eval's multiple-choice bias tasks (``bbq``, ``crows_pairs_english*``, ``winogender_*``,
  ``simple_cooccurrence_bias``): the answer with the highest log-likelihood (as their ``acc`` or
  preference reads it), the confidence its log-likelihood margin over the second.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lm_eval_bias.metrics.bbq import CHOICE_RULES, answer_scores, choice_margin, chosen_answer

TERCILES = ("low", "mid", "high")


def tercile_flips(run_preferences: dict, base_preferences: dict, base_margins: dict) -> dict[str, tuple[int, int]]:
    """{tercile: (flipped items, items)} over the items all three mappings hold.

    Args:
        run_preferences: item -> the run's answer (a CrowS-Pairs pair: 100 when sent_more is preferred,
            else 0; a multiple-choice item: the chosen answer's index).
        base_preferences: item -> the baseline's answer.
        base_margins: item -> the baseline's confidence in its answer (a CrowS-Pairs pair:
            |score(sent_more) − score(sent_less)|; a multiple-choice item: ``choice_margin``).

    Returns:
        ``"low"``, ``"mid"``, ``"high"`` -> (items whose answer differs, items in the tercile).
    """
    items = sorted(
        set(run_preferences) & set(base_preferences) & set(base_margins), key=lambda i: (base_margins[i], repr(i))
    )
    parts = np.array_split(np.arange(len(items)), len(TERCILES))
    return {
        name: (sum(run_preferences[items[i]] != base_preferences[items[i]] for i in part), len(part))
        for name, part in zip(TERCILES, parts)
    }


def margins(more: dict, less: dict) -> dict:
    """item -> |more − less| over the items both hold.

    Args:
        more: item -> score of ``sent_more``.
        less: item -> score of ``sent_less``.

    Returns:
        item -> the absolute difference, for the items in both.
    """
    return {item: abs(more[item] - less[item]) for item in set(more) & set(less)}


def loglikelihoods(sample: dict[str, Any]) -> list[float] | None:
    """A multiple-choice sample's per-answer log-likelihoods, from its ``filtered_resps``.

    Args:
        sample: a logged sample; lm-eval writes each answer's ``[loglikelihood, is_greedy]`` as text.

    Returns:
        The log-likelihoods in answer order; None when the sample has fewer than two answers or one
        that is not a number.
    """
    responses = sample.get("filtered_resps")
    if not isinstance(responses, list) or len(responses) < 2:
        return None
    try:
        values = [float(r[0] if isinstance(r, (list, tuple)) else r) for r in responses]
    except (TypeError, ValueError, IndexError):
        return None
    return None if any(math.isnan(v) for v in values) else values


def _bbq_scores(sample: dict[str, Any]) -> list[float] | None:
    """Ours: the scores the task chose by (its ``bbq_choice`` rule, logged in the document)."""
    lls, doc = loglikelihoods(sample), sample.get("doc") or {}
    rule = doc.get("bbq_choice", "sum")
    if lls is None or rule not in CHOICE_RULES or any(f"ans{i}" not in doc for i in range(len(lls))):
        return None
    return answer_scores(lls, [str(doc[f"ans{i}"]) for i in range(len(lls))], rule)


def _answer(scores: Callable[[dict[str, Any]], list[float] | None]) -> Callable[[str, dict[str, Any]], float | None]:
    def read(task: str, sample: dict[str, Any]) -> float | None:
        found = scores(sample)
        return None if found is None else float(chosen_answer(found))

    return read


def _margin(scores: Callable[[dict[str, Any]], list[float] | None]) -> Callable[[str, dict[str, Any]], float | None]:
    def read(task: str, sample: dict[str, Any]) -> float | None:
        found = scores(sample)
        return None if found is None else choice_margin(found)

    return read


def _number(name: str) -> Callable[[str, dict[str, Any]], float | None]:
    def read(task: str, sample: dict[str, Any]) -> float | None:
        value = sample.get(name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        return float(value) if number else None

    return read


def _crows_margin(task: str, sample: dict[str, Any]) -> float | None:
    more, less = _number("sent_more_score")(task, sample), _number("sent_less_score")(task, sample)
    return None if more is None or less is None else abs(more - less)


@dataclass(frozen=True)
class Confidence:
    """What an item's answer and the baseline's confidence in it are, for the tasks a pattern names.

    Attributes:
        tasks: shell-style pattern of the task (or group) names it applies to.
        answer: (leaf task, logged sample) -> the item's answer (its index, or preference), or None.
        margin: (leaf task, logged sample) -> the confidence in that answer (0 or more), or None.
    """

    tasks: str
    answer: Callable[[str, dict[str, Any]], float | None]
    margin: Callable[[str, dict[str, Any]], float | None]


_STOCK_ANSWER, _STOCK_MARGIN = _answer(loglikelihoods), _margin(loglikelihoods)
# the first pattern a task matches applies; tasks matching none get no flips by confidence
CONFIDENCES = (
    Confidence("crows_pairs_bias*", _number("stereotype_score"), _crows_margin),
    Confidence("bbq_bias*", _answer(_bbq_scores), _margin(_bbq_scores)),
    *(
        Confidence(pattern, _STOCK_ANSWER, _STOCK_MARGIN)
        for pattern in (
            "bbq",
            "bbq_ambig",
            "bbq_disambig",
            "crows_pairs_english*",
            "winogender_*",
            "simple_cooccurrence_bias",
        )
    ),
)


def confidence_of(task: str) -> Confidence | None:
    """How flips by confidence are counted for a task.

    Args:
        task: a task or group name.

    Returns:
        The first of ``CONFIDENCES`` whose pattern matches it, or None.
    """
    return next((c for c in CONFIDENCES if fnmatch.fnmatchcase(task, c.tasks)), None)
