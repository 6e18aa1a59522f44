"""Log-probabilities of continuations under a causal LM, batched and batch-invariant.

The exact-scoring floor is the transformer body over the batch plus the LM head at every
scored position; for Gemma-3-270M's 262,144-row head the head is the larger half. So:

- The body runs once per length-sorted, right-padded batch; the LM head runs only at the
  positions that predict a continuation token (context positions are not headed).
- A plain ``nn.Linear`` head is applied one vocabulary slice at a time, to all the batch's
  scored positions at once, and normalised slice by slice (``head``).
- Other heads (quantized or wrapped modules) are called on whole sequences, as the model calls
  them (a per-sequence activation scale must see the whole sequence), and their logits go
  through the same normaliser; a model whose logits are not head(body) (checked once on a
  probe) is scored from its own full logits.
- On a CPU a batch holds at least 2,048 tokens (more sequences than batch_size when they are
  short) and at most 1.25 times its floor, split where it pads the fewest tokens (`batching`):
  32 CrowS-Pairs sentences (~500 tokens) per forward leave a CPU's matrix products short of
  their throughput (docs/benchmarks.md; scores move by fp32 rounding only).
- Requests that share a context of two or more tokens (a multiple-choice item's answers) run the
  body over it once with ``share_contexts`` (``shared_context``), under share_prefixes' condition,
  and on a CPU contexts that begin alike run their shared beginning once (``context_tree``).
- Identical requests are scored once, and the head runs once per distinct prefix: with
  ``share_prefixes`` (for models that compute each position from the tokens up to it alone,
  i.e. no activation statistics over a sequence), the first position with a prefix is headed for
  every next token any request of the call asks of it, and a later position with that prefix takes
  those results instead of a head pass (``prefix_heads``). CrowS-Pairs' minimal pairs share their
  prefix up to the first changed word (29% of the head positions on Gemma-3-270M); HolisticBias'
  sentences a template's start and a descriptor (the head at 16% of the positions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded
from lm_eval_bias.scoring.context_tree import score_context_tree
from lm_eval_bias.scoring.head import (
    body_then_head_matches,
    head_logits,
    linear_head_logprobs,
    logits_logprobs,
    softcap_of,
)
from lm_eval_bias.scoring.heap import retained_heap
from lm_eval_bias.scoring.prefix_heads import PrefixHeads
from lm_eval_bias.scoring.shared_context import (
    MIN_SHARED_CONTEXT,
    can_share_contexts,
    fits_window,
    score_shared_contexts,
)
from lm_eval_bias.scoring.shared_prefix import plan_split, score_split_endings
from lm_eval_bias.valid_tokens import valid_tokens_scope


@dataclass(frozen=True)
class TokenScore:
    """A request's score: the continuation's summed log-probability and whether it is the greedy one.

    Attributes:
        logprob: sum of the continuation tokens' natural-log probabilities (``math.fsum``; 0.0 for an
            empty continuation).
        is_greedy: whether every continuation token is the argmax at its position (True when empty).
        num_tokens: how many continuation tokens were scored.
    """

    logprob: float
    is_greedy: bool
    num_tokens: int


@dataclass(frozen=True)
class TokenLogprobs:
    """One entry per continuation token: log p(token | everything before it), and whether it is the argmax.

    Attributes:
        logprobs: the natural-log probability of each continuation token, in order (fp64 normaliser).
        greedy: for each continuation token, whether it is the argmax at its position (ties count).
    """

    logprobs: tuple[float, ...]
    greedy: tuple[bool, ...]

    def score(self) -> TokenScore:
        """The sentence-level score of these tokens.

        Returns:
            ``TokenScore(math.fsum(logprobs), all(greedy), len(logprobs))``.
        """
        return TokenScore(math.fsum(self.logprobs), all(self.greedy), len(self.logprobs))


Requests = Sequence[tuple[Sequence[int], Sequence[int]]]
BatchScorer = Callable[[torch.Tensor, torch.Tensor, list[list[int]]], list[TokenLogprobs]]

HEAD_POSITIONS = 128  # positions per call of a non-Linear head: bounds its vocabulary-sized logits


def score_continuations(
    model: torch.nn.Module,
    requests: Requests,
    *,
    batch_size: int,
    pad_token_id: int,
    max_length: int | None = None,
    progress: bool = False,
    share_prefixes: bool = False,
    share_contexts: bool = False,
) -> list[TokenScore]:
    """Sum of log p(continuation | context) for each (context_ids, continuation_ids).

    Args:
        model: a causal LM (a transformers ``...ForCausalLM`` or a module called the same way, with
            ``input_ids`` and ``attention_mask``, returning ``.logits``), in eval mode.
        requests: ``(context_ids, continuation_ids)`` token-id sequences; every context holds at least
            one token (e.g. the BOS/EOS prefix token), a continuation may be empty.
        batch_size: sequences per forward pass; on a CPU the least number, as a batch also holds at least
            ``batching.CPU_MIN_TOKENS`` tokens (``batching.length_sorted_batches``).
        pad_token_id: the id that right-pads the shorter sequences of a batch (never scored).
        max_length: when given, each request keeps only the last ``max_length + 1`` tokens of context
            plus continuation (the model reads at most ``max_length``), and continuation tokens cut off
            that way are not scored.
        progress: show a tqdm progress bar over the batches.
        share_prefixes: head each distinct prefix once over all requests; see
            ``continuation_token_logprobs``.
        share_contexts: requests that share a context of two or more tokens (a multiple-choice item's
            answers) run the body over that context once (``shared_context``); the same condition as
            ``share_prefixes``.

    Returns:
        One ``TokenScore`` per request, in request order (identical requests are scored once).

    Raises:
        ValueError: a request has an empty context, or a continuation token id is outside the model's
            vocabulary.
    """
    per_token = continuation_token_logprobs(
        model,
        requests,
        batch_size=batch_size,
        pad_token_id=pad_token_id,
        max_length=max_length,
        progress=progress,
        share_prefixes=share_prefixes,
        share_contexts=share_contexts,
    )
    return [tokens.score() for tokens in per_token]


def continuation_token_logprobs(
    model: torch.nn.Module,
    requests: Requests,
    *,
    batch_size: int,
    pad_token_id: int,
    max_length: int | None = None,
    progress: bool = False,
    share_prefixes: bool = False,
    share_contexts: bool = False,
    split_prefixes: bool = True,
) -> list[TokenLogprobs]:
    """Per-token log p(continuation token | context and the tokens before it) for each request.

    Args:
        model: a causal LM, as for ``score_continuations``.
        requests: ``(context_ids, continuation_ids)`` token-id sequences, as for ``score_continuations``.
        batch_size: sequences per forward pass (on a CPU the least number; see ``score_continuations``).
        pad_token_id: the id that right-pads the shorter sequences of a batch.
        max_length: when given, the last ``max_length + 1`` tokens of each request are kept, and only
            the continuation tokens among them are scored.
        progress: show a tqdm progress bar over the batches.
        share_prefixes: head each distinct prefix once over all requests (``prefix_heads``). Only for models
            whose output at a position depends on the tokens up to it alone (not on later tokens, e.g.
            through an activation scale taken over the whole sequence).
        share_contexts: the same condition; requests sharing a context run the body over it once, and
            whole sentences that begin alike run their shared prefix once (``shared_prefix``).
        split_prefixes: False to leave whole sentences whole (``shared_prefix`` is not asked).

    Returns:
        One ``TokenLogprobs`` per request, in request order, with one entry per scored continuation
        token (empty tuples for an empty continuation).

    Raises:
        ValueError: a request has an empty context, or a continuation token id is outside the model's
            vocabulary.
    """
    options = (batch_size, pad_token_id, max_length, progress, share_prefixes, share_contexts)
    split = plan_split(model, requests, max_length) if share_contexts and split_prefixes else None
    if split is None:
        return _whole_token_logprobs(model, requests, *options)
    # whole sentences that begin alike: their shared prefix through the body once, the rest whole
    parts: list[TokenLogprobs | None] = [None] * len(split.requests)
    for i, (values, flags) in score_split_endings(model, split, pad_token_id, batch_size).items():
        parts[i] = TokenLogprobs(values, flags)
    rest = [i for i in range(len(split.requests)) if i not in split.endings]
    for i, tokens in zip(rest, _whole_token_logprobs(model, [split.requests[i] for i in rest], *options)):
        parts[i] = tokens
    joined = [[parts[i] for i in join] for join in split.joins]
    return [
        TokenLogprobs(tuple(v for p in pieces for v in p.logprobs), tuple(g for p in pieces for g in p.greedy))
        for pieces in joined
    ]


def _whole_token_logprobs(
    model, requests, batch_size, pad_token_id, max_length, progress, share_prefixes, share_contexts
) -> list[TokenLogprobs]:
    """``continuation_token_logprobs`` with each request scored whole (no ``shared_prefix`` split)."""
    distinct: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    order = [
        distinct.setdefault(_model_input(context, continuation, max_length), len(distinct))
        for context, continuation in requests
    ]
    pairs = list(distinct)
    results = [TokenLogprobs((), ())] * len(pairs)
    done = (
        _shared_contexts(model, requests, distinct, results, pad_token_id, max_length, batch_size, progress)
        if share_contexts
        else set()
    )
    scored = [i for i, (_, target) in enumerate(pairs) if target and i not in done]
    if scored:
        device = model_device(model)
        batches = list(
            length_sorted_batches([len(pairs[i][0]) for i in scored], batch_size, min_tokens_per_batch(device))
        )
        with retained_heap():
            shared = PrefixHeads([pairs[i] for i in scored]) if share_prefixes else None
            scorer = batch_scorer(model, [list(pairs[i][0]) for i in scored], shared)
            for batch in tqdm(batches, desc="Scoring continuations", disable=not progress):
                indices = [scored[b] for b in batch]
                input_ids, attention_mask = right_padded([pairs[i][0] for i in indices], pad_token_id, device)
                targets = [list(pairs[i][1]) for i in indices]
                with torch.inference_mode(), valid_tokens_scope(attention_mask):
                    for index, tokens in zip(indices, scorer(input_ids, attention_mask, targets)):
                        results[index] = tokens
    return [results[i] for i in order]


def _shared_contexts(model, requests, distinct, results, pad_token_id, max_length, batch_size, progress) -> set[int]:
    """Score the requests that share a context through ``shared_context`` into ``results`` (indexed
    like ``distinct``); returns the indices it scored (none when the model or the lengths do not allow it)."""
    groups: dict[tuple[int, ...], dict[tuple[int, ...], int]] = {}
    for context, continuation in requests:
        context, continuation = tuple(context), tuple(continuation)
        whole = len(context) + len(continuation)
        if len(context) >= MIN_SHARED_CONTEXT and continuation and (max_length is None or whole <= max_length + 1):
            key = _model_input(context, continuation, max_length)
            groups.setdefault(context, {})[continuation] = distinct[key]
    groups = {context: answers for context, answers in groups.items() if len(answers) > 1}
    if not groups or not can_share_contexts(model):
        return set()
    longest = max(len(c) for c in groups) + max(len(a) for answers in groups.values() for a in answers)
    probe = next(iter(groups))
    if not fits_window(model, longest) or not body_then_head_matches(model, list(probe[:8])):
        return set()
    head = model.get_output_embeddings()
    items = [(context, list(answers)) for context, answers in groups.items()]
    # the tree saves body positions at the price of more, smaller forwards: measured on CPUs, where positions
    # are the cost (benchmarks/context_tree_speed.py); on an accelerator each context runs whole, as before
    scorer = score_context_tree if model_device(model).type == "cpu" else score_shared_contexts
    with retained_heap():
        scored = scorer(
            model,
            items,
            batch_size=batch_size,
            pad_token_id=pad_token_id,
            head_logprobs=lambda hidden, targets: linear_head_logprobs(
                hidden, head.weight, head.bias, targets, softcap_of(model)
            ),
            progress=progress,
        )
    done = set()
    for (context, answers), per_answer in zip(items, scored):
        for answer, (values, flags) in zip(answers, per_answer):
            index = groups[context][answer]
            results[index] = TokenLogprobs(values, flags)
            done.add(index)
    return done


def _model_input(context, continuation, max_length) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(input ids, target ids): the model reads all but the last token and predicts the continuation."""
    if not context:
        raise ValueError("Each request needs at least one context token (e.g. the BOS/EOS prefix token).")
    whole = [*context, *continuation]
    if max_length is not None:
        whole = whole[-(max_length + 1) :]
    targets = list(continuation)[-len(whole) + 1 :] if continuation else []
    return tuple(whole[:-1]), tuple(targets)


