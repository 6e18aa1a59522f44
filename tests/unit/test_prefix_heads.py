"""The head once per distinct prefix (scoring/prefix_heads.py): whole sentences with shared prefixes,
scored as HolisticBias asks (the prefix token as context), against the one-at-a-time reference."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.scoring import causal, prefix_heads
from lm_eval_bias.scoring.head import linear_head_logprobs

TEMPLATES = ["I'm {}.", "I love being {}.", "What do you think about {}?", "I wanted to share with you that I'm {}."]
PHRASES = ["a Deaf grandpa", "a Deaf grandma", "a Deaf kid", "an old grandpa", "an old veteran", "a tall kid"]


@pytest.fixture(scope="module", params=["tiny_gpt_neox_dir", "tiny_gemma2_dir"])
def causal_lm(request):
    folder = request.getfixturevalue(request.param)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _sentences(tokenizer) -> list[tuple[list[int], list[int]]]:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    texts = [template.format(phrase) for template, phrase in itertools.product(TEMPLATES, PHRASES)]
    return [([prefix], tokenizer.encode(text, add_special_tokens=False)) for text in texts]


def _pad(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _score(model, tokenizer, requests, batch_size: int, share_prefixes: bool = True):
    return causal.score_continuations(
        model, requests, batch_size=batch_size, pad_token_id=_pad(tokenizer), share_prefixes=share_prefixes
    )


@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_matches_reference(causal_lm, batch_size):
    model, tokenizer = causal_lm
    requests = _sentences(tokenizer)
    for index, (request, score) in enumerate(zip(requests, _score(model, tokenizer, requests, batch_size))):
        logprob, greedy = reference_causal_logprob(model, *request)
        assert score.logprob == pytest.approx(logprob, abs=1e-6), index
        assert score.is_greedy == greedy, index
        assert score.num_tokens == len(request[1])


def test_batch_size_and_order_do_not_move_scores(causal_lm):
    model, tokenizer = causal_lm
    requests = _sentences(tokenizer)
    one = _score(model, tokenizer, requests, 1)
    for other in (_score(model, tokenizer, requests, 32), _score(model, tokenizer, requests[::-1], 7)[::-1]):
        assert [s.logprob for s in other] == pytest.approx([s.logprob for s in one], abs=1e-6)
        assert [s.is_greedy for s in other] == [s.is_greedy for s in one]
    unshared = _score(model, tokenizer, requests, 32, share_prefixes=False)
    assert [s.logprob for s in unshared] == pytest.approx([s.logprob for s in one], abs=1e-6)


@pytest.mark.parametrize("batch_size", [1, 32])
def test_head_runs_once_per_distinct_prefix(causal_lm, batch_size, monkeypatch):
    model, tokenizer = causal_lm
    requests = _sentences(tokenizer)
    positions, events, prefixes = 0, set(), set()
    for context, continuation in requests:
        whole = [*context, *continuation]
        positions += len(continuation)
        events |= {(tuple(whole[:p]), whole[p]) for p in range(len(context), len(whole))}
        prefixes |= {tuple(whole[:p]) for p in range(len(context), len(whole))}
    assert len(prefixes) < len(events) < positions  # several next tokens per prefix, shared events
    rows, targets = [], []
    real = prefix_heads.linear_head_logprobs

    def counting(hidden, weight, bias, target_ids, *args, **kwargs):
        rows.append(len(hidden))
        targets.append(len(target_ids))
        return real(hidden, weight, bias, target_ids, *args, **kwargs)

    monkeypatch.setattr(prefix_heads, "linear_head_logprobs", counting)
    _score(model, tokenizer, requests, batch_size)
    assert sum(rows) == len(prefixes)
    assert sum(targets) == len(events)


def test_several_targets_per_row_equal_one_row_per_target():
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(3, 16), torch.randn(1000, 16), torch.randn(1000)
    rows = torch.tensor([0, 0, 1, 2, 2, 2])
    targets = torch.tensor([5, 999, 0, 5, 300, 301])
    # the argmax of row 0 among the targets, to check the greedy flags
    targets[1] = int((hidden[0] @ weight.T + bias).argmax())
    logprobs, greedy = linear_head_logprobs(hidden, weight, bias, targets, 30.0, rows=rows)
    expected, expected_greedy = linear_head_logprobs(hidden[rows], weight, bias, targets, 30.0)
    assert logprobs.tolist() == pytest.approx(expected.tolist(), abs=1e-6)  # fp32 products of 3 vs 6 rows
    assert greedy.tolist() == expected_greedy.tolist() and greedy[1]


def test_prefixes_of_unlisted_sequences_are_still_scored(causal_lm):
    """A batch holding a sequence the plan did not list heads its prefixes for its own tokens too."""
    model, tokenizer = causal_lm
    listed, unlisted = _sentences(tokenizer)[:2], _sentences(tokenizer)[2]
    shared = prefix_heads.PrefixHeads([(ids, cont) for ids, cont in [causal._model_input(*r, None) for r in listed]])
    scorer = causal.batch_scorer(model, [list(unlisted[0] + unlisted[1])], shared)
    inputs, target = causal._model_input(*unlisted, None)
    ids = torch.tensor([list(inputs)])
    with torch.inference_mode():
        (scored,) = scorer(ids, torch.ones_like(ids), [list(target)])
    assert scored.score().logprob == pytest.approx(reference_causal_logprob(model, *unlisted)[0], abs=1e-6)
