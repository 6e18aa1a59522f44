"""Continuations that share a context (the answers of a multiple-choice item), context computed once.

A multiple-choice item asks for log p(answer_i | context) for each of its answers. Scored one
request at a time, the transformer body runs over the context once per answer; here it runs
once per batch of contexts, keeps its key/value cache, and then runs the answers on top of it,
one forward per answer slot (the first answers of every context, then the second, ...), on the cache
itself, cropped back to the contexts after each slot (``Cache.crop``), or, where only some contexts have
the slot, on a copy of only their rows (``reorder_cache`` on a shallow copy of the cache's layers). Each answer's
positions get the position ids they would have after its own context, and the padding of a
batch of contexts is masked, so the result equals scoring each answer on its own, up to fp32
rounding. The LM head runs only where a score needs it, as in ``causal``.

Only for models whose output at a position depends on the tokens up to it alone (no statistics
taken over a whole sequence, e.g. dynamic int8's activation scale), with a plain ``nn.Linear``
head, and for contexts and answers that fit a sliding-attention window: callers check
:func:`can_share_contexts` and score everything else the usual way.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded

MIN_SHARED_CONTEXT = 2  # a context of one token (a prefix token alone) saves nothing worth a second forward


def can_share_contexts(model: torch.nn.Module) -> bool:
    """Whether the model's body takes a key/value cache and position ids and its head is a plain Linear.

    Args:
        model: a causal LM (``base_model`` + output embeddings).

    Returns:
        True when :func:`score_shared_contexts` can score it.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    base = getattr(model, "base_model", model)
    return (
        base is not model
        and type(head) is torch.nn.Linear
        and type(head.weight.data) is torch.Tensor
        and bool(getattr(model.config, "use_cache", True))
    )


def fits_window(model: torch.nn.Module, tokens: int) -> bool:
    """Whether ``tokens`` positions stay inside the model's sliding attention window, if it has one
    (a cache of a sliding layer keeps only the window).

    Args:
        model: a causal LM (its config's ``sliding_window``, if any, is read).
        tokens: a padded context's length plus an answer's.

    Returns:
        True when the model has no sliding window or the tokens fit it.
    """
    window = getattr(model.config, "sliding_window", None)
    return not window or tokens <= int(window)


def _cache_argument(base: torch.nn.Module) -> str:
    """The forward's name for a key/value cache: ``cache`` from transformers 5.2x, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _rows_of(cache, index: torch.Tensor):
    """A cache holding the given batch rows of ``cache`` (which stays as it is): its layers are copied
    shallowly, and each copy's ``reorder_cache`` selects the rows into tensors of its own."""
    rows = copy.copy(cache)
    rows.layers = [copy.copy(layer) for layer in cache.layers]
    rows.reorder_cache(index)
    return rows


def _cache(output):
    return output.cache if getattr(output, "cache", None) is not None else output.past_key_values


def score_shared_contexts(
    model: torch.nn.Module,
    groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    batch_size: int,
    pad_token_id: int,
    head_logprobs,
    progress: bool = False,
) -> list[list[tuple[tuple[float, ...], tuple[bool, ...]]]]:
    """Per-token log-probabilities of each continuation of each context.

    Args:
        model: a causal LM that :func:`can_share_contexts` accepts.
        groups: ``(context ids, [continuation ids, ...])``; every continuation is non-empty.
        batch_size: contexts per forward on an accelerator (on a CPU the token floor of ``batching``).
        pad_token_id: the padding id.
        head_logprobs: ``(hidden (positions, hidden size), target ids) -> (log-probs, is-argmax)``.
        progress: show a progress bar.

    Returns:
        For each group, for each continuation: (log p of each token, whether each token is the argmax).
    """
    device = model_device(model)
    base = model.base_model
    out: list[list] = [[None] * len(continuations) for _, continuations in groups]
    batches = list(length_sorted_batches([len(c) for c, _ in groups], batch_size, min_tokens_per_batch(device)))
    for batch in tqdm(batches, desc="Scoring shared contexts", disable=not progress):
        contexts = [list(groups[g][0]) for g in batch]
        context_ids, context_mask = right_padded(contexts, pad_token_id, device)
        lengths = context_mask.sum(dim=1)
        with torch.inference_mode():
            first = base(input_ids=context_ids, attention_mask=context_mask, use_cache=True)
            rows = [(slot, c) for slot, g in enumerate(batch) for c in range(len(groups[g][1]))]
            answers = [list(groups[batch[slot]][1][c]) for slot, c in rows]
            index = torch.as_tensor([slot for slot, _ in rows], device=device)
            last = first.last_hidden_state[index, lengths[index] - 1]  # predicts each answer's first token
            logprobs, greedy = answers_on_cache(
                base, _cache(first), context_mask, lengths, rows, answers, last, pad_token_id, head_logprobs
            )
        store_rows(out, batch, rows, answers, logprobs, greedy)
    return out


