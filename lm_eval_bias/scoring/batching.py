"""Length-sorted batches of token sequences, right-padded, with their attention masks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def length_sorted_batches(lengths: Sequence[int], batch_size: int, min_tokens: int = 0) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (a stable order): batch_size
    sequences per batch, or more where that many are fewer than min_tokens padded tokens."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    start = 0
    while start < len(order):
        size = max(batch_size, min_tokens // max(lengths[order[start]], 1))
        yield order[start : start + size]
        start += size


# Tokens per forward pass below which a CPU's matrix products lose throughput. Measured on the 2-core
# host, A/B interleaved: a BERT-base-shaped model on the masked copies of 60 CrowS-Pairs pairs, 32
# copies per forward (~600 tokens) 189 s, >= 2,048 tokens per forward 141-152 s; Gemma-3-270M on 300
# CrowS-Pairs sentences, 32 per forward 35.5-35.9 s, >= 2,048 tokens 30.6-33.6 s.
CPU_MIN_TOKENS = 2048


def min_tokens_per_batch(device) -> int:
    """The token floor of a batch on this device: CPU_MIN_TOKENS on a CPU, none on accelerators
    (where batch_size is what bounds memory)."""
    return CPU_MIN_TOKENS if torch.device(device).type == "cpu" else 0


def right_padded(sequences: Sequence[Sequence[int]], pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every sequence starting at position 0."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids.to(device), attention_mask.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
