"""Multiple-choice answers scored on one shared context forward equal each answer scored on its own."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.bbq import items
from fixtures.reference_scoring import causal_head, reference_causal_logprob
from lm_eval_bias.scoring import causal, context_tree, shared_context

MODELS = ["tiny_gpt_neox_dir", "tiny_gpt2_dir", "tiny_llama_dir", "tiny_gemma2_dir"]


def _requests(tokenizer):
    """Every fixture BBQ item as lm-eval's multiple-choice requests: prompt, then ' ' + each answer."""
    requests = []
    for category in ("Age", "Gender_identity", "Race_x_gender"):
        for item in items(category):
            prompt = tokenizer.encode(f"{item['context']}\n\nQ: {item['question']}\nA:", add_special_tokens=False)
            for i in range(3):
                requests.append((prompt, tokenizer.encode(" " + item[f"ans{i}"], add_special_tokens=False)))
    return requests


def _pad(tokenizer):
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@pytest.fixture
def shared_calls(monkeypatch):
    calls = []
    original = context_tree.score_context_tree

    def counting(model, groups, **kwargs):
        calls.append(len(groups))
        return original(model, groups, **kwargs)

    monkeypatch.setattr(causal, "score_context_tree", counting)
    return calls


@pytest.mark.parametrize("model_dir", MODELS)
def test_shared_contexts_equal_one_answer_at_a_time(model_dir, request, shared_calls, single_thread):
    folder = request.getfixturevalue(model_dir)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    requests = _requests(tokenizer)
    scores = causal.score_continuations(
        model, requests, batch_size=8, pad_token_id=_pad(tokenizer), share_contexts=True
    )
    # every distinct prompt once, through the shared path (an item's two answer orders share their prompt)
    assert shared_calls == [len({tuple(context) for context, _ in requests})] and shared_calls[0] < len(requests) // 3
    with torch.inference_mode():
        for (context, continuation), score in zip(requests, scores):
            want, greedy = reference_causal_logprob(model, context, continuation)
            assert score.logprob == pytest.approx(want, abs=1e-6)
            assert score.is_greedy == greedy and score.num_tokens == len(continuation)


@pytest.mark.parametrize("model_dir", ["tiny_gpt_neox_dir", "tiny_gemma2_dir"])
def test_batch_size_does_not_move_shared_scores(model_dir, request, single_thread):
    folder = request.getfixturevalue(model_dir)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    requests = _requests(tokenizer)
    one, many = (
        [
            s.logprob
            for s in causal.score_continuations(
                model, requests, batch_size=size, pad_token_id=_pad(tokenizer), share_contexts=True
            )
        ]
        for size in (1, 32)
    )
    assert many == pytest.approx(one, abs=1e-6)


def test_one_token_contexts_and_single_answers_take_the_usual_path(tiny_gpt_neox_dir, shared_calls):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    bos = tokenizer.bos_token_id
    requests = [([bos], [5, 6]), ([bos], [7]), ([bos, 9, 10], [11, 12])]  # CrowS-Pairs-like, and a lone answer
    causal.score_continuations(model, requests, batch_size=4, pad_token_id=_pad(tokenizer), share_contexts=True)
    assert shared_calls == []


def test_a_window_too_small_falls_back(tiny_gemma2_dir, shared_calls):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma2_dir)
    model.config.sliding_window = 4
    assert not shared_context.fits_window(model, 5) and shared_context.fits_window(model, 4)
    causal.score_continuations(
        model, _requests(tokenizer)[:6], batch_size=4, pad_token_id=_pad(tokenizer), share_contexts=True
    )
    assert shared_calls == []


@pytest.mark.parametrize("model_dir", ["tiny_gpt_neox_dir", "tiny_gemma2_dir"])
def test_whole_slots_run_on_the_cropped_cache_and_partial_slots_on_copied_rows(
    model_dir, request, monkeypatch, single_thread
):
    folder = request.getfixturevalue(model_dir)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    copies = []
    original_rows_of = shared_context._rows_of
    monkeypatch.setattr(
        shared_context, "_rows_of", lambda cache, index: copies.append(index.tolist()) or original_rows_of(cache, index)
    )
    # slot 0: every context, one answer of one token among them (padding); slot 1: every context;
    # slot 2: only the second context (a copy of its row); slot 3: a one-token answer alone (no forward)
    groups = [
        ([3, 4, 5, 6, 7], [[8], [9, 10, 11]]),
        ([3, 14], [[15, 16], [17, 18], [19, 20, 21, 22], [23]]),
    ]
    got = shared_context.score_shared_contexts(
        model,
        groups,
        batch_size=8,
        pad_token_id=0,
        head_logprobs=lambda hidden, targets: causal_head(model, hidden, targets),
    )
    assert len(copies) == 1 and len(copies[0]) == 1  # slot 2's one row
    with torch.inference_mode():
        for (context, answers), scores in zip(groups, got):
            for answer, (logprobs, flags) in zip(answers, scores):
                want, greedy = reference_causal_logprob(model, context, answer)
                assert sum(logprobs) == pytest.approx(want, abs=1e-6) and all(flags) == greedy