def batch_scorer(model: torch.nn.Module, inputs: list[list[int]], shared: PrefixHeads | None = None) -> BatchScorer:
    """The cheapest exact way to score this model: sliced Linear head (each shared prefix once when
    ``shared`` is given), head on rows, or full logits.

    Choosing runs the model once on a probe (the first 8 tokens of the first non-empty input) to
    check that its logits are the head applied to its body's output; if not, or if no input has a
    token, the scorer takes the model's own full logits.

    Args:
        model: the causal LM to score.
        inputs: the input ids of the sequences that will be scored (only the probe is read).
        shared: where results are kept by (prefix, next token) across batches, when each distinct prefix
            is to be headed once (``prefix_heads.PrefixHeads``); used by the sliced Linear head only.

    Returns:
        A ``BatchScorer``: called as ``scorer(input_ids, attention_mask, targets)`` on one right-padded
        batch (``(batch, length)`` tensors; ``targets[i]``: the token ids that row i's last real
        positions predict), it returns one ``TokenLogprobs`` per row. ``continuation_token_logprobs``
        calls it under ``torch.inference_mode()`` and ``valid_tokens_scope``.
    """
    probe = next((x for x in inputs if x), None)
    if probe is None or not body_then_head_matches(model, probe[:8]):
        return lambda ids, mask, targets: _score_full_logits(model, ids, mask, targets)
    head = model.get_output_embeddings()
    # exactly Linear with a plain weight: subclasses (bitsandbytes, ...) and tensor subclasses (torchao's
    # quantized weights, which cannot be sliced) compute differently
    if type(head) is torch.nn.Linear and type(head.weight.data) is torch.Tensor:
        return lambda ids, mask, targets: _score_linear_head(model, head, ids, mask, targets, shared)
    return lambda ids, mask, targets: _score_head_on_rows(model, head, ids, mask, targets)


