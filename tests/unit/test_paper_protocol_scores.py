"""The paper protocol's sentence scores against a straightforward re-implementation.

The reference functions (tests/fixtures/paper_reference.py) are written from the study's description (one sentence at a
time, no batching, plain log_softmax in float64): the causal score takes the first token from
a forward pass over the prefix token alone and every later token from a pass over the sentence
without it; the masked CrowS-Pairs score masks each differing token alone, averages, rounds to
3 decimals and skips pairs with no differing token; the masked StereoSet score averages the
probabilities of the filled-in word's subtokens, with bias-bench's RoBERTa rule.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.corpus import CROWS_PAIRS_ROWS
from fixtures.paper_reference import reference_causal, reference_crows_masked, reference_stereoset_masked
from fixtures.stereoset_seat import STEREOSET_ROWS
from lm_eval_bias.metrics.crows_pairs import pair_metrics
from lm_eval_bias.protocol import check_protocol, check_stereoset_split, is_roberta_name, resolved
from lm_eval_bias.scoring import paper

SENTENCES = [row[0] for row in CROWS_PAIRS_ROWS] + [row[1] for row in CROWS_PAIRS_ROWS]
INTRA = [row for row in STEREOSET_ROWS if row[0] == "intrasentence"]


@pytest.fixture(scope="module", params=["tiny_gpt_neox_dir", "tiny_gpt2_dir"])
def causal(request):
    folder = request.getfixturevalue(request.param)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_causal_score_matches_reference(causal, batch_size, single_thread):
    model, tokenizer = causal
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    scores = paper.causal_sentence_scores(
        model,
        [tokenizer.encode(s, add_special_tokens=False) for s in SENTENCES],
        prefix_token_id=prefix,
        batch_size=batch_size,
        pad_token_id=pad,
    )
    for sentence, score in zip(SENTENCES, scores):
        assert score.num_tokens == len(tokenizer.encode(sentence, add_special_tokens=False))
        assert score.logprob / score.num_tokens == pytest.approx(reference_causal(model, tokenizer, sentence), abs=1e-6)


def test_causal_score_differs_from_prefix_conditioned_score(causal):
    """The second pass never sees the prefix: the scores are not the one-pass ones."""
    model, tokenizer = causal
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    tokens = tokenizer.encode(SENTENCES[0], add_special_tokens=False)
    with torch.no_grad():
        one_pass = torch.log_softmax(model(torch.tensor([[prefix] + tokens])).logits[0].double(), -1)
    one_pass_mean = sum(float(one_pass[i, t]) for i, t in enumerate(tokens)) / len(tokens)
    assert abs(reference_causal(model, tokenizer, SENTENCES[0]) - one_pass_mean) > 1e-4


def test_masked_crows_scores_match_reference(tiny_bert_dir, single_thread):
    model, tokenizer = (
        AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_bert_dir),
    )
    pairs = [(row[0], row[1]) for row in CROWS_PAIRS_ROWS] + [("The man is poor.", "The man is very poor.")]
    scores = paper.crows_masked_pair_scores(model, tokenizer, pairs, batch_size=4)
    expected = [reference_crows_masked(model, tokenizer, a, b) for a, b in pairs]
    assert expected[-1] is None and scores[-1] is None  # an insertion leaves one sentence with no differing token
    assert [s is None for s in scores] == [e is None for e in expected]
    for got, want in zip(scores, expected):
        if want is not None:
            assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(
    "fixture, roberta", [("tiny_bert_dir", False), ("tiny_roberta_dir", True), ("tiny_roberta_dir", False)]
)
def test_masked_stereoset_scores_match_reference(request, fixture, roberta, single_thread):
    folder = request.getfixturevalue(fixture)
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    requests = [(row[3], sentence) for row in INTRA for sentence in row[4:7]]
    scores = paper.stereoset_masked_scores(model, tokenizer, requests, roberta=roberta, batch_size=5)
    for (context, sentence), score in zip(requests, scores):
        assert score == pytest.approx(
            reference_stereoset_masked(model, tokenizer, context, sentence, roberta), abs=1e-6
        )


def test_differing_positions_depend_on_the_order_bias_bench_compares_in():
    assert paper.differing_positions([1, 2, 3], [1, 2, 4, 3]) == ([], [2])
    # difflib keeps the earliest match in its first sequence: [1, 2] vs [2, 1] keeps the 1s, reversed the 2s
    assert paper.differing_positions([1, 2], [2, 1]) == ([1], [0])
    assert paper.differing_positions([2, 1], [1, 2]) == ([1], [0])
    from lm_eval_bias.protocol_tasks import _bias_bench_order

    assert _bias_bench_order({"stereo_antistereo": "antistereo"}, ("more", "less")) == ("less", "more")
    assert _bias_bench_order({"stereo_antistereo": "stereo"}, ("more", "less")) == ("more", "less")


def test_roberta_rule_matches_names_containing_roberta():
    assert is_roberta_name("distilroberta-base") and is_roberta_name("/models/roberta-large")
    assert not is_roberta_name("bert-base-uncased") and not is_roberta_name("RoBERTa") and not is_roberta_name(None)


def test_rounding_makes_near_equal_scores_tie():
    """Two sentence scores equal to 3 decimals are a tie, out of stereo_score, into tie_rate."""
    more, less = paper.rounded_mean([-2.3414, -2.3410]), paper.rounded_mean([-2.3406])
    assert more == less == -2.341
    metrics = pair_metrics(more, less, "stereo")
    assert metrics["tie_rate"] == 100.0 and metrics["stereotype_score"] == 0.0 and math.isnan(metrics["stereo_score"])
    assert paper.rounded_mean([-1.0004]) > paper.rounded_mean([-1.0006])  # -1.0 vs -1.001: not a tie


def test_skipped_pair_adds_no_metric_item():
    """bias-bench's skip rule: the pair is out of N, so the task returns no metric for it."""
    from types import SimpleNamespace

    from lm_eval_bias.protocol_tasks import CrowsPairsTask

    task = SimpleNamespace(protocol="paper")
    assert CrowsPairsTask.process_results(task, {"stereo_antistereo": "stereo"}, [None]) == {}


def test_protocol_and_split_choices():
    assert check_protocol(None) == "default" and check_protocol("paper") == "paper"
    assert check_stereoset_split(None, "paper") == "test" and check_stereoset_split(None) == "dev"
    assert resolved({"stereoset_split": "dev", "protocol": "paper"}, stereoset=True)["stereoset_split"] == "dev"
    with pytest.raises(ValueError, match="'default', 'paper'"):
        check_protocol("study")
    with pytest.raises(ValueError, match="'dev', 'test'"):
        check_stereoset_split("validation")
