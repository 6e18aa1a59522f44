"""StereoSet candidate scores from quantized_hf against plain one-item-per-forward implementations,
and their batch invariance (none and dynamic_int8)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.reference_scoring import causal_reference, pll_reference, target_word_reference
from fixtures.stereoset_seat import STEREOSET_ROWS
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

pytestmark = pytest.mark.usefixtures("single_thread")

LABELS = (4, 5, 6)  # stereotype, anti-stereotype, unrelated columns of STEREOSET_ROWS


def requests(mlm_score: str = "target_word", split: str | None = None):
    out = []
    for row in STEREOSET_ROWS:
        if split is None or row[0] == split:
            out += [(row[0], row[3], row[column], mlm_score) for column in LABELS]
    return out


def score(lm, reqs):
    return lm.stereoset_score([SimpleNamespace(args=r) for r in reqs], disable_tqdm=True)


# ------------------------------------------------------------------ tests


def test_causal_scores_match_reference(tiny_gpt_neox_dir):
    lm = QuantizedHFLM(pretrained=tiny_gpt_neox_dir, device="cpu", batch_size=4)
    reqs = requests()
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    expected = [causal_reference(model, tokenizer, *r[:3]) for r in reqs]
    assert score(lm, reqs) == pytest.approx(expected, abs=1e-5)


def test_causal_intrasentence_is_the_crows_pairs_sentence_score(tiny_gpt2_dir):
    lm = QuantizedHFLM(pretrained=tiny_gpt2_dir, device="cpu", batch_size=4)
    reqs = requests(split="intrasentence")
    loglikelihoods = lm.loglikelihood([SimpleNamespace(args=("", r[2])) for r in reqs], disable_tqdm=True)
    assert score(lm, reqs) == pytest.approx([ll[0] / ll.num_tokens for ll in loglikelihoods], abs=1e-9)


@pytest.mark.parametrize("model_fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
def test_masked_scores_match_reference(model_fixture, request):
    folder = request.getfixturevalue(model_fixture)
    lm = QuantizedHFLM(pretrained=folder, device="cpu", batch_size=4)
    assert lm.backend == "masked"
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    intra = requests(split="intrasentence")
    expected = [target_word_reference(model, tokenizer, r[1], r[2]) for r in intra]
    assert score(lm, intra) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert all(0.0 < p < 1.0 for p in expected)

    pll = requests("pll", split="intrasentence")
    assert score(lm, pll) == pytest.approx([pll_reference(model, tokenizer, r[2]) for r in pll], abs=1e-5)

    inter = requests(split="intersentence")
    expected = [pll_reference(model, tokenizer, r[2], context=r[1]) for r in inter]
    assert score(lm, inter) == pytest.approx(expected, abs=1e-5)


def test_multi_subtoken_words_are_predicted_left_to_right(tiny_bert_dir):
    from lm_eval_bias.scoring.stereoset import target_word_copies

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    copies = target_word_copies(tokenizer, "The teacher was very BLANK.", "The teacher was very unathletic.")
    pieces = tokenizer.encode("unathletic", add_special_tokens=False)
    assert len(pieces) > 1 and [target for _, _, target in copies] == pieces
    for k, (ids, position, _) in enumerate(copies):
        assert ids[position] == tokenizer.mask_token_id
        assert ids[position - k : position] == pieces[:k]  # the earlier subtokens, then the mask


@pytest.mark.parametrize("quantization", ["none", "dynamic_int8"])
@pytest.mark.parametrize("model_fixture", ["tiny_gpt_neox_dir", "tiny_bert_dir"])
def test_batch_invariance(model_fixture, quantization, request):
    lm = QuantizedHFLM(
        pretrained=request.getfixturevalue(model_fixture), device="cpu", quantization=quantization, batch_size=1
    )
    reqs = requests() + (requests("pll", split="intrasentence") if lm.backend == "masked" else [])
    scores = {}
    for batch_size in (1, 8, 32):
        lm.batch_size_per_gpu = batch_size
        scores[batch_size] = score(lm, reqs)
    for batch_size in (8, 32):
        assert scores[batch_size] == pytest.approx(scores[1], rel=1e-5, abs=1e-9), batch_size
