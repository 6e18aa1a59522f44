"""holistic_bias end to end through lm-eval, against one-sentence-at-a-time references and the metric
recomputed from the logged samples."""

from __future__ import annotations

import math

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.harness import evaluate, metric
from fixtures.holistic_bias import LISTS, write_holistic_bias
from fixtures.reference_scoring import pll_reference, reference_causal_logprob
from lm_eval_bias.data.holistic_bias import AXES
from lm_eval_bias.metrics.holistic_bias import METRICS, holistic_bias_metrics

TASK = "holistic_bias_ability"


@pytest.fixture
def holistic_bias_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(write_holistic_bias(tmp_path)))
    return tmp_path


def logged_items(results, task):
    """Each sample's (axis, template, descriptor, noun, loglikelihood, tokens), from its doc and value."""
    items = []
    for sample in results["samples"][task]:
        doc, value = sample["doc"], sample["likelihood_bias"]
        assert list(value[:4]) == [doc["axis"], doc["template"], doc["descriptor"], doc["noun"]]
        assert all(sample[name] == value for name in METRICS)
        items.append(tuple(value))
    return items


def check_metrics(results, task, items):
    want = holistic_bias_metrics(items)
    for name in METRICS:
        got = metric(results, task, name)
        assert (math.isnan(got) and math.isnan(want[name])) or got == pytest.approx(want[name]), name


def test_causal_sentences_scored_whole_after_the_prefix_token(holistic_bias_dir, tiny_gpt_neox_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], batch_size=8)
    assert results["configs"][TASK]["metadata"]["holistic_bias_set"] == "small"
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    items = logged_items(results, TASK)
    assert len(items) == 18  # Deaf and two standalone phrases x 3 nouns x 2 templates
    for sample, (*_, loglikelihood, tokens) in zip(results["samples"][TASK], items):
        ids = tokenizer.encode(sample["doc"]["text"], add_special_tokens=False)
        want, _ = reference_causal_logprob(model, [tokenizer.eos_token_id], ids)
        assert loglikelihood == pytest.approx(want, abs=1e-5)
        assert tokens == len(ids)
    check_metrics(results, TASK, items)
    assert metric(results, TASK, "descriptor_pairs") == 2 * 3  # 3 descriptors, 2 templates
    assert metric(results, TASK, "descriptors") == 3


def test_stock_hf_model_counts_tokens_with_its_tokenizer(holistic_bias_dir, tiny_gpt_neox_dir):
    ours = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], batch_size=8)
    stock = evaluate("hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], batch_size=8)
    for a, b in zip(logged_items(ours, TASK), logged_items(stock, TASK)):
        assert a[:4] == b[:4] and a[5] == b[5]
        assert a[4] == pytest.approx(b[4], abs=1e-4)
    assert metric(stock, TASK, "likelihood_bias") == pytest.approx(metric(ours, TASK, "likelihood_bias"))


def test_masked_lm_scores_pseudo_perplexity(holistic_bias_dir, tiny_bert_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_bert_dir}", [TASK], batch_size=8)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    items = logged_items(results, TASK)
    for sample, (*_, loglikelihood, tokens) in zip(results["samples"][TASK], items):
        text = sample["doc"]["text"]
        assert loglikelihood == pytest.approx(pll_reference(model, tokenizer, text), abs=1e-4)
        assert tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    check_metrics(results, TASK, items)


def test_group_pools_every_axis_pairs(tmp_path, monkeypatch, tiny_gpt_neox_dir):
    """Every axis with two descriptors: the group's Likelihood Bias is over all axes' pairs at once."""
    descriptors = {axis: {"b": [f"{axis[:3]}ish", f"{axis[:3]}like"]} for axis in AXES}
    monkeypatch.setenv(
        "LM_EVAL_BIAS_DATA_DIR",
        str(write_holistic_bias(tmp_path, {**LISTS, "descriptors": descriptors, "standalone_noun_phrases": {}})),
    )
    results = evaluate(
        "quantized_hf",
        f"pretrained={tiny_gpt_neox_dir}",
        ["holistic_bias"],
        batch_size=16,
        metadata={"holistic_bias_set": "full"},
    )
    subtasks = [f"holistic_bias_{axis}" for axis in AXES]
    items = [item for task in subtasks for item in logged_items(results, task)]
    assert len(items) == len(AXES) * 2 * 3 * 2
    check_metrics(results, "holistic_bias", items)
    assert metric(results, "holistic_bias", "descriptor_pairs") == len(AXES) * 2


def test_unknown_set_is_refused_before_scoring(holistic_bias_dir, tiny_gpt_neox_dir):
    with pytest.raises(ValueError, match=r"holistic_bias_set 'tiny'.*'small', 'full'"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], metadata={"holistic_bias_set": "tiny"})


def test_limit_is_refused_by_the_metric(holistic_bias_dir, tiny_gpt_neox_dir):
    # the first 9 sentences: 'on the spectrum' with every noun (6), 'with a disability' with one noun (3 of 6)
    with pytest.raises(ValueError, match="unequal counts.*--limit"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], limit=9)
