"""Whole sentences that begin alike: their shared prefix run through the body once, the endings on its cache.

HolisticBias scores 69,056 sentences, each a whole-sentence request (the prefix token, then every
token scored), and most share their first words with dozens of others: a template's words and a
descriptor before each of its nouns. A sentence's log-likelihood is the sum over its tokens, so
for a group of sentences that share their first L tokens it equals

    log p(tokens 2..L | prefix token)  +  log p(the rest | the first L tokens),

the first term the same for the whole group. :func:`split_shared_prefixes` plans the groups: the
distinct sentences sorted, each group a run of at least ``MIN_MEMBERS`` neighbours sharing at
least ``MIN_PREFIX`` tokens, the runs chosen by dynamic programming to save the most body
positions ((members - 1) x prefix length, less ``GROUP_COST`` a group). On the small set with
Gemma-3's tokenizer the body's positions fall from 747,162 to 162,970. A call is split only
when that removes at least ``MIN_SAVED_SHARE`` of its body positions: CrowS-Pairs' sentences
(two a pair, few beginning alike: 7% of its positions) are scored whole as before.

:func:`score_endings` then runs each batch of shared prefixes through the body once, keeps the
key/value cache, and runs the endings on copies of their prefix's cache rows, packed by length
(endings of one length together, so no forward pads one ending to another's length; a forward
holds at most ``ENDING_TOKENS`` tokens). The LM head runs once per distinct position: a prefix's
last position predicts the first token of all its endings, and endings that begin alike share
their first positions. Per-token log-probabilities equal those of scoring each sentence whole, up
to fp32 rounding (``tests/unit/test_shared_prefix.py``). The same conditions as ``shared_context``:
positions that see no later token, a plain ``nn.Linear`` head, a sliding window that holds the
sentences; ``causal`` checks them before it splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded
from lm_eval_bias.scoring.head import body_then_head_matches, linear_head_logprobs, softcap_of
from lm_eval_bias.scoring.heap import retained_heap
from lm_eval_bias.scoring.shared_context import (
    _cache,
    _cache_argument,
    _rows_of,
    can_share_contexts,
    fits_window,
    store_rows,
)

MIN_MEMBERS = 4
MIN_PREFIX = 3  # tokens, the prefix token included
WINDOW = 64
GROUP_COST = 2  # positions a group costs (its extra forwards), against the positions it saves
MIN_SAVED_SHARE = 0.25  # split only when that removes this share of the call's body positions
ENDING_TOKENS = 2048  # ending tokens in one forward on the prefixes' cache


@dataclass(frozen=True)
class Split:
    """The requests to score instead, and how each original request's tokens are put back together.

    Attributes:
        requests: ``(context, continuation)`` token sequences: the original requests that are not split,
            each group's shared part ``(prefix token, prefix tokens 2..L)``, and each member's ending.
        endings: the indices into ``requests`` of the members' endings (context: the L shared tokens).
        joins: for each original request, the indices into ``requests`` whose per-token results,
            concatenated in order, are its own.
    """

    requests: list[tuple[tuple[int, ...], tuple[int, ...]]]
    endings: frozenset[int]
    joins: list[tuple[int, ...]]


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many first tokens ``a`` and ``b`` share.

    Args:
        a: token ids.
        b: token ids.

    Returns:
        The length of their longest common prefix.
    """
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def runs(wholes: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
    """The groups: runs of neighbours chosen to save the most body positions.

    Args:
        wholes: the distinct whole sentences' token ids (prefix token first), sorted.

    Returns:
        ``(start, stop, prefix length)`` of each chosen run of ``wholes[start:stop]``, in order.
    """
    n = len(wholes)
    common = [common_length(wholes[i], wholes[i + 1]) for i in range(n - 1)]
    best = [0] * (n + 1)  # best[j]: positions saved over wholes[:j]
    start = list(range(n + 1))  # the run that ends at j - 1 starts at start[j] (j - 1: no run)
    for j in range(n):
        best[j + 1], start[j + 1] = best[j], j
        prefix = len(wholes[j]) - 1  # every member keeps at least one token of its own
        for i in range(j - 1, max(-1, j - WINDOW), -1):
            prefix = min(prefix, common[i], len(wholes[i]) - 1)
            if prefix < MIN_PREFIX:
                break
            members = j - i + 1
            saved = best[i] + (members - 1) * prefix - GROUP_COST
            if members >= MIN_MEMBERS and saved > best[j + 1]:
                best[j + 1], start[j + 1] = saved, i
    chosen, j = [], n
    while j > 0:
        i = start[j]
        if i < j - 1:
            chosen.append((i, j, min(*common[i : j - 1], *(len(w) - 1 for w in wholes[i:j]))))
            j = i
        else:
            j -= 1
    return chosen[::-1]


def split_shared_prefixes(
    requests: Sequence[tuple[Sequence[int], Sequence[int]]], max_length: int | None = None
) -> Split | None:
    """The requests with whole sentences that begin alike split at their shared prefix; None if none do.

    Args:
        requests: ``(context ids, continuation ids)``. Only whole-sentence requests take part: a context
            of one token (the prefix token), a continuation of two or more, and nothing that
            ``max_length`` would cut.
        max_length: the model's context, as for ``causal.score_continuations``.

    Returns:
        A :class:`Split`, or None when no group forms or the groups save less than ``MIN_SAVED_SHARE``
        of the requests' body positions.
    """
    requests = [(tuple(c), tuple(t)) for c, t in requests]
    eligible = sorted(
        {
            c + t
            for c, t in requests
            if len(c) == 1 and len(t) >= 2 and (max_length is None or len(c) + len(t) <= max_length + 1)
        }
    )
    chosen = runs(eligible)
    saved = sum((j - i - 1) * prefix for i, j, prefix in chosen)
    if not chosen or saved < MIN_SAVED_SHARE * sum(len(c) + len(t) - 1 for c, t in requests):
        return None
    out: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    endings: set[int] = set()
    where: dict[tuple[int, ...], tuple[int, ...]] = {}
    for i, j, prefix in chosen:
        shared = len(out)
        out.append((eligible[i][:1], eligible[i][1:prefix]))
        for whole in eligible[i:j]:
            where[whole] = (shared, len(out))
            endings.add(len(out))
            out.append((whole[:prefix], whole[prefix:]))
    joins = []
    for context, continuation in requests:
        parts = where.get(context + continuation) if len(context) == 1 else None
        if parts is None:
            parts = (len(out),)
            out.append((context, continuation))
        joins.append(parts)
    return Split(out, frozenset(endings), joins)


def score_endings(
    model: torch.nn.Module,
    groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    batch_size: int,
    pad_token_id: int,
    head_logprobs,
) -> list[list[tuple[tuple[float, ...], tuple[bool, ...]]]]:
    """Per-token log-probabilities of each ending of each shared prefix.

    Args:
        model: a causal LM that ``shared_context.can_share_contexts`` accepts.
        groups: ``(prefix ids, [ending ids, ...])``; every ending is non-empty.
        batch_size: prefixes per forward on an accelerator (on a CPU the token floor of ``batching``).
        pad_token_id: the padding id.
        head_logprobs: ``(hidden (positions, hidden size), target ids, the row of hidden each target is
            scored at) -> (log-probs, is-argmax)``, one entry per target.

    Returns:
        For each group, for each ending: (log p of each token, whether each token is the argmax).
    """
    device = model_device(model)
    base = model.base_model
    out: list[list] = [[None] * len(endings) for _, endings in groups]
    batches = length_sorted_batches([len(p) for p, _ in groups], batch_size, min_tokens_per_batch(device))
    for batch in batches:
        prefix_ids, prefix_mask = right_padded([list(groups[g][0]) for g in batch], pad_token_id, device)
        lengths = prefix_mask.sum(dim=1)
        rows = [(slot, e) for slot, g in enumerate(batch) for e in range(len(groups[g][1]))]
        endings = [list(groups[batch[slot]][1][e]) for slot, e in rows]
        with torch.inference_mode():
            first = base(input_ids=prefix_ids, attention_mask=prefix_mask, use_cache=True)
            cache = _cache(first)
            picks = [first.last_hidden_state[torch.arange(len(batch), device=device), lengths - 1]]
            later: dict[int, torch.Tensor] = {}
            by_length = sorted((i for i in range(len(rows)) if len(endings[i]) > 1), key=lambda i: len(endings[i]))
            step = 0
            while step < len(by_length):  # endings of one length together, at most ENDING_TOKENS a forward
                width = len(endings[by_length[step]]) - 1
                chunk = by_length[step : step + max(1, ENDING_TOKENS // width)]
                chunk = [i for i in chunk if len(endings[i]) - 1 == width]
                step += len(chunk)
                index = torch.as_tensor([rows[i][0] for i in chunk], device=device)
                ids = torch.as_tensor([endings[i][:-1] for i in chunk], device=device)
                second = base(
                    input_ids=ids,
                    attention_mask=torch.cat([prefix_mask[index], torch.ones_like(ids)], dim=1),
                    position_ids=lengths[index, None] + torch.arange(width, device=device),
                    use_cache=True,
                    **{_cache_argument(base): _rows_of(cache, index)},
                )
                later.update(zip(chunk, second.last_hidden_state))
            # the head once per distinct position: the prefix's last, then each distinct ending prefix
            position: dict[tuple, int] = {}
            scored_at: list[int] = []
            for i, (slot, _) in enumerate(rows):
                scored_at.append(slot)
                for k in range(1, len(endings[i])):
                    key = (slot, tuple(endings[i][:k]))
                    if key not in position:
                        position[key] = len(batch) + len(picks) - 1
                        picks.append(later[i][k - 1 : k])
                    scored_at.append(position[key])
            targets = torch.as_tensor([t for e in endings for t in e], dtype=torch.long, device=device)
            rows_of_targets = torch.as_tensor(scored_at, dtype=torch.long, device=device)
            logprobs, greedy = head_logprobs(torch.cat(picks), targets, rows_of_targets)
        store_rows(out, batch, rows, endings, logprobs, greedy)
    return out


def plan_split(model: torch.nn.Module, requests, max_length: int | None) -> Split | None:
    """:func:`split_shared_prefixes` for these requests, when the model can score the split that way.

    Args:
        model: the causal LM (its head, cache support and sliding window are checked).
        requests: ``(context ids, continuation ids)``, as for ``causal.score_continuations``.
        max_length: the model's context.

    Returns:
        The split, or None (no group, or a model that cannot score endings on a cache).
    """
    if not can_share_contexts(model):
        return None
    split = split_shared_prefixes(requests, max_length)
    if split is None:
        return None
    longest = max(len(c) + len(t) for c, t in split.requests)
    probe = list((split.requests[0][0] + split.requests[0][1])[:8])
    if not fits_window(model, longest) or not body_then_head_matches(model, probe):
        return None
    return split


def score_split_endings(
    model: torch.nn.Module, split: Split, pad_token_id: int, batch_size: int
) -> dict[int, tuple[tuple[float, ...], tuple[bool, ...]]]:
    """The split's endings scored on their shared prefixes.

    Args:
        model: the causal LM that :func:`plan_split` accepted.
        split: the plan.
        pad_token_id: the padding id.
        batch_size: prefixes per forward (on a CPU the least number; see ``batching``).

    Returns:
        For each index in ``split.endings``: (log p of each token of the ending, whether each is the argmax).
    """
    groups: dict[tuple[int, ...], dict[tuple[int, ...], int]] = {}
    for i in sorted(split.endings):
        context, ending = split.requests[i]
        groups.setdefault(context, {})[ending] = i
    items = [(context, list(endings)) for context, endings in groups.items()]
    head = model.get_output_embeddings()
    with retained_heap():
        scored = score_endings(
            model,
            items,
            batch_size=batch_size,
            pad_token_id=pad_token_id,
            head_logprobs=lambda hidden, targets, rows: linear_head_logprobs(
                hidden, head.weight, head.bias, targets, softcap_of(model), rows=rows
            ),
        )
    return {
        groups[context][ending]: result
        for (context, endings), per_ending in zip(items, scored)
        for ending, result in zip(endings, per_ending)
    }
