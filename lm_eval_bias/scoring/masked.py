"""Pseudo-log-likelihood of minimal sentence pairs under a masked LM.

Nangia et al. (2020), CrowS-Pairs `metric.py`: the tokens both sentences share (difflib
over token ids) are masked one at a time, every other token visible, and the log-probs of
the original tokens are summed ("shared"). The bias-bench-style alternative masks the
tokens that differ and averages ("modified"). Special tokens are never masked.

All masked copies of all pairs are scored together in length-sorted batches, so a pair
costs a few rows of a batch rather than one forward pass per masked token, and the MLM
head (the largest matrix product for a big vocabulary) runs only at the masked positions.
On a CPU the fp32 linear layers run on weights packed once for oneDNN (`packed_linears`).
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Sequence

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded
from lm_eval_bias.scoring.heap import retained_heap
from lm_eval_bias.scoring.packed_linears import packed_linears
from lm_eval_bias.valid_tokens import valid_tokens_scope

VARIANTS = ("shared", "modified")


def shared_token_positions(ids_a: Sequence[int], ids_b: Sequence[int]) -> tuple[list[int], list[int]]:
    """Positions of the tokens the two sequences have in common (difflib 'equal' blocks).

    Args:
        ids_a: the first sentence's token ids.
        ids_b: the second sentence's token ids.

    Returns:
        ``(positions in ids_a, positions in ids_b)``: two lists of the same length, the i-th entries
        holding the same token, in increasing order.
    """
    matcher = difflib.SequenceMatcher(None, [str(x) for x in ids_a], [str(x) for x in ids_b])
    positions_a: list[int] = []
    positions_b: list[int] = []
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if operation == "equal":
            positions_a.extend(range(a_start, a_end))
            positions_b.extend(range(b_start, b_end))
    return positions_a, positions_b


def score_minimal_pairs(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int,
    variant: str = "shared",
    progress: bool = False,
) -> list[tuple[float, float]]:
    """(score of first sentence, score of second sentence) for each pair.

    Args:
        model: a masked LM (a transformers ``...ForMaskedLM``).
        tokenizer: its Hugging Face tokenizer, which must have a mask token.
        pairs: ``(sentence, sentence)`` text pairs.
        batch_size: masked copies per forward pass (on a CPU the least number: a batch also holds at
            least ``batching.CPU_MIN_TOKENS`` tokens).
        variant: ``"shared"`` (Nangia et al.: mask the tokens the two share, sum) or ``"modified"``
            (mask the tokens that differ, mean).
        progress: show a tqdm progress bar over the batches.

    Returns:
        One ``(score of the first sentence, score of the second)`` per pair, in order (``pll_score``).

    Raises:
        ValueError: an unknown ``variant``, or a tokenizer without a mask token.
    """
    scored = score_minimal_pair_tokens(
        model, tokenizer, pairs, batch_size=batch_size, variant=variant, progress=progress
    )
    return [(pll_score(a, variant), pll_score(b, variant)) for a, b in scored]


def pll_score(token_logprobs: Sequence[float], variant: str) -> float:
    """A sentence's score from its scored tokens' log-probs: their sum ("shared"), their mean ("modified").

    Args:
        token_logprobs: the log-probabilities of the sentence's scored (masked) tokens.
        variant: ``"shared"`` sums; any other value takes the mean.

    Returns:
        The sum, or the mean (0.0 when no token was scored).
    """
    if variant == "shared":
        return sum(token_logprobs)
    return sum(token_logprobs) / len(token_logprobs) if token_logprobs else 0.0


def score_minimal_pair_tokens(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int,
    variant: str = "shared",
    progress: bool = False,
) -> list[tuple[list[float], list[float]]]:
    """For each pair, the log-probs of the tokens scored in its first and in its second sentence
    (what `pll_score` reduces to a sentence score, and pseudo-perplexity counts).

    Special tokens are never scored.

    Args:
        model: a masked LM (a transformers ``...ForMaskedLM``).
        tokenizer: its Hugging Face tokenizer, which must have a mask token.
        pairs: ``(sentence, sentence)`` text pairs.
        batch_size: masked copies per forward pass (on a CPU the least number; see ``score_minimal_pairs``).
        variant: ``"shared"`` scores the tokens the two sentences share, ``"modified"`` those that differ.
        progress: show a tqdm progress bar over the batches.

    Returns:
        One ``(log-probs of the first sentence's scored tokens, of the second's)`` per pair, each in
        token order; a list is empty when the sentence has no token to score.

    Raises:
        ValueError: an unknown ``variant``, or a tokenizer without a mask token.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown masked-LM score variant {variant!r}; expected one of {VARIANTS}.")
    if tokenizer.mask_token_id is None:
        raise ValueError("This tokenizer has no mask token, so pseudo-log-likelihood cannot be computed.")
    special_ids = set(tokenizer.all_special_ids)
    copies: list[tuple[int, list[int], int]] = []  # (sentence slot, token ids, masked position)
    for pair_index, (sentence_a, sentence_b) in enumerate(pairs):
        ids_a, ids_b = tokenizer(sentence_a)["input_ids"], tokenizer(sentence_b)["input_ids"]
        shared_a, shared_b = shared_token_positions(ids_a, ids_b)
        for slot, ids, shared in ((2 * pair_index, ids_a, shared_a), (2 * pair_index + 1, ids_b, shared_b)):
            chosen = shared if variant == "shared" else sorted(set(range(len(ids))) - set(shared))
            copies.extend((slot, ids, position) for position in chosen if ids[position] not in special_ids)

    logprobs = _masked_token_logprobs(model, tokenizer, copies, batch_size, progress)
    per_slot: list[list[float]] = [[] for _ in range(2 * len(pairs))]
    for (slot, _, _), logprob in zip(copies, logprobs):
        per_slot[slot].append(logprob)
    return [(per_slot[2 * i], per_slot[2 * i + 1]) for i in range(len(pairs))]


