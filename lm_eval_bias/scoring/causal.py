"""Log-probabilities of continuations under a causal LM, batched and batch-invariant.

Only what scoring needs is materialised: the transformer body runs on the padded batch,
then the LM head runs on a few length-sorted sequences at a time, and each position keeps a
logsumexp, a maximum and one target logit instead of a full-vocabulary log-softmax for the
whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, model_device, right_padded
from lm_eval_bias.valid_tokens import valid_tokens_scope


@dataclass(frozen=True)
class TokenScore:
    logprob: float
    is_greedy: bool
    num_tokens: int


RowLogits = Callable[[torch.Tensor, torch.Tensor], Iterator[torch.Tensor]]


def score_continuations(
    model: torch.nn.Module,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    batch_size: int,
    pad_token_id: int,
    max_length: int | None = None,
    progress: bool = False,
) -> list[TokenScore]:
    """Sum of log p(continuation | context) for each (context_ids, continuation_ids)."""
    inputs, targets = [], []
    for context, continuation in requests:
        if not context:
            raise ValueError("Each request needs at least one context token (e.g. the BOS/EOS prefix token).")
        whole = [*context, *continuation]
        if max_length is not None:
            whole = whole[-(max_length + 1) :]
        inputs.append(whole[:-1])
        targets.append(list(continuation)[-len(whole) + 1 :] if continuation else [])

    row_logits = _row_logits_function(model, inputs)
    device = model_device(model)
    scores: list[TokenScore | None] = [None] * len(requests)
    batches = list(length_sorted_batches([len(x) for x in inputs], batch_size))
    for batch in tqdm(batches, desc="Scoring continuations", disable=not progress):
        input_ids, attention_mask = right_padded([inputs[i] for i in batch], pad_token_id, device)
        with torch.inference_mode(), valid_tokens_scope(attention_mask):
            # one sequence's logits alive at a time: they are vocabulary-sized
            for index, logits in zip(batch, row_logits(input_ids, attention_mask)):
                scores[index] = _continuation_score(logits, targets[index])
    return scores  # type: ignore[return-value]


def _continuation_score(logits: torch.Tensor, target: list[int]) -> TokenScore:
    if not target:
        return TokenScore(0.0, True, 0)
    predicting = logits[-len(target) :].float()
    target_ids = torch.as_tensor(target, device=predicting.device)
    target_logits = predicting.gather(1, target_ids[:, None]).squeeze(1)
    best = predicting.amax(dim=-1)
    exponentials = predicting - best[:, None]
    exponentials.exp_()
    log_normaliser = best.double() + exponentials.sum(dim=-1).double().log()
    return TokenScore(
        logprob=float((target_logits.double() - log_normaliser).sum()),
        is_greedy=bool((target_logits >= best).all()),
        num_tokens=len(target),
    )


def _row_logits_function(model: torch.nn.Module, inputs: list[list[int]]) -> RowLogits:
    """Body-then-head per row when it reproduces the model's own logits, else full logits."""
    probe = next((x for x in inputs if x), None)
    if probe is not None and _body_then_head_matches(model, probe[:8]):
        return lambda ids, mask: _body_then_head(model, ids, mask)
    return lambda ids, mask: _full_logits(model, ids, mask)


def _full_logits(model, input_ids, attention_mask) -> Iterator[torch.Tensor]:
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    for row, n in enumerate(attention_mask.sum(dim=1)):
        yield logits[row, : int(n)]


HEAD_POSITIONS = 128  # positions per LM-head call: bounds the vocabulary-sized logits in memory


def _body_then_head(model, input_ids, attention_mask) -> Iterator[torch.Tensor]:
    """Each row's logits, the LM head applied to a few rows at a time (rows are length-sorted)."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    lengths = [int(n) for n in attention_mask.sum(dim=1)]
    start = 0
    while start < len(lengths):
        width = lengths[start]
        stop = start + max(1, HEAD_POSITIONS // max(width, 1))
        with valid_tokens_scope(attention_mask[start:stop, :width]):
            logits = head(hidden[start:stop, :width])
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        for offset, n in enumerate(lengths[start:stop]):
            yield logits[offset, :n]
        del logits
        start = stop


def _body_then_head_matches(model, probe: list[int]) -> bool:
    if getattr(model, "base_model", model) is model or model.get_output_embeddings() is None:
        return False
    input_ids = torch.as_tensor([probe], device=model_device(model))
    attention_mask = torch.ones_like(input_ids)
    try:
        with torch.inference_mode(), valid_tokens_scope(attention_mask):
            split = next(_body_then_head(model, input_ids, attention_mask)).float()
            full = next(_full_logits(model, input_ids, attention_mask)).float()
    except Exception:  # an architecture whose body or head cannot be called on its own
        return False
    return split.shape == full.shape and torch.allclose(split, full, rtol=1e-4, atol=1e-4)
