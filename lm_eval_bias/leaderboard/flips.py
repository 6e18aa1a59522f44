"""Where flips happen: pair-level preference flips against the baseline, by how sure the baseline was.

A CrowS-Pairs pair flips when the run prefers the other sentence than the baseline did (its
per-pair stereotype_score is 100 in one run and 0 in the other). The baseline's confidence in
a pair is |score(sent_more) − score(sent_less)| in the baseline run; the pairs are split into
terciles of it (by rank, ties broken by item, sizes differing by at most one, the smallest
confidences first). A compression that flips only near-ties (the low tercile) adds noise; one
that flips confident judgements (the high tercile) changed the model.
"""

from __future__ import annotations

import numpy as np

TERCILES = ("low", "mid", "high")


def tercile_flips(run_preferences: dict, base_preferences: dict, base_margins: dict) -> dict[str, tuple[int, int]]:
    """{tercile: (flipped pairs, pairs)} over the items all three mappings hold.

    Args:
        run_preferences: item -> the run's per-pair value (100 when sent_more is preferred, else 0).
        base_preferences: item -> the baseline's per-pair value.
        base_margins: item -> |score(sent_more) − score(sent_less)| in the baseline.

    Returns:
        ``"low"``, ``"mid"``, ``"high"`` -> (pairs whose preference differs, pairs in the tercile).
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