def scored_positions(attention_mask: torch.Tensor, targets: list[list[int]]):
    """(rows, positions, target ids): the last len(target) real positions of each row predict its targets.

    Args:
        attention_mask: (batch, length) mask of a right-padded batch, 1 on real tokens.
        targets: for each row, the token ids its last real positions predict.

    Returns:
        Three 1-D int64 tensors on the mask's device, one entry per target token, row by row: the row,
        the position whose output predicts the token, and the token id.
    """
    rows, positions = [], []
    for row, (length, target) in enumerate(zip(attention_mask.sum(dim=1).tolist(), targets)):
        rows += [row] * len(target)
        positions += range(length - len(target), length)
    device = attention_mask.device
    flat = [token for target in targets for token in target]
    return (
        torch.as_tensor(rows, device=device),
        torch.as_tensor(positions, device=device),
        torch.as_tensor(flat, dtype=torch.long, device=device),
    )


def _score_linear_head(
    model, head: torch.nn.Linear, input_ids, attention_mask, targets, shared: PrefixHeads | None = None
) -> list[TokenLogprobs]:
    rows, positions, target_ids = scored_positions(attention_mask, targets)
    if shared is not None:
        values, flags = shared.score(model, head, input_ids, attention_mask, targets, rows, positions)
        return _per_row(values, flags, targets)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
    logprobs, greedy = linear_head_logprobs(
        hidden[rows, positions], head.weight, head.bias, target_ids, softcap_of(model)
    )
    return _per_row(logprobs.tolist(), greedy.tolist(), targets)


