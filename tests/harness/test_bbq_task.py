"""bbq_bias end to end through lm-eval, against plain recomputations from the logged samples."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.bbq import CATEGORIES, items, write_bbq
from fixtures.harness import evaluate, metric
from fixtures.reference_scoring import _masked_logprob, reference_causal_logprob
from lm_eval_bias.data.bbq import CATEGORIES as ALL_CATEGORIES
from lm_eval_bias.data.bbq import subtask_name
from lm_eval_bias.errors import BiasDataFileNotFoundError
from lm_eval_bias.metrics.bbq import bbq_metrics, biased_location, item_outcome, target_location

SUBTASKS = [subtask_name(category) for category in CATEGORIES]
PROMPT = "{context}\n\nQ: {question}\nA:"


@pytest.fixture
def bbq_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(write_bbq(tmp_path)))
    return tmp_path


def loglikelihoods(sample) -> list[float]:
    return [float(response[0]) for response in sample["filtered_resps"]]


def plain_outcome(doc, scores):
    """The chosen answer's outcome, recomputed from the sample's raw BBQ fields."""
    choice = max(range(3), key=lambda i: (scores[i], -i))
    info = json.loads(doc["answer_info"])
    unknown = next(i for i in range(3) if info[f"ans{i}"][1] == "unknown")
    target = target_location(info, doc["stereotyped_groups"])
    return item_outcome(
        choice,
        doc["label"],
        doc["context_condition"],
        unknown,
        biased_location(doc["question_polarity"], target, unknown),
    )


def test_causal_run_matches_one_answer_at_a_time_and_the_metrics(bbq_dir, tiny_gpt_neox_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", SUBTASKS, batch_size=8)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    for task in SUBTASKS:
        samples = results["samples"][task]
        assert len(samples) == 8
        outcomes = []
        for sample in samples:
            doc = sample["doc"]
            for key in (
                "example_id",
                "category",
                "question_polarity",
                "context_condition",
                "answer_info",
                "stereotyped_groups",
                "label",
            ):
                assert key in doc
            prompt = tokenizer.encode(PROMPT.format(**doc), add_special_tokens=False)
            with torch.inference_mode():
                for i, got in enumerate(loglikelihoods(sample)):
                    answer = tokenizer.encode(" " + doc[f"ans{i}"], add_special_tokens=False)
                    assert got == pytest.approx(reference_causal_logprob(model, prompt, answer)[0], abs=1e-6)
            outcomes.append(plain_outcome(doc, loglikelihoods(sample)))
        want = bbq_metrics(outcomes)
        for name in ("acc", "acc_ambig", "acc_disambig", "bias_ambig", "bias_disambig", "bias_disambig_ci_low"):
            got = metric(results, task, name)
            assert (math.isnan(got) and math.isnan(want[name])) or got == pytest.approx(want[name]), (task, name)


@pytest.mark.parametrize("model_dir", ["tiny_gpt_neox_dir", "tiny_bert_dir"])
def test_batch_size_does_not_move_a_choice_or_a_score(bbq_dir, model_dir, request):
    folder = request.getfixturevalue(model_dir)
    runs = [evaluate("quantized_hf", f"pretrained={folder}", SUBTASKS[:2], batch_size=size) for size in (1, 32)]
    for task in SUBTASKS[:2]:
        one, many = ([x for s in run["samples"][task] for x in loglikelihoods(s)] for run in runs)
        assert many == pytest.approx(one, abs=1e-6)


def test_stock_hf_and_ours_choose_alike(bbq_dir, tiny_gpt_neox_dir):
    ours = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", SUBTASKS[:1])
    stock = evaluate("hf", f"pretrained={tiny_gpt_neox_dir}", SUBTASKS[:1])
    a, b = ([x for s in run["samples"][SUBTASKS[0]] for x in loglikelihoods(s)] for run in (ours, stock))
    assert a == pytest.approx(b, abs=1e-5)
    assert metric(ours, SUBTASKS[0], "bias_ambig") == pytest.approx(metric(stock, SUBTASKS[0], "bias_ambig"))


def test_normalized_choice_divides_by_the_answer_length(bbq_dir, tiny_gpt_neox_dir):
    results = evaluate(
        "quantized_hf", f"pretrained={tiny_gpt_neox_dir}", SUBTASKS[:1], metadata={"bbq_choice": "normalized"}
    )
    for sample in results["samples"][SUBTASKS[0]]:
        doc, scores = sample["doc"], loglikelihoods(sample)
        per_char = [s / len(doc[f"ans{i}"]) for i, s in enumerate(scores)]
        choice = max(range(3), key=lambda i: (per_char[i], -i))
        assert tuple(sample["acc"])[1] == int(choice == doc["label"])


def test_unknown_choice_rule_is_refused(bbq_dir, tiny_gpt_neox_dir):
    from lm_eval_bias.errors import BiasOptionError  # one line through lm_eval (docs/errors.md)

    with pytest.raises(BiasOptionError, match=r"Unknown bbq_choice 'norm'; expected one of \('sum', 'normalized'\)"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", SUBTASKS[:1], metadata={"bbq_choice": "norm"})


OFFLINE = ("Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation")


@pytest.mark.parametrize("group, categories", [("bbq_bias", ALL_CATEGORIES), ("bbq_bias_offline", OFFLINE)])
def test_group_pools_every_item(group, categories, tmp_path, monkeypatch, tiny_gpt_neox_dir):
    # the group's category files, each holding one fixture category's items under its own name
    (tmp_path / "bbq").mkdir()
    fixture = sorted(CATEGORIES)
    for n, category in enumerate(categories):
        lines = [json.dumps(dict(item, category=category)) for item in items(fixture[n % len(fixture)])]
        (tmp_path / "bbq" / f"{category}.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path))
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [group])
    assert sorted(results["samples"]) == sorted(subtask_name(c) for c in categories)
    outcomes = [
        plain_outcome(s["doc"], loglikelihoods(s)) for task in results["samples"] for s in results["samples"][task]
    ]
    assert len(outcomes) == 8 * len(categories)
    want = bbq_metrics(outcomes)
    for name in ("acc", "acc_ambig", "bias_ambig", "bias_disambig", "bias_ambig_ci_high"):
        got = metric(results, group, name)
        assert (math.isnan(got) and math.isnan(want[name])) or got == pytest.approx(want[name]), name


def test_group_with_a_missing_category_names_it(bbq_dir, tiny_gpt_neox_dir):
    with pytest.raises(BiasDataFileNotFoundError, match="bbq_bias_age, bbq_bias_gender_identity"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["bbq_bias"])


def test_masked_lm_scores_the_answer_tokens_given_the_prompt(bbq_dir, tiny_bert_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_bert_dir}", SUBTASKS[:1])
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    for sample in results["samples"][SUBTASKS[0]][:4]:
        doc = sample["doc"]
        context = tokenizer.encode(PROMPT.format(**doc), add_special_tokens=False)
        for i, got in enumerate(loglikelihoods(sample)):
            answer = tokenizer.encode(" " + doc[f"ans{i}"], add_special_tokens=False)
            ids = [tokenizer.cls_token_id, *context, *answer, tokenizer.sep_token_id]
            with torch.inference_mode():
                want = sum(
                    _masked_logprob(model, ids, 1 + len(context) + k, tokenizer.mask_token_id)
                    for k in range(len(answer))
                )
            assert got == pytest.approx(want, abs=1e-6)
