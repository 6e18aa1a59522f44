"""Plain, one-item-at-a-time reference scorers: the "second implementation" the tests compare against.

No batching, no padding, no attention mask, full-vocabulary log-softmax (in fp64, over the
model's own logits): slow and obviously correct, written from the method descriptions (causal
LM log-likelihood; Nangia et al. 2020 CrowS-Pairs pseudo-log-likelihood), not from the
package code.
"""

from __future__ import annotations

import difflib

import torch


@torch.no_grad()
def reference_causal_logprob(model, context_ids, continuation_ids) -> tuple[float, bool]:
    """(sum of log p(continuation token | everything before it), every token is the argmax)."""
    context_ids, continuation_ids = list(context_ids), list(continuation_ids)
    assert context_ids, "the context needs at least one token"
    if not continuation_ids:
        return 0.0, True
    device = next(model.parameters()).device
    input_ids = torch.tensor([context_ids + continuation_ids], device=device)
    logits = model(input_ids=input_ids).logits[0]
    log_probs = torch.log_softmax(logits.double(), dim=-1)  # fp64 normaliser over the model's own logits
    total = 0.0
    greedy = True
    for offset, token in enumerate(continuation_ids):
        predicting = len(context_ids) + offset - 1  # the position whose output predicts this token
        total += float(log_probs[predicting, token])
        greedy = greedy and int(log_probs[predicting].argmax()) == token
    return total, greedy


def _equal_positions(ids_a, ids_b) -> tuple[list[int], list[int]]:
    matcher = difflib.SequenceMatcher(None, [str(x) for x in ids_a], [str(x) for x in ids_b])
    shared_a, shared_b = [], []
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            shared_a += list(range(a1, a2))
            shared_b += list(range(b1, b2))
    return shared_a, shared_b


@torch.no_grad()
def _masked_logprob(model, ids, position, mask_token_id) -> float:
    """log p(ids[position]) with only that position replaced by the mask token."""
    device = next(model.parameters()).device
    masked = list(ids)
    masked[position] = mask_token_id
    logits = model(input_ids=torch.tensor([masked], device=device)).logits[0, position]
    return float(torch.log_softmax(logits.double(), dim=-1)[ids[position]])


def reference_pll(model, tokenizer, sent_a: str, sent_b: str, variant: str = "shared") -> tuple[float, float]:
    """CrowS-Pairs masked-LM score of both sentences.

    "shared": sum over the shared (difflib 'equal'), non-special positions of log p(token | rest).
    "modified": mean over the non-shared, non-special positions (0.0 when there is none).
    """
    if variant not in ("shared", "modified"):
        raise ValueError(variant)
    ids_a = tokenizer(sent_a, add_special_tokens=True)["input_ids"]
    ids_b = tokenizer(sent_b, add_special_tokens=True)["input_ids"]
    shared_a, shared_b = _equal_positions(ids_a, ids_b)
    special = set(tokenizer.all_special_ids)
    scores = []
    for ids, shared in ((ids_a, shared_a), (ids_b, shared_b)):
        if variant == "shared":
            positions = [p for p in shared if ids[p] not in special]
        else:
            positions = [p for p in range(len(ids)) if p not in shared and ids[p] not in special]
        values = [_masked_logprob(model, ids, p, tokenizer.mask_token_id) for p in positions]
        if variant == "shared":
            scores.append(sum(values))
        else:
            scores.append(sum(values) / len(values) if values else 0.0)
    return scores[0], scores[1]