def answers_on_cache(base, cache, context_mask, lengths, rows, answers, last, pad_token_id, head_logprobs):
    """Score answers on the key/value cache of their contexts (shared by ``shared_context`` and ``context_tree``).

    Args:
        base: the model's body.
        cache: the contexts' key/value cache, one row per context; left as it was.
        context_mask: the contexts' attention mask, (contexts, cache width).
        lengths: each context's position count (the position id its answers start at).
        rows: ``(context row, answer number)`` per answer, listed context by context in row order.
        answers: per answer, its token ids (non-empty).
        last: per answer, the hidden state of its context's last position (it predicts the first token).
        pad_token_id: the padding id.
        head_logprobs: ``(hidden, target ids) -> (log-probs, is-argmax)``.

    Returns:
        ``(log-probs, is-argmax)`` of every answer token, answer after answer.
    """
    device, later = context_mask.device, {}
    index = torch.as_tensor([row for row, _ in rows], device=device)
    # one forward per answer slot (the first answers of every context, then the second, ...). Where every
    # context has the slot, it runs on the cache itself, which is cropped back to the contexts afterwards;
    # otherwise on a copy of only its rows. A cache repeated for every answer at once held three times
    # the contexts' keys and values, and a copy per slot twice.
    for slot in range(max(c for _, c in rows) + 1):
        members = [i for i, (_, c) in enumerate(rows) if c == slot]
        if all(len(answers[i]) == 1 for i in members):  # answers of one token need no second forward
            continue
        whole = len(members) == context_mask.shape[0]  # rows are listed context by context, so in row order
        picked = index[members]
        # a one-token answer rides along as padding (its row's output is not read)
        answer_ids, answer_mask = right_padded([answers[i][:-1] for i in members], pad_token_id, device)
        second = base(
            input_ids=answer_ids,
            attention_mask=torch.cat([context_mask[picked], answer_mask], dim=1),
            position_ids=lengths[picked, None] + torch.arange(answer_ids.shape[1], device=device),
            use_cache=True,
            **{_cache_argument(base): cache if whole else _rows_of(cache, picked)},
        )
        if whole:
            cache.crop(-answer_ids.shape[1])
        later.update((i, h) for i, h in zip(members, second.last_hidden_state) if len(answers[i]) > 1)
    # scored positions: the context's last one, then every answer token but the last
    picks = [last[i] if k == 0 else later[i][k - 1] for i, a in enumerate(answers) for k in range(len(a))]
    targets = torch.as_tensor([t for a in answers for t in a], dtype=torch.long, device=device)
    return head_logprobs(torch.stack(picks), targets)


def store_rows(out, batch, rows, pieces, logprobs: torch.Tensor, greedy: torch.Tensor) -> None:
    """Cut one head call's flat scores back into rows (shared by ``shared_context`` and ``shared_prefix``).

    Args:
        out: per request of the batch, a dict from a row key to its ``(logprobs, greedy)`` tuples; filled in.
        batch: the request indices of the batch, by slot.
        rows: ``(slot, key)`` per row, in the order the head call scored them.
        pieces: per row, the token ids it scored (only their count is read).
        logprobs: the head call's log-probabilities, all rows' tokens one after another.
        greedy: the matching greedy flags.

    Returns:
        None; ``out[batch[slot]][key]`` holds row ``(slot, key)``'s values.
    """
    values, flags, start = logprobs.tolist(), greedy.tolist(), 0
    for (slot, k), piece in zip(rows, pieces):
        stop = start + len(piece)
        out[batch[slot]][k] = (tuple(values[start:stop]), tuple(flags[start:stop]))
        start = stop