def _score_head_on_rows(model, head, input_ids, attention_mask, targets) -> list[TokenLogprobs]:
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
    lengths = attention_mask.sum(dim=1).tolist()
    out, start = [], 0
    while start < len(lengths):
        stop = start + max(1, HEAD_POSITIONS // max(lengths[start], 1))  # rows are longest first
        width = max(lengths[start:stop])
        with valid_tokens_scope(attention_mask[start:stop, :width]):
            logits = head_logits(model, head, hidden[start:stop, :width])
        rows, positions, target_ids = scored_positions(attention_mask[start:stop, :width], targets[start:stop])
        logprobs, greedy = logits_logprobs(logits[rows, positions], target_ids)
        out += _per_row(logprobs.tolist(), greedy.tolist(), targets[start:stop])
        start = stop
    return out


def _score_full_logits(model, input_ids, attention_mask, targets) -> list[TokenLogprobs]:
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    rows, positions, target_ids = scored_positions(attention_mask, targets)
    logprobs, greedy = logits_logprobs(logits[rows, positions], target_ids)
    return _per_row(logprobs.tolist(), greedy.tolist(), targets)


def _per_row(values: list[float], flags: list[bool], targets: list[list[int]]) -> list[TokenLogprobs]:
    out, start = [], 0
    for target in targets:
        stop = start + len(target)
        out.append(TokenLogprobs(tuple(values[start:stop]), tuple(flags[start:stop])))
        start = stop
    return out