# attribute names under which transformers' masked LMs keep their MLM head
_MLM_HEADS = ("cls", "lm_head", "predictions", "generator_lm_head")
_verified_heads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def logits_at(model, positions: torch.Tensor, **inputs) -> torch.Tensor:
    """Logits at one position per row: body on the batch (`inputs`: input_ids, attention_mask and any
    token_type_ids), MLM head at those positions only.

    A model whose MLM head cannot be split from its body (checked once per model on a probe) is run
    whole and its logits read at those positions.

    Args:
        model: a masked LM.
        positions: (batch,) int64 tensor, the position read in each row.
        **inputs: the model's keyword inputs, (batch, length) tensors: ``input_ids``,
            ``attention_mask`` and, where the model takes them, ``token_type_ids``.

    Returns:
        (batch, vocabulary) logits, unnormalised, as the head (or the whole model) returns them.
    """
    head = _mlm_head(model)
    if head is None:
        logits = model(**inputs).logits
    else:
        hidden = model.base_model(**inputs)[0]
        # one valid position per row: per-sequence layers (dynamic int8) then scale each row on its own,
        # as they would at batch size 1, instead of one scale over the batch's masked positions
        with valid_tokens_scope(torch.ones(len(positions), 1, dtype=torch.bool, device=hidden.device)):
            logits = head(hidden[torch.arange(len(positions), device=hidden.device), positions][:, None])
    return logits[torch.arange(len(positions), device=logits.device), 0 if head is not None else positions]


def _mlm_head(model):
    """The model's MLM head module, if calling it on the body's output reproduces the model's logits."""
    if model in _verified_heads:
        return _verified_heads[model]
    head = next(
        (getattr(model, name) for name in _MLM_HEADS if isinstance(getattr(model, name, None), torch.nn.Module)), None
    )
    if head is not None and getattr(model, "base_model", model) is not model:
        probe = torch.arange(1, 6, device=model_device(model))[None] % model.config.vocab_size
        mask = torch.ones_like(probe)
        try:
            with torch.inference_mode(), valid_tokens_scope(mask):
                split = head(model.base_model(input_ids=probe, attention_mask=mask)[0])
                full = model(input_ids=probe, attention_mask=mask).logits
            head = head if torch.allclose(split.float(), full.float(), rtol=1e-4, atol=1e-4) else None
        except Exception:  # a head that needs more than the hidden states
            head = None
    else:
        head = None
    _verified_heads[model] = head
    return head


def _masked_token_logprobs(model, tokenizer, copies, batch_size: int, progress: bool) -> list[float]:
    device = model_device(model)
    logprobs = [0.0] * len(copies)
    batches = list(length_sorted_batches([len(ids) for _, ids, _ in copies], batch_size, min_tokens_per_batch(device)))
    with retained_heap(), packed_linears(model):
        for batch in tqdm(batches, desc="Scoring masked tokens", disable=not progress):
            for index, value in zip(batch, _batch_logprobs(model, tokenizer, [copies[i] for i in batch], device)):
                logprobs[index] = value
    return logprobs


def _batch_logprobs(model, tokenizer, copies, device) -> list[float]:
    """log p(original token | the copy with it masked), for one batch of copies."""
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.mask_token_id
    masked_rows = [
        [tokenizer.mask_token_id if i == position else token for i, token in enumerate(ids)]
        for _, ids, position in copies
    ]
    input_ids, attention_mask = right_padded(masked_rows, pad_token_id, device)
    positions = torch.as_tensor([position for _, _, position in copies], device=device)
    originals = torch.as_tensor([ids[position] for _, ids, position in copies], device=device)
    with torch.inference_mode(), valid_tokens_scope(attention_mask):
        at_mask = logits_at(model, positions, input_ids=input_ids, attention_mask=attention_mask).float()
        return torch.log_softmax(at_mask, dim=-1).gather(1, originals[:, None]).squeeze(1).tolist()
