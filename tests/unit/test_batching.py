"""The CPU token floor of a batch (scoring/batching.py): grouping by hand, and scores under it
against the one-at-a-time references (the other scoring tests run without it, see conftest)."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from lm_eval_bias.scoring import batching, causal, masked
from fixtures.reference_scoring import reference_causal_logprob, reference_pll


@pytest.mark.parametrize(("batch_size", "min_tokens", "expected"), [
    # longest first: 5 -> max(2, 6 // 5) = 2 rows; 3 -> 2 rows; 2 -> 3 rows (the rest)
    (2, 6, [[0, 1], [2, 3], [4, 5, 6]]),
    (2, 0, [[0, 1], [2, 3], [4, 5], [6]]),  # no floor: batch_size rows
    (1, 12, [[0, 1], [2, 3, 4, 5], [6]]),   # 5 -> 2; 3 -> 4 (two 3s, two 2s); 1 -> 12: what is left
])
def test_batches_hold_at_least_min_tokens_padded_tokens(batch_size, min_tokens, expected):
    lengths = [5, 3, 3, 2, 2, 2, 1]
    assert list(batching.length_sorted_batches(lengths, batch_size, min_tokens)) == expected


def test_the_floor_is_for_cpus_only(monkeypatch):
    monkeypatch.setattr(batching, "CPU_MIN_TOKENS", 64)
    assert batching.min_tokens_per_batch("cpu") == 64
    assert batching.min_tokens_per_batch("meta") == 0  # an accelerator: batch_size alone bounds memory


SENTENCES = ["The poor man was lazy.", "The rich man was lazy.", "Women are bad at driving cars.",
             "The man in the wheelchair was very sad, and nobody came to help him.", "He"]


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
