"""Contexts that begin alike run their shared beginning once, and every answer scores as it would alone."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.bbq import items
from fixtures.reference_scoring import causal_head, reference_causal_logprob
from lm_eval_bias.scoring import context_tree, shared_context


def _shape(nodes):
    return [(n.segment, n.group, _shape(n.children)) for n in nodes]


def test_tree_by_hand(monkeypatch):
    monkeypatch.setattr(context_tree, "MIN_SEGMENT", 1)
    contexts = [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [1, 2, 8], [9, 9], [1, 2, 3, 4]]
    # [1, 2] is shared by four contexts; [3, 4] ends context 0 (and its repeat, 5) and goes on as [5] ...
    assert _shape(context_tree.context_tree(contexts)) == [
        ((1, 2), None, [((3, 4), 0, [((5,), None, [((6,), 1, []), ((7,), 2, [])])]), ((8,), 3, [])]),
        ((9, 9), 4, []),
    ]


def test_short_beginnings_are_run_again_with_each_context():
    # MIN_SEGMENT = 4: [1, 2] (shared, ends nothing) goes down into its children; [5] likewise
    contexts = [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [1, 2, 8]]
    assert context_tree.MIN_SEGMENT == 4
    assert _shape(context_tree.context_tree(contexts)) == [
        ((1, 2, 3, 4), 0, [((5, 6), 1, []), ((5, 7), 2, [])]),
        ((1, 2, 8), 3, []),
    ]


def test_without_pushing_down_the_tree_holds_each_distinct_prefix_once(monkeypatch):
    monkeypatch.setattr(context_tree, "MIN_SEGMENT", 1)
    gen = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 9, (60,), generator=gen)
    contexts = [torch.randint(0, 4, (int(n),), generator=gen).tolist() for n in sizes]
    total, stack = 0, list(context_tree.context_tree(contexts))
    while stack:
        node = stack.pop()
        total += len(node.segment)
        stack += node.children
    prefixes = {tuple(c[:k]) for c in contexts for k in range(1, len(c) + 1)}
    assert total == len(prefixes)


def _bbq_groups(tokenizer):
    """The fixture BBQ items as (prompt, [answers]): an ambiguous passage begins its disambiguated one."""
    groups = {}
    for category in ("Age", "Gender_identity", "Race_x_gender"):
        for item in items(category):
            prompt = tokenizer.encode(f"{item['context']}\n\nQ: {item['question']}\nA:", add_special_tokens=False)
            answers = [tokenizer.encode(" " + item[f"ans{i}"], add_special_tokens=False) for i in range(3)]
            groups.setdefault(tuple(prompt), answers)
    return [(list(c), a) for c, a in groups.items()]


def _positions(model):
    """Counts the real (unmasked) new positions each forward of the model's body runs."""
    seen = []

    def count(module, args, kwargs):
        seen.append(int(kwargs["attention_mask"][:, -kwargs["input_ids"].shape[1] :].sum()))

    return seen, model.base_model.register_forward_pre_hook(count, with_kwargs=True)


@pytest.mark.parametrize("model_dir", ["tiny_gpt_neox_dir", "tiny_llama_dir", "tiny_gemma2_dir"])
@pytest.mark.parametrize("batch_size", [1, 32])
def test_tree_scores_equal_each_answer_alone(model_dir, batch_size, request, single_thread):
    folder = request.getfixturevalue(model_dir)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    groups = _bbq_groups(tokenizer)
    seen, hook = _positions(model)
    got = context_tree.score_context_tree(
        model, groups, batch_size=batch_size, pad_token_id=0, head_logprobs=lambda h, t: causal_head(model, h, t)
    )
    hook.remove()
    # the body ran each shared beginning once: fewer context positions than the contexts hold
    answer_positions = sum(len(a) - 1 for _, answers in groups for a in answers)
    assert sum(seen) - answer_positions < 0.8 * sum(len(c) for c, _ in groups)
    with torch.inference_mode():
        for (context, answers), scores in zip(groups, got):
            for answer, (logprobs, flags) in zip(answers, scores):
                want, greedy = reference_causal_logprob(model, context, answer)
                assert len(logprobs) == len(answer)
                assert sum(logprobs) == pytest.approx(want, abs=1e-6) and all(flags) == greedy


def test_a_cache_past_the_window_scores_those_contexts_whole(tiny_gemma2_dir, monkeypatch, single_thread):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).eval()
    groups = [
        ([3, 4, 5, 6, 7, 8], [[9], [10, 11]]),
        ([3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 16, 17], [[18, 19], [20]]),
        ([3, 4, 5, 6, 7, 8, 12, 13, 14, 15, 16, 21], [[22], [23]]),
        (list(range(30, 40)), [[40], [41]]),
    ]
    # each context and its longest answer fit a window of 14, and so does the top batch (padded to 10, + 2);
    # on that padded cache [12 .. 16] would make it 15 (+ 2) wide, so the two contexts under it are scored whole
    model.config.sliding_window = 14
    whole = []
    original = context_tree.score_shared_contexts
    monkeypatch.setattr(
        context_tree, "score_shared_contexts", lambda m, g, **kw: whole.append(len(g)) or original(m, g, **kw)
    )
    got = context_tree.score_context_tree(
        model, groups, batch_size=4, pad_token_id=0, head_logprobs=lambda h, t: causal_head(model, h, t)
    )
    assert whole == [2] and shared_context.fits_window(model, 14)
    with torch.inference_mode():
        for (context, answers), scores in zip(groups, got):
            for answer, (logprobs, _) in zip(answers, scores):
                assert sum(logprobs) == pytest.approx(reference_causal_logprob(model, context, answer)[0], abs=1e-6)
