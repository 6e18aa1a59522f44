"""stereoset_bias end to end through lm-eval: structure, metrics recomputed by hand from the logged
scores, the masked-LM option, batch invariance, and one invocation with every bias benchmark."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.harness import evaluate, metric, our_tasks
from fixtures.reference_scoring import causal_reference, pll_reference, target_word_reference
from fixtures.stereoset_seat import STEREOSET_ROWS
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

pytestmark = pytest.mark.usefixtures("single_thread")
SPLITS = ("intrasentence", "intersentence")
DOMAINS = ("gender", "profession", "race", "religion")
METRICS = ("ss", "lms", "icat", "ss_micro", "lms_micro", "icat_micro", "ss_ci_low", "ss_ci_high")


def clusters(results, prefix="stereoset_bias_"):
    """(target, scores of stereotype / anti-stereotype / unrelated) of every logged cluster
    of the tasks whose name starts with ``prefix``."""
    out = []
    for task, samples in results["samples"].items():
        if task.startswith(prefix):
            out += [(s["doc"]["target"], [float(r) for r in s["filtered_resps"]]) for s in samples]
    return out


def by_hand(scored) -> dict[str, float]:
    """Nadeem et al.'s definitions, written out again."""
    per_term = {}
    for target, (stereo, anti, unrelated) in scored:
        pro, related, total = per_term.get(target, (0, 0, 0))
        per_term[target] = (pro + (stereo > anti), related + (stereo > unrelated) + (anti > unrelated), total + 1)
    ss = sum(100 * p / n for p, _, n in per_term.values()) / len(per_term)
    lms = sum(100 * r / (2 * n) for _, r, n in per_term.values()) / len(per_term)
    n = sum(n for _, _, n in per_term.values())
    ss_micro = 100 * sum(p for p, _, _ in per_term.values()) / n
    lms_micro = 100 * sum(r for _, r, _ in per_term.values()) / (2 * n)
    return {
        "ss": ss,
        "lms": lms,
        "icat": lms * min(ss, 100 - ss) / 50,
        "ss_micro": ss_micro,
        "lms_micro": lms_micro,
        "icat_micro": lms_micro * min(ss_micro, 100 - ss_micro) / 50,
    }


def test_tasks_groups_and_metrics_by_hand(tiny_gpt_neox_dir, data_env, task_manager):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["stereoset_bias"], task_manager=task_manager)
    groups = results["group_subtasks"]
    assert groups["stereoset_bias"] == ["stereoset_bias_intrasentence", "stereoset_bias_intersentence"]
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    for task, samples in results["samples"].items():  # the logged scores, against the one-item fp64 reference
        for sample in samples:
            expected = [causal_reference(model, tokenizer, *a[:3]) for a in sample["arguments"]]
            assert [float(r) for r in sample["filtered_resps"]] == pytest.approx(expected, abs=1e-5), task
    for split in SPLITS:
        assert groups[f"stereoset_bias_{split}"] == [f"stereoset_bias_{split}_{d}" for d in DOMAINS]
        for domain in DOMAINS:
            task = f"stereoset_bias_{split}_{domain}"
            rows = [r for r in STEREOSET_ROWS if r[0] == split and r[1] == domain]
            assert [s["doc"]["target"] for s in results["samples"][task]] == [r[2] for r in rows]
            for name, value in by_hand(clusters(results, task)).items():
                assert metric(results, task, name) == pytest.approx(value, abs=1e-9), (task, name)
    for group in ("stereoset_bias_intrasentence", "stereoset_bias_intersentence", "stereoset_bias"):
        for name, value in by_hand(clusters(results, group)).items():
            assert metric(results, group, name) == pytest.approx(value, abs=1e-9), (group, name)
        low, ss, high = (metric(results, group, name) for name in ("ss_ci_low", "ss", "ss_ci_high"))
        assert low <= ss <= high
    # a term with one cluster ("teacher") counts as much as "nurse" with two
    assert len([r for r in STEREOSET_ROWS if r[2] == "teacher"]) == 1


def test_group_icat_is_not_a_mean_of_subtask_icats(tiny_gpt_neox_dir, data_env, task_manager):
    results = evaluate(
        "quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["stereoset_bias_intrasentence"], task_manager=task_manager
    )
    group = metric(results, "stereoset_bias_intrasentence", "icat")
    lms, ss = (metric(results, "stereoset_bias_intrasentence", name) for name in ("lms", "ss"))
    assert group == pytest.approx(lms * min(ss, 100 - ss) / 50, abs=1e-9)


