"""Log-probabilities of target tokens from an LM head, one vocabulary slice at a time.

- A plain ``nn.Linear`` head is applied one vocabulary slice at a time, to all the batch's
  scored positions at once: a slice's logits (~2 MB) stay in the CPU cache while its maximum,
  exp-sum and target logits are read, instead of writing 1 MB of logits per position to
  memory and reading it back for a log-softmax. On a CPU this makes the head and its
  normalisation cheaper than the head's plain product alone, where a fused logsumexp /
  log_softmax / cross_entropy after that product costs more than the product; and each slice
  takes all the positions at once, as heading them a few at a time re-reads the whole weight
  (671 MB for Gemma-3-270M) per call (timings: docs/benchmarks.md, CrowS-Pairs scoring speed).
- Per slice: maximum, in-place subtract and exp, and an fp64-accumulated sum; slices combine
  in fp64 as m + log sum_i s_i exp(m_i - m). Largest error against an fp64 log-softmax of the
  same logits: 1.5e-8 per token (5e-7 with fp32 sums).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from lm_eval_bias.scoring.batching import model_device
from lm_eval_bias.valid_tokens import valid_tokens_scope

SLICE_ELEMENTS = 1 << 19  # logits per vocabulary slice on a CPU (2 MB of fp32: cache-resident)


def linear_head_logprobs(hidden, weight, bias, target_ids, softcap: float | None = None, rows=None):
    """(fp64 log p(target), target is the argmax) per row of ``hidden`` (positions, hidden size) under
    the head ``tanh((hidden @ weight.T + bias) / softcap) * softcap``, one vocabulary slice at a time.

    Args:
        hidden: (positions, hidden size) final hidden states at the scored positions.
        weight: (vocabulary, hidden size) weight of the ``nn.Linear`` head.
        bias: (vocabulary,) bias of the head, or None.
        target_ids: (targets,) int64 token ids to score, on ``hidden``'s device (one per row unless
            ``rows`` is given).
        softcap: the final logit soft-cap (Gemma-2's ``final_logit_softcapping``); None or 0 for none.
        rows: several targets per position: the (targets,) int64 row of ``hidden`` that each target of
            ``target_ids`` is scored at (see ``normalised``); None for one target per row.

    Returns:
        ``(logprobs, greedy)``: a (targets,) float64 tensor of log p(target) and a (targets,) bool
        tensor, True where the target's logit is the largest (ties included).

    Raises:
        ValueError: a target id is outside the vocabulary (see ``normalised``).
    """
    step = _slice_rows(len(hidden), hidden.device)

    def slices():
        for start in range(0, weight.shape[0], step):
            logits = F.linear(
                hidden, weight[start : start + step], None if bias is None else bias[start : start + step]
            )
            yield start, torch.tanh(logits / softcap) * softcap if softcap else logits

    return normalised(slices(), target_ids, step, weight.shape[0], rows=rows, positions=len(hidden))


def logits_logprobs(logits: torch.Tensor, target_ids: torch.Tensor):
    """(fp64 log p(target), target is the argmax) per row of (positions, vocabulary) logits.

    Args:
        logits: (positions, vocabulary) logits of any float dtype. Overwritten when float32 (the
            normaliser works in place on its slices), so pass a copy to keep it.
        target_ids: (positions,) int64 token ids to score, on the logits' device.

    Returns:
        ``(logprobs, greedy)``: a (positions,) float64 tensor of log p(target) and a (positions,) bool
        tensor, True where the target's logit is the largest (ties included).

    Raises:
        ValueError: a target id is outside the vocabulary (see ``normalised``).
    """
    step = _slice_rows(len(logits), logits.device)
    slices = ((s, logits[:, s : s + step]) for s in range(0, logits.shape[1], step))
    return normalised(slices, target_ids, step, logits.shape[1])


def normalised(
    slices: Iterable[tuple[int, torch.Tensor]],
    target_ids: torch.Tensor,
    step: int,
    vocabulary: int,
    *,
    rows: torch.Tensor | None = None,
    positions: int | None = None,
):
    """Log-probabilities of the targets from the logits given slice by slice (start, (positions, width)).

    Each slice's maxima and sums go into tensors allocated before the first slice: kept as small
    blocks allocated after each slice's logits, they pinned the freed logits in glibc's heap
    (scoring/heap.py), which grew some Gemma-3-270M runs by a block per slice within one batch
    (docs/benchmarks.md, peak memory).

    Args:
        slices: ``(start, logits)`` pairs, in vocabulary order: the i-th slice holds columns
            ``i * step`` onwards, ``(positions, width)`` with width ``step`` (the last may be narrower),
            of any float dtype. float32 slices are overwritten (exponentiated in place).
        target_ids: (targets,) int64 token ids to score (one per row unless ``rows`` is given).
        step: the vocabulary columns per slice.
        vocabulary: the number of vocabulary columns in all.
        rows: when given, (targets,) int64: the slice row each target is scored at, so that a row's
            normaliser serves several targets (a prefix that several requests continue differently);
            None: target i at row i.
        positions: the slices' number of rows, with ``rows`` (default: one past its largest entry).

    Returns:
        ``(logprobs, greedy)``: a (targets,) float64 tensor of log p(target), each slice's maximum and
        fp64 exp-sum combined in fp64, and a (targets,) bool tensor, True where the target's logit is
        the largest (ties included).

    Raises:
        ValueError: a target id is negative or past the last slice (raised after all slices are read).
    """
    by_slice: dict[int, list[int]] = {}
    for target, token in enumerate(target_ids.tolist()):
        by_slice.setdefault(token // step, []).append(target)
    count, device = -(-vocabulary // step), target_ids.device
    if rows is not None and positions is None:
        positions = int(rows.max()) + 1 if len(rows) else 0
    target_logits = torch.empty(len(target_ids), device=device)
    maxima = torch.empty(count, len(target_ids) if rows is None else positions, device=device)
    sums = torch.empty(count, maxima.shape[1], dtype=torch.float64, device=device)
    for index, (start, logits) in enumerate(slices):
        logits = logits.float()  # fp32 copies of half-precision logits; fp32 logits are used in place
        targets = by_slice.get(index)
        if targets:
            targets_t = torch.as_tensor(targets, device=logits.device)
            at = targets_t if rows is None else rows[targets_t]
            target_logits[targets_t] = logits[at, target_ids[targets_t] - start]
        best = torch.amax(logits, dim=1, out=maxima[index])
        torch.sum(logits.sub_(best[:, None]).exp_(), dim=1, dtype=torch.float64, out=sums[index])
    if sum(len(targets) for slice_index, targets in by_slice.items() if slice_index < count) != len(target_ids):
        raise ValueError(f"A target token id is outside the vocabulary (0 to {count * step - 1} at most).")
    best = maxima.amax(dim=0)
    log_normaliser = best.double() + (sums * (maxima - best).double().exp()).sum(dim=0).log()
    if rows is not None:
        best, log_normaliser = best[rows], log_normaliser[rows]
    return target_logits.double() - log_normaliser, target_logits >= best


def _slice_rows(positions: int, device: torch.device) -> int:
    if device.type != "cpu":  # accelerators: few large kernels beat cache residency
        return 1 << 30
    return max(256, SLICE_ELEMENTS // max(positions, 1))


def softcap_of(model) -> float | None:
    """The model's final-logit softcap (Gemma-2), or None.

    Args:
        model: a causal LM.

    Returns:
        ``config.final_logit_softcapping`` when set and non-zero, else None.
    """
    return getattr(model.config, "final_logit_softcapping", None) or None


def head_logits(model, head, hidden: torch.Tensor) -> torch.Tensor:
    """The head's logits as the model computes them (softcapped where it softcaps).

    Args:
        model: the causal LM the head belongs to.
        head: its output embeddings (any module).
        hidden: body outputs, (..., hidden size).

    Returns:
        The logits, (..., vocabulary).
    """
    logits = head(hidden)
    softcap = softcap_of(model)
    return torch.tanh(logits / softcap) * softcap if softcap else logits


def body_then_head_matches(model, probe: list[int]) -> bool:
    """Whether head(body(ids)) (softcapped as Gemma-2 does) reproduces the model's own logits.

    Args:
        model: a causal LM.
        probe: a few token ids to run.

    Returns:
        True when the body and the head can be called apart and give the model's logits.
    """
    if getattr(model, "base_model", model) is model or model.get_output_embeddings() is None:
        return False
    input_ids = torch.as_tensor([probe], device=model_device(model))
    attention_mask = torch.ones_like(input_ids)
    try:
        with torch.inference_mode(), valid_tokens_scope(attention_mask):
            hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
            split = head_logits(model, model.get_output_embeddings(), hidden).float()
            full = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
    except Exception:  # an architecture whose body or head cannot be called on its own
        return False
    return split.shape == full.shape and torch.allclose(split, full, rtol=1e-4, atol=1e-4)
