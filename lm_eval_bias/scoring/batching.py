"""Length-sorted batches of token sequences, right-padded, with their attention masks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

# On a CPU a batch may hold up to this many times the padded tokens its floor asks for, so that it
# can take in the rest of a length rather than leave those rows to be padded in the next batch.
# On the masked copies of 60 CrowS-Pairs pairs (BERT tokenizer) the split pads 2.4% of the real
# tokens (1.8% at 1.5; 3.6% with each batch cut at its floor, as before), on the whole file 0.02%
# (0.21% before). 1.25 keeps a batch's activations, and so peak memory, close to the floor's.
CPU_BATCH_SLACK = 1.25


def length_sorted_batches(lengths: Sequence[int], batch_size: int, min_tokens: int = 0) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (a stable order).

    Without a token floor, batch_size sequences per batch. With one, a batch whose longest
    sequence has L tokens holds at least max(batch_size, min_tokens // L) sequences and at most
    CPU_BATCH_SLACK times the padded tokens of max(min_tokens, batch_size * L); only the last batch
    may hold fewer. Within those bounds the split pads the fewest tokens in all, then makes the
    fewest batches (dynamic programming over the sorted order).

    Args:
        lengths: the token count of each sequence (a length below 1 counts as 1 for the floor).
        batch_size: the number of sequences per batch, or with ``min_tokens`` the least number.
        min_tokens: the token floor of a batch (padded tokens, rows × longest length); 0 or less for
            none (see ``min_tokens_per_batch``).

    Yields:
        Lists of indices into ``lengths``, each batch's longest sequence first; every index exactly
        once, ties in length in index order.

    Raises:
        ValueError: ``batch_size`` is below 1 (raised when iteration starts: this is a generator).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if min_tokens <= 0:
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        return
    stops = _fewest_padded_tokens([max(lengths[i], 1) for i in order], batch_size, min_tokens)
    start = 0
    while start < len(order):
        yield order[start : stops[start]]
        start = stops[start]


def _fewest_padded_tokens(sorted_lengths: list[int], batch_size: int, min_tokens: int) -> list[int]:
    """For each position of the lengths sorted longest first, where a batch starting there stops in
    the best split of the positions from it onwards (see length_sorted_batches)."""
    n = len(sorted_lengths)
    # cost of batching positions start.. onwards: padded tokens * (n + 1) + batches, so that ties in
    # padding go to fewer batches; end[start] is where the first of those batches stops
    cost, end = [0] * (n + 1), [n] * (n + 1)
    for start in range(n - 1, -1, -1):
        width = sorted_lengths[start]
        fewest = max(batch_size, min_tokens // width)
        most = max(fewest, int(CPU_BATCH_SLACK * max(min_tokens, batch_size * width)) // width)
        stops = range(start + fewest, min(n, start + most) + 1) if start + fewest <= n else (n,)
        cost[start], end[start] = min(((stop - start) * width * (n + 1) + 1 + cost[stop], stop) for stop in stops)
    return end


def cheapest_batches(lengths: Sequence[int], most_rows: int, forward_cost: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, at the least cost: padded tokens plus
    ``forward_cost`` a batch (for short pieces run on a cache, where a batch's token floor would pad more
    than a forward costs).

    Args:
        lengths: the token count of each sequence (below 1 counts as 1).
        most_rows: the most sequences a batch holds (at least 1).
        forward_cost: what one more batch costs, in padded tokens.

    Returns:
        Lists of indices into ``lengths``, each batch's longest sequence first; every index exactly once;
        of the cheapest splits, one with the fewest batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    widths = [max(lengths[i], 1) for i in order]
    n = len(order)
    cost, end = [0] * (n + 1), [n] * (n + 1)
    for start in range(n - 1, -1, -1):
        cost[start], end[start] = min(  # ties in cost go to fewer batches
            (((stop - start) * widths[start] + forward_cost) * (n + 1) + 1 + cost[stop], stop)
            for stop in range(start + 1, min(n, start + max(1, most_rows)) + 1)
        )
    batches, start = [], 0
    while start < n:
        batches.append(order[start : end[start]])
        start = end[start]
    return batches


# Tokens per forward pass below which a CPU's matrix products lose throughput: 32 short sentences per
# forward (a few hundred tokens) ran both a BERT-base-shaped masked LM and Gemma-3-270M measurably slower
# than batches of at least this many tokens (A/B timings: docs/benchmarks.md, CrowS-Pairs scoring speed).
CPU_MIN_TOKENS = 2048


def min_tokens_per_batch(device) -> int:
    """The token floor of a batch on this device: CPU_MIN_TOKENS on a CPU, none on accelerators
    (where batch_size is what bounds memory).

    Args:
        device: a ``torch.device`` or anything it accepts (``"cpu"``, ``"cuda:0"``, ...).

    Returns:
        The ``min_tokens`` to pass to ``length_sorted_batches``: CPU_MIN_TOKENS or 0.
    """
    return CPU_MIN_TOKENS if torch.device(device).type == "cpu" else 0


def right_padded(sequences: Sequence[Sequence[int]], pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every sequence starting at position 0.

    Args:
        sequences: the token ids of each row (at least one row).
        pad_token_id: the id written after each sequence's end.
        device: where the two tensors are put.

    Returns:
        ``(input_ids, attention_mask)``, both int64 of shape (len(sequences), longest length) on
        ``device``; the mask is 1 on each sequence's own tokens and 0 on the padding.
    """
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = 1
    return input_ids.to(device), attention_mask.to(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter.

    Args:
        model: any ``torch.nn.Module``.

    Returns:
        That parameter's device; the CPU for a model without parameters.
    """
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
