"""Pseudo-log-likelihood of minimal sentence pairs under a masked LM.

Nangia et al. (2020), CrowS-Pairs `metric.py`: the tokens both sentences share (difflib
over token ids) are masked one at a time, every other token visible, and the log-probs of
the original tokens are summed ("shared"). The bias-bench-style alternative masks the
tokens that differ and averages ("modified"). Special tokens are never masked.

All masked copies of all pairs are scored together in length-sorted batches, so a pair
costs a few rows of a batch rather than one forward pass per masked token.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, model_device, right_padded
from lm_eval_bias.scoring.valid_tokens import valid_tokens_scope

VARIANTS = ("shared", "modified")


def shared_token_positions(ids_a: Sequence[int], ids_b: Sequence[int]) -> tuple[list[int], list[int]]:
    """Positions of the tokens the two sequences have in common (difflib 'equal' blocks)."""
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
    """(score of first sentence, score of second sentence) for each pair."""
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
    if variant == "shared":
        totals = [sum(values) for values in per_slot]
    else:
        totals = [sum(values) / len(values) if values else 0.0 for values in per_slot]
    return [(totals[2 * i], totals[2 * i + 1]) for i in range(len(pairs))]


def _masked_token_logprobs(model, tokenizer, copies, batch_size: int, progress: bool) -> list[float]:
    device = model_device(model)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.mask_token_id
    logprobs = [0.0] * len(copies)
    batches = list(length_sorted_batches([len(ids) for _, ids, _ in copies], batch_size))
    for batch in tqdm(batches, desc="Scoring masked tokens", disable=not progress):
        masked_rows = []
        for index in batch:
            _, ids, position = copies[index]
            masked = list(ids)
            masked[position] = tokenizer.mask_token_id
            masked_rows.append(masked)
        input_ids, attention_mask = right_padded(masked_rows, pad_token_id, device)
        positions = torch.as_tensor([copies[i][2] for i in batch], device=device)
        originals = torch.as_tensor([copies[i][1][copies[i][2]] for i in batch], device=device)
        with torch.inference_mode(), valid_tokens_scope(attention_mask):
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            at_mask = logits[torch.arange(len(batch), device=device), positions].float()
            selected = torch.log_softmax(at_mask, dim=-1).gather(1, originals[:, None]).squeeze(1)
        for index, value in zip(batch, selected.tolist()):
            logprobs[index] = value
    return logprobs
