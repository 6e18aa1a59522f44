"""lm_eval_bias.scoring.causal.score_continuations against the one-at-a-time reference."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.scoring import causal, prefix_heads

MODEL_FIXTURES = ["tiny_gpt_neox_dir", "tiny_gpt2_dir"]
BATCH_SIZES = [1, 3, 8]

# (context text or None for just the EOS/BOS token, continuation text)
TEXT_REQUESTS = [
    (None, "The poor man was lazy."),
    (None, "The rich man was lazy."),
    ("The nurse said", " she was tired."),
    ("The nurse said", " he was tired."),
    (None, "He"),  # one-token continuation
    ("Women are bad at", " driving cars."),
    (
        None,
        'He said, "girls can\'t fix cars," and left. The man in the wheelchair was very sad. '
        "The students read books in the library, and the children were playing in the park.",
    ),
    ("The old woman could not use the phone, so the young man", " helped her."),
    (None, "The man was very sad."),
    ("The poor man was lazy.", " The poor man was lazy."),  # repeated tokens
    (None, "Mexicans are always late for work."),
]


@pytest.fixture(scope="module", params=MODEL_FIXTURES)
def causal_lm(request):
    folder = request.getfixturevalue(request.param)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def _prefix(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _pad(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _greedy_request(model, context: list[int], steps: int) -> tuple[list[int], list[int]]:
    """A request whose continuation is the model's own argmax rollout (is_greedy must be True)."""
    ids = list(context)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return list(context), ids[len(context) :]


def _requests(model, tokenizer) -> list[tuple[list[int], list[int]]]:
    requests = []
    for context, continuation in TEXT_REQUESTS:
        context_ids = [_prefix(tokenizer)] if context is None else tokenizer.encode(context, add_special_tokens=False)
        requests.append((context_ids, tokenizer.encode(continuation, add_special_tokens=False)))
    requests.append(_greedy_request(model, [_prefix(tokenizer)], 5))
    requests.append(_greedy_request(model, tokenizer.encode("The black family", add_special_tokens=False), 3))
    return requests


def _assert_matches_reference(model, requests, scores):
    assert len(scores) == len(requests)
    for index, ((context, continuation), score) in enumerate(zip(requests, scores)):
        expected_logprob, expected_greedy = reference_causal_logprob(model, context, continuation)
        assert isinstance(score, causal.TokenScore)
        assert score.logprob == pytest.approx(expected_logprob, abs=1e-6), index
        assert score.is_greedy == expected_greedy, index
        assert score.num_tokens == len(continuation), index


def test_requests_cover_the_interesting_cases(causal_lm):
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    lengths = {len(context) + len(continuation) for context, continuation in requests}
    assert len(lengths) >= 6 and max(lengths) > 30  # real padding inside batches
    assert any(len(c) == 1 for _, c in requests)
    greedy = [reference_causal_logprob(model, *r)[1] for r in requests]
    assert any(greedy) and not all(greedy)


@pytest.mark.parametrize("share_prefixes", [False, True])
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_matches_reference(causal_lm, batch_size, share_prefixes):
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    scores = causal.score_continuations(
        model, requests, batch_size=batch_size, pad_token_id=_pad(tokenizer), share_prefixes=share_prefixes
    )
    _assert_matches_reference(model, requests, scores)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_shared_prefixes_run_the_head_once_per_prefix(causal_lm, batch_size, monkeypatch):
    """The head sees each distinct prefix of a scored position once: counted by brute force."""
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    events, prefixes = set(), set()
    for context, continuation in requests:
        whole = [*context, *continuation]
        events |= {(tuple(whole[:p]), whole[p]) for p in range(len(context), len(whole))}
        prefixes |= {tuple(whole[:p]) for p in range(len(context), len(whole))}
    assert len(prefixes) < len(events) < sum(len(c) for _, c in requests)  # the requests do share prefixes
    rows = []
    real = prefix_heads.linear_head_logprobs
    monkeypatch.setattr(
        prefix_heads, "linear_head_logprobs", lambda hidden, *a, **k: rows.append(len(hidden)) or real(hidden, *a, **k)
    )
    causal.score_continuations(
        model, requests, batch_size=batch_size, pad_token_id=_pad(tokenizer), share_prefixes=True
    )
    assert sum(rows) == len(prefixes)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_pad_token_value_does_not_matter(causal_lm, batch_size):
    """Padding with an ordinary vocabulary token must not change any score (it has to be masked out)."""
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    ordinary_token = tokenizer.encode(" the", add_special_tokens=False)[0]
    scores = causal.score_continuations(model, requests, batch_size=batch_size, pad_token_id=ordinary_token)
    _assert_matches_reference(model, requests, scores)


def test_results_keep_request_order(causal_lm):
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    pad = _pad(tokenizer)
    forward = causal.score_continuations(model, requests, batch_size=3, pad_token_id=pad)
    backward = causal.score_continuations(model, requests[::-1], batch_size=3, pad_token_id=pad)
    assert [s.num_tokens for s in backward[::-1]] == [len(c) for _, c in requests]
    for a, b in zip(forward, backward[::-1]):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-6)
        assert a.is_greedy == b.is_greedy and a.num_tokens == b.num_tokens


def test_batch_sizes_agree_with_each_other(causal_lm):
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    runs = [
        causal.score_continuations(model, requests, batch_size=b, pad_token_id=_pad(tokenizer))
        for b in (1, 2, 5, len(requests), 64)
    ]
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-6)
            assert (a.is_greedy, a.num_tokens) == (b.is_greedy, b.num_tokens)


def test_logprobs_are_probabilities(causal_lm):
    model, tokenizer = causal_lm
    requests = _requests(model, tokenizer)
    scores = causal.score_continuations(model, requests, batch_size=4, pad_token_id=_pad(tokenizer))
    assert all(s.logprob < 0 for s in scores)
    # one-token continuations: the probabilities of every possible next token sum to one
    context = [_prefix(tokenizer)]
    every_token = [(context, [token]) for token in range(model.config.vocab_size)]
    total = sum(
        torch.tensor(
            [
                s.logprob
                for s in causal.score_continuations(model, every_token, batch_size=64, pad_token_id=_pad(tokenizer))
            ],
            dtype=torch.float64,
        ).exp()
    )
    assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_empty_context_is_refused(causal_lm):
    model, tokenizer = causal_lm
    with pytest.raises(ValueError):
        causal.score_continuations(model, [([], [5, 6])], batch_size=1, pad_token_id=_pad(tokenizer))
