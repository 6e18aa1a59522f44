"""crows_pairs_bias `perplexity` through lm-eval on the tiny models, against sentence-by-sentence references."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.harness import evaluate, metric
from fixtures.reference_scoring import _equal_positions, _masked_logprob, reference_causal_logprob


@pytest.fixture
def pairs(crows_pairs_fixture_csv, monkeypatch) -> pd.DataFrame:
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    frame = pd.read_csv(Path(crows_pairs_fixture_csv) / "crows_pairs" / "crows_pairs_anonymized.csv")
    return frame.assign(task="crows_pairs_bias_" + frame["bias_type"].str.replace("-", "_"))


def causal_terms(model_dir: str, sentences) -> tuple[float, int]:
    """Summed log-prob and token count of every sentence after the prefix token, one at a time."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    total, tokens = 0.0, 0
    for sentence in sentences:
        ids = tokenizer.encode(sentence, add_special_tokens=False)
        total += reference_causal_logprob(model, [prefix], ids)[0]
        tokens += len(ids)
    return total, tokens


def masked_terms(model_dir: str, pairs: pd.DataFrame, variant: str) -> tuple[float, int]:
    """Log-probs of every token the pseudo-log-likelihood masks (shared or modified ones, never special)."""
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    special = set(tokenizer.all_special_ids)
    total, tokens = 0.0, 0
    for more, less in zip(pairs["sent_more"], pairs["sent_less"]):
        ids_more, ids_less = tokenizer(more)["input_ids"], tokenizer(less)["input_ids"]
        for ids, shared in zip((ids_more, ids_less), _equal_positions(ids_more, ids_less)):
            chosen = shared if variant == "shared" else [p for p in range(len(ids)) if p not in shared]
            for position in [p for p in chosen if ids[p] not in special]:
                total += _masked_logprob(model, ids, position, tokenizer.mask_token_id)
                tokens += 1
    return total, tokens


def test_causal_perplexity_of_group_and_subtask(tiny_gpt_neox_dir, pairs):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias"])
    total, tokens = causal_terms(tiny_gpt_neox_dir, [*pairs["sent_more"], *pairs["sent_less"]])
    assert metric(results, "crows_pairs_bias", "perplexity") == pytest.approx(math.exp(-total / tokens), rel=1e-6)
    assert metric(results, "crows_pairs_bias", "scored_tokens") == tokens
    gender = pairs[pairs["task"] == "crows_pairs_bias_gender"]
    total, tokens = causal_terms(tiny_gpt_neox_dir, [*gender["sent_more"], *gender["sent_less"]])
    assert metric(results, "crows_pairs_bias_gender", "perplexity") == pytest.approx(
        math.exp(-total / tokens), rel=1e-6
    )
    # pooled over tokens, not a mean of the subtasks' perplexities
    leaves = [metric(results, t, "perplexity") for t in sorted(set(pairs["task"]))]
    assert metric(results, "crows_pairs_bias", "perplexity") != pytest.approx(sum(leaves) / len(leaves), rel=1e-6)


def test_stock_hf_perplexity_counts_tokens_with_the_tokenizer(tiny_gpt2_dir, pairs):
    results = evaluate(
        "hf", f"pretrained={tiny_gpt2_dir}", ["crows_pairs_bias_age"], metadata={"sentence_score": "sum"}
    )
    age = pairs[pairs["task"] == "crows_pairs_bias_age"]
    total, tokens = causal_terms(tiny_gpt2_dir, [*age["sent_more"], *age["sent_less"]])
    assert metric(results, "crows_pairs_bias_age", "perplexity") == pytest.approx(math.exp(-total / tokens), rel=1e-5)


@pytest.mark.parametrize("variant", ["shared", "modified"])
def test_masked_pseudo_perplexity(tiny_bert_dir, pairs, variant):
    results = evaluate("quantized_hf", f"pretrained={tiny_bert_dir},mlm_score={variant}", ["crows_pairs_bias"])
    total, tokens = masked_terms(tiny_bert_dir, pairs, variant)
    assert metric(results, "crows_pairs_bias", "scored_tokens") == tokens
    assert metric(results, "crows_pairs_bias", "perplexity") == pytest.approx(math.exp(-total / tokens), rel=1e-5)
