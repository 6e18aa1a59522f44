"""Whole sentences that begin alike, their shared prefix run once: the same per-token scores as whole."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.scoring import causal, shared_prefix

MODELS = ["tiny_gpt_neox_dir", "tiny_gpt2_dir", "tiny_llama_dir", "tiny_gemma2_dir"]
TEMPLATES = ["I'm {}.", "I love being {}.", "What do you think about {}?", "Hi! I am {} and proud of it"]
DESCRIPTORS = ["a Deaf", "an elderly", "a left-handed"]
NOUNS = ["grandmother", "grandfather", "veteran", "person", "parent", "kid"]


def whole_requests(tokenizer):
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    texts = [t.format(f"{d} {n}") for t in TEMPLATES for d in DESCRIPTORS for n in NOUNS]
    return [([prefix], tokenizer.encode(s, add_special_tokens=False)) for s in texts]


def test_the_split_puts_every_sentence_back_together():
    requests = [([0], [5, 6, 7, 8, 9 + i % 3, 20 + i]) for i in range(10)] + [([0], [5, 6, 1]), ([3, 4], [5, 6])]
    requests += [([0], [5, 6, 7, 8, 9, 20])]  # a repeat of the first
    split = shared_prefix.split_shared_prefixes(requests)
    assert split is not None and len(split.joins) == len(requests)
    for (context, continuation), join in zip(requests, split.joins):
        parts = [split.requests[i] for i in join]
        assert tuple(context + continuation) == parts[0][0] + tuple(x for _, t in parts for x in t)
    assert split.joins[-1] == split.joins[0]
    assert split.requests[split.joins[-2][0]] == ((3, 4), (5, 6))  # not a whole sentence: as it was
    assert split.requests[split.joins[-3][0]] == ((0,), (5, 6, 1))  # no group: as it was
    # ten sentences share [0, 5, 6, 7, 8]: one shared part (tokens 2..5), then ten endings on that prefix
    assert {split.requests[j[0]] for j in split.joins[:10]} == {((0,), (5, 6, 7, 8))}
    assert {split.requests[j[1]][0] for j in split.joins[:10]} == {(0, 5, 6, 7, 8)}
    assert split.endings == {j[1] for j in split.joins[:10]}


def test_no_group_without_enough_members_or_prefix():
    assert shared_prefix.split_shared_prefixes([([0], [5, 6, 7, i]) for i in range(3)]) is None  # 3 members
    assert shared_prefix.split_shared_prefixes([([0], [5, i, 7, 8]) for i in range(9)]) is None  # 2 tokens shared
    cut = shared_prefix.split_shared_prefixes([([0], [5, 6, 7, 8, i]) for i in range(9)], max_length=4)
    assert cut is None  # max_length would cut them: left to the usual path
    group = [([0], [5, 6, i, 30]) for i in range(4)]  # saves 3 x 3 = 9 positions
    assert shared_prefix.split_shared_prefixes(group) is not None
    others = [([0], list(range(40 + 10 * k, 50 + 10 * k))) for k in range(4)]  # 40 positions nobody shares
    assert shared_prefix.split_shared_prefixes(group + others) is None  # 9 < 25% of 56


def test_the_chosen_runs_save_what_a_brute_force_finds():
    """On a small sorted list the dynamic programme's saving equals the best of every partition into runs."""
    wholes = sorted(
        {(0, 1, 2, 3, 9), (0, 1, 2, 3, 8), (0, 1, 2, 4, 5), (0, 1, 2, 4, 6), (0, 1, 2, 4, 7), (0, 1, 7, 7, 7)}
        | {(0, 1, 2, 3, 7), (0, 1, 2, 4, 1), (0, 1, 2, 4, 3, 3)}
    )

    def saving(i, j):
        shared = [shared_prefix.common_length(a, b) for a, b in zip(wholes[i : j - 1], wholes[i + 1 : j])]
        prefix = min(*shared, *(len(w) - 1 for w in wholes[i:j]))
        if j - i < shared_prefix.MIN_MEMBERS or prefix < shared_prefix.MIN_PREFIX:
            return 0
        return max(0, (j - i - 1) * prefix - shared_prefix.GROUP_COST)

    n, best = len(wholes), 0
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [k + 1 for k, c in enumerate(cuts) if c] + [n]
        best = max(best, sum(saving(i, j) for i, j in zip(bounds, bounds[1:]) if j - i > 1))
    chosen = shared_prefix.runs(wholes)
    assert sum(saving(i, j) for i, j, _ in chosen) == best > 0


@pytest.mark.parametrize("model_dir", MODELS)
@pytest.mark.parametrize("batch_size", [1, 32])
def test_split_sentences_score_as_whole_ones(model_dir, batch_size, request, monkeypatch, single_thread):
    folder = request.getfixturevalue(model_dir)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    requests = whole_requests(tokenizer)
    calls = []
    original = shared_prefix.score_endings
    monkeypatch.setattr(shared_prefix, "score_endings", lambda m, g, **kw: calls.append(g) or original(m, g, **kw))
    scores = causal.score_continuations(
        model, requests, batch_size=batch_size, pad_token_id=pad, share_prefixes=True, share_contexts=True
    )
    assert calls and sum(len(endings) for _, endings in calls[0]) >= len(requests) // 2  # most went split
    with torch.inference_mode():
        for (context, continuation), score in zip(requests, scores):
            want, greedy = reference_causal_logprob(model, context, continuation)
            assert score.logprob == pytest.approx(want, abs=1e-6)
            assert score.is_greedy == greedy and score.num_tokens == len(continuation)


def test_the_head_runs_once_per_distinct_position(tiny_gpt_neox_dir, single_thread):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    groups = [([3, 4, 5], [[8], [9, 10, 11], [9, 10, 12], [9, 13]]), ([3, 14], [[15, 16], [17, 18, 19]])]
    headed = []

    def head(hidden, targets, rows):
        headed.append((len(hidden), len(targets)))
        logprobs = torch.log_softmax(model.get_output_embeddings()(hidden[rows]).double(), dim=-1)
        picked = logprobs.gather(1, targets[:, None])[:, 0]
        return picked, picked >= logprobs.max(dim=-1).values

    got = shared_prefix.score_endings(model, groups, batch_size=8, pad_token_id=0, head_logprobs=head)
    # 14 targets at 7 distinct positions: the two prefixes' last; after 9 (three endings) and 9 10 (two);
    # after 15; after 17 and 17 18
    assert headed == [(2 + 2 + 1 + 2, 1 + 3 + 3 + 2 + 2 + 3)]
    with torch.inference_mode():
        for (prefix, endings), scores in zip(groups, got):
            for ending, (logprobs, _) in zip(endings, scores):
                want, _ = reference_causal_logprob(model, prefix, ending)
                assert sum(logprobs) == pytest.approx(want, abs=1e-6)
