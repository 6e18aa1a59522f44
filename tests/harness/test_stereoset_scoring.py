"""StereoSet candidate scores from quantized_hf against plain one-item-per-forward implementations,
and their batch invariance (none and dynamic_int8)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from fixtures.reference_scoring import reference_causal_logprob
from fixtures.stereoset_seat import STEREOSET_ROWS

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


# ------------------------------------------------------------------ references


def causal_reference(model, tokenizer, split, context, sentence) -> float:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if split == "intrasentence":
        context_ids, ids = [prefix], tokenizer.encode(sentence, add_special_tokens=False)
    else:
        context_ids, ids = tokenizer.encode(context), tokenizer.encode(" " + sentence)
    return reference_causal_logprob(model, context_ids, ids)[0] / len(ids)


@torch.no_grad()
def mask_logprobs(model, ids, position, token_type_ids=None) -> torch.Tensor:
    kwargs = {"token_type_ids": torch.tensor([token_type_ids])} if token_type_ids is not None else {}
    logits = model(input_ids=torch.tensor([ids]), **kwargs).logits[0, position]
    return torch.log_softmax(logits.double(), dim=-1)


def target_word_reference(model, tokenizer, context, sentence) -> float:
    """bias-bench: the word at BLANK's position, punctuation removed, subtokens predicted in turn."""
    words = context.split(" ")
    index = [i for i, w in enumerate(words) if "BLANK" in w][-1]
    word = "".join(c for c in sentence.split(" ")[index] if c.isalnum())
    leading_space = context.index("BLANK") > 0 and context[context.index("BLANK") - 1] == " "
    pieces = tokenizer.encode((" " if leading_space else "") + word, add_special_tokens=False)
    probabilities = []
    for k, piece in enumerate(pieces):
        text = context.replace("BLANK", tokenizer.decode(pieces[:k]).strip() + tokenizer.mask_token)
        ids = tokenizer(text)["input_ids"]
        probabilities.append(math.exp(float(mask_logprobs(model, ids, ids.index(tokenizer.mask_token_id))[piece])))
    return sum(probabilities) / len(probabilities)


def pll_reference(model, tokenizer, sentence, context=None) -> float:
    """Sum (single sentence) or mean (candidate after a context) of log p(token | rest)."""
    encoding = tokenizer(context, sentence) if context is not None else tokenizer(sentence)
    ids, types = encoding["input_ids"], encoding.get("token_type_ids")
    second = [s == 1 for s in encoding.sequence_ids()] if context is not None else [True] * len(ids)
    values = []
    for position, (token, scored) in enumerate(zip(ids, second)):
        if scored and token not in tokenizer.all_special_ids:
            masked = list(ids)
            masked[position] = tokenizer.mask_token_id
            values.append(float(mask_logprobs(model, masked, position, types)[token]))
    return sum(values) / len(values) if context is not None else sum(values)


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
    lm = QuantizedHFLM(pretrained=request.getfixturevalue(model_fixture), device="cpu",
                       quantization=quantization, batch_size=1)
    reqs = requests() + (requests("pll", split="intrasentence") if lm.backend == "masked" else [])
    scores = {}
    for batch_size in (1, 8, 32):
        lm.batch_size_per_gpu = batch_size
        scores[batch_size] = score(lm, reqs)
    for batch_size in (8, 32):
        assert scores[batch_size] == pytest.approx(scores[1], rel=1e-5, abs=1e-9), batch_size
