"""The CPU token floor of a batch (scoring/batching.py): grouping by hand, and scores under it
against the one-at-a-time references (the other scoring tests run without it, see conftest)."""

from __future__ import annotations

import itertools
import random

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob, reference_pll
from lm_eval_bias.scoring import batching, causal, masked


@pytest.mark.parametrize(
    ("batch_size", "min_tokens", "expected"),
    [
        # longest first; a batch led by length L holds max(batch_size, min_tokens // L) rows at least and
        # 1.25 * max(min_tokens, batch_size * L) padded tokens at most:
        # 5 -> exactly 2 rows (10 tokens, cap 12); 3 -> exactly 2 rows (6, cap 7); 2 -> 3 rows, the rest
        (2, 6, [[0, 1], [2, 3], [4, 5, 6]]),
        (2, 0, [[0, 1], [2, 3], [4, 5], [6]]),  # no floor: batch_size rows
        # 5 -> 2 or 3 rows (cap 15 tokens): [5, 3] + [3, 2, 2, 2] (at least 12 // 3 = 4 rows) + [1] (the
        # rest) pads 10 + 12 + 1 = 23 tokens in 3 batches; [5, 3, 3] + [2, 2, 2, 1] (fewer than
        # 12 // 2 = 6 left: the rest) pads 15 + 8 = 23 in 2
        (1, 12, [[0, 1, 2], [3, 4, 5, 6]]),
        (3, 0, [[0, 1, 2], [3, 4, 5], [6]]),  # no floor: batch_size rows, however much they pad
    ],
)
def test_batches_hold_at_least_min_tokens_padded_tokens(batch_size, min_tokens, expected):
    lengths = [5, 3, 3, 2, 2, 2, 1]
    assert list(batching.length_sorted_batches(lengths, batch_size, min_tokens)) == expected


def _splits(n):
    """Every split of n sorted positions into consecutive batches: (batch starts, batch sizes)."""
    for cuts in itertools.product((False, True), repeat=max(n - 1, 0)):
        starts = [0] + [i + 1 for i, cut in enumerate(cuts) if cut]
        yield starts, [end - start for start, end in zip(starts, starts[1:] + [n])]


def _fewest_padded_by_enumeration(lengths, batch_size, min_tokens):
    """(padded tokens, batches) of the best split, trying every split of the sorted order."""
    widths = sorted(lengths, reverse=True)
    n, best = len(widths), None
    for starts, sizes in _splits(n):
        fits = all(
            (max(batch_size, min_tokens // widths[start]) <= size or start + size == n)
            and size * widths[start]
            <= max(
                max(batch_size, min_tokens // widths[start]) * widths[start],
                1.25 * max(min_tokens, batch_size * widths[start]),
            )
            for start, size in zip(starts, sizes)
        )
        if fits:
            found = (sum(size * widths[start] for start, size in zip(starts, sizes)), len(sizes))
            best = found if best is None else min(best, found)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_split_pads_the_fewest_tokens_within_the_bounds(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 9) for _ in range(rng.randint(1, 11))]
    batch_size, min_tokens = rng.randint(1, 3), rng.choice([4, 8, 12, 20])
    batches = list(batching.length_sorted_batches(lengths, batch_size, min_tokens))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    assert (padded, len(batches)) == _fewest_padded_by_enumeration(lengths, batch_size, min_tokens)


def _cheapest_by_enumeration(lengths, most_rows, forward_cost):
    """The least padded tokens + forward_cost per batch over every split of the sorted order within the size limit."""
    widths, best = sorted(lengths, reverse=True), None
    for starts, sizes in _splits(len(widths)):
        if all(size <= most_rows for size in sizes):
            found = (sum(size * widths[s] + forward_cost for s, size in zip(starts, sizes)), len(sizes))
            best = found if best is None else min(best, found)
    return best


def test_cheapest_batches_by_hand():
    # [5, 3, 3, 2, 2, 2, 1] at 4 tokens a forward, up to 3 rows: [5] [3 3] [2 2 2 1]? that holds 4 rows;
    # [5] [3 3 2] [2 2 1] costs 5 + 9 + 6 + 12 = 32; [5] [3 3] [2 2 2] [1] 5 + 6 + 6 + 1 + 16 = 34
    assert batching.cheapest_batches([5, 3, 3, 2, 2, 2, 1], 3, 4) == [[0], [1, 2, 3], [4, 5, 6]]
    # at no cost a forward, no padding, in the fewest batches
    assert batching.cheapest_batches([5, 3, 3, 2, 2, 2, 1], 3, 0) == [[0], [1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("seed", range(30))
def test_cheapest_batches_cost_the_least(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 9) for _ in range(rng.randint(1, 11))]
    most_rows, cost = rng.randint(1, 5), rng.choice([0, 3, 10])
    batches = batching.cheapest_batches(lengths, most_rows, cost)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    total = sum(len(batch) * max(lengths[i] for i in batch) + cost for batch in batches)
    assert (total, len(batches)) == _cheapest_by_enumeration(lengths, most_rows, cost)


def test_the_floor_is_for_cpus_only(monkeypatch):
    monkeypatch.setattr(batching, "CPU_MIN_TOKENS", 64)
    assert batching.min_tokens_per_batch("cpu") == 64
    assert batching.min_tokens_per_batch("meta") == 0  # an accelerator: batch_size alone bounds memory


SENTENCES = [
    "The poor man was lazy.",
    "The rich man was lazy.",
    "Women are bad at driving cars.",
    "The man in the wheelchair was very sad, and nobody came to help him.",
    "He",
]


def test_causal_scores_under_the_floor_match_the_reference(tiny_gpt_neox_dir, monkeypatch):
    monkeypatch.setattr(batching, "CPU_MIN_TOKENS", 2048)  # every request in one forward
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    requests = [([tokenizer.eos_token_id], tokenizer.encode(s, add_special_tokens=False)) for s in SENTENCES]
    forwards = []
    body = model.base_model
    monkeypatch.setattr(body, "forward", lambda *a, _f=body.forward, **k: forwards.append(1) or _f(*a, **k))
    scores = causal.score_continuations(model, requests, batch_size=1, pad_token_id=tokenizer.pad_token_id)
    assert len(forwards) == 2 + 1  # the head check's probe (body alone, then inside the model), then one batch
    for (context, continuation), score in zip(requests, scores):
        assert score.logprob == pytest.approx(reference_causal_logprob(model, context, continuation)[0], abs=1e-6)


def test_masked_scores_under_the_floor_match_the_reference(tiny_bert_dir, monkeypatch):
    monkeypatch.setattr(batching, "CPU_MIN_TOKENS", 2048)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    pairs = [(SENTENCES[0], SENTENCES[1]), (SENTENCES[3], SENTENCES[2])]
    scores = masked.score_minimal_pairs(model, tokenizer, pairs, batch_size=1)
    for (a, b), (score_a, score_b) in zip(pairs, scores):
        expected_a, expected_b = reference_pll(model, tokenizer, a, b, "shared")
        assert (score_a, score_b) == pytest.approx((expected_a, expected_b), abs=1e-5)