def test_masked_lm_and_the_pll_option(tiny_bert_dir, data_env):
    lm = QuantizedHFLM(pretrained=tiny_bert_dir, device="cpu", batch_size=4)
    model, tokenizer = (
        AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_bert_dir),
    )
    for option in ("target_word", "pll"):
        results = evaluate(
            lm, None, ["stereoset_bias_intrasentence_race"], task_manager=our_tasks({"stereoset_mlm_score": option})
        )
        samples = results["samples"]["stereoset_bias_intrasentence_race"]
        assert {s["doc"]["mlm_score"] for s in samples} == {option}
        for sample in samples:  # against one-item fp64 references written from bias-bench's description
            reference = (
                target_word_reference
                if option == "target_word"
                else lambda m, t, context, sentence: pll_reference(m, t, sentence)
            )
            expected = [reference(model, tokenizer, a[1], a[2]) for a in sample["arguments"]]
            assert [float(r) for r in sample["filtered_resps"]] == pytest.approx(expected, rel=1e-6, abs=1e-5)
            if option == "target_word":
                assert all(0 < float(r) < 1 for r in sample["filtered_resps"])  # mean probabilities
            else:
                assert all(float(r) < 0 for r in sample["filtered_resps"])  # summed log-probabilities


def test_unknown_mlm_score_is_refused(data_env):
    with pytest.raises(ValueError, match="Unknown StereoSet masked-LM score 'sum'.*target_word.*pll"):
        our_tasks({"stereoset_mlm_score": "sum"}).load(["stereoset_bias_intrasentence_race"])


@pytest.mark.parametrize("quantization", ["none", "dynamic_int8"])
def test_results_do_not_depend_on_batch_size(tiny_gpt_neox_dir, data_env, task_manager, quantization):
    runs = {
        b: evaluate(
            "quantized_hf",
            f"pretrained={tiny_gpt_neox_dir},quantization={quantization}",
            ["stereoset_bias"],
            batch_size=b,
            task_manager=task_manager,
        )
        for b in (1, 8, 32)
    }
    for batch_size in (8, 32):
        assert clusters(runs[batch_size]) == [(t, pytest.approx(s, abs=1e-5)) for t, s in clusters(runs[1])]
        for group in ("stereoset_bias", "stereoset_bias_intrasentence", "stereoset_bias_intersentence"):
            for name in METRICS:
                assert metric(runs[batch_size], group, name) == pytest.approx(metric(runs[1], group, name))


def test_stock_model_is_refused_up_front(tiny_gpt_neox_dir, data_env, task_manager):
    with pytest.raises(ValueError, match=r"stereoset_bias_intersentence_race.*'stereoset_score'.*HFLM.*quantized_hf"):
        evaluate(
            "hf", f"pretrained={tiny_gpt_neox_dir}", ["stereoset_bias_intersentence_race"], task_manager=task_manager
        )


def test_one_invocation_reports_every_bias_benchmark(tiny_bert_dir, data_env, task_manager):
    """The study's bias benchmarks next to each other in one run, into one results JSON."""
    from lm_eval.utils import handle_non_serializable, make_table

    results = evaluate(
        "quantized_hf",
        f"pretrained={tiny_bert_dir},quantization=dynamic_int8",
        ["crows_pairs_bias", "stereoset_bias", "seat_bias"],
        batch_size=8,
        task_manager=task_manager,
    )
    assert results["config"]["quantization"]["method"] == "dynamic_int8"
    groups = json.loads(json.dumps(results, default=handle_non_serializable))["groups"]
    assert {"crows_pairs_bias", "stereoset_bias", "seat_bias"} <= set(groups)
    # each benchmark's headline number, recomputed from its own logged samples
    assert groups["stereoset_bias"]["icat,none"] == pytest.approx(by_hand(clusters(results))["icat"], abs=1e-9)
    seat = [s for task, samples in results["samples"].items() if task.startswith("seat_bias_") for s in samples]
    seat_sizes = [
        abs(metric(results, task, "effect_size")) for task in results["samples"] if task.startswith("seat_bias_")
    ]
    assert len(seat) == len(seat_sizes) == 17
    assert groups["seat_bias"]["abs_effect_size,none"] == pytest.approx(sum(seat_sizes) / 17, abs=1e-9)
    crows = [s for task, samples in results["samples"].items() if task.startswith("crows_pairs_bias_") for s in samples]
    prefers = [s["sent_more_score"] > s["sent_less_score"] for s in crows]
    assert groups["crows_pairs_bias"]["stereotype_score,none"] == pytest.approx(
        100 * sum(prefers) / len(prefers), abs=1e-9
    )
    table = make_table(results, "groups")
    assert "icat" in table and "abs_effect_size" in table and "stereotype_score" in table
