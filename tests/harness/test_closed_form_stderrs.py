"""Every stderr our tasks report through lm-eval is a closed form (or "N/A", as the task config says),
checked against a hand computation from the logged samples, and lm-eval bootstraps none of them."""

from __future__ import annotations

import json
import math

import pytest

from fixtures.bbq import CATEGORIES, items
from fixtures.harness import evaluate, our_tasks
from lm_eval_bias.data.bbq import subtask_name

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def no_bootstrap(monkeypatch):
    """lm-eval's bootstrap fails the test if anything asks for it."""
    import lm_eval.api.metrics

    def refuse(f, xs, iters):
        raise AssertionError(f"lm-eval bootstrapped {getattr(f, '__name__', f)}")

    monkeypatch.setattr(lm_eval.api.metrics, "bootstrap_stderr", refuse)


def proportion_se(flags, scale=100.0) -> float:
    """scale * sqrt(p(1-p)/(n-1)), written out again."""
    n = len(flags)
    if n < 2:
        return math.nan
    p = sum(flags) / n
    return scale * math.sqrt(p * (1 - p) / (n - 1))


def same(got, want) -> bool:
    return (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9)


def check_methods(results, task):
    """The task config's stderr_methods name every metric; "N/A" ones report no number, closed forms
    one (lm-eval reports "N/A" for every metric of a task with a single document)."""
    methods = results["configs"][task]["metadata"]["stderr_methods"]
    single = results["results"][task]["sample_len"] < 2
    for metric, method in methods.items():
        reported = results["results"][task][f"{metric}_stderr,none"]
        assert (reported == "N/A") == (method.startswith("N/A") or single), (task, metric, reported, method)


def test_crows_pairs_stderrs_are_closed_forms(tiny_gpt_neox_dir, crows_pairs_fixture_csv, monkeypatch, no_bootstrap):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    results = evaluate(
        "quantized_hf",
        f"pretrained={tiny_gpt_neox_dir}",
        ["crows_pairs_bias"],
        task_manager=our_tasks(),
    )
    pooled = {"stereotype_score": [], "stereo_score": [], "antistereo_score": []}
    for task, samples in results["samples"].items():
        check_methods(results, task)
        for metric in pooled:
            flags = [s[metric] == 100.0 for s in samples if not math.isnan(s[metric])]
            pooled[metric] += flags
            if len(samples) > 1:
                assert same(results["results"][task][f"{metric}_stderr,none"], proportion_se(flags)), (task, metric)
    group = results["results"]["crows_pairs_bias"]
    for metric, flags in pooled.items():
        assert same(group[f"{metric}_stderr,none"], proportion_se(flags)), metric
    assert group["stereo_pairs,none"] == len(pooled["stereo_score"])


def test_stereoset_stderrs_are_closed_forms(tiny_gpt_neox_dir, data_env, task_manager, no_bootstrap):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["stereoset_bias"], task_manager=task_manager)
    every = []
    for task, samples in results["samples"].items():
        check_methods(results, task)
        scored = [[float(r) for r in s["filtered_resps"]] for s in samples]
        every += scored
        entry = results["results"][task]
        assert same(entry["ss_micro_stderr,none"], proportion_se([st > anti for st, anti, _ in scored])), task
        related = [50.0 * ((st > un) + (anti > un)) for st, anti, un in scored]
        mean = sum(related) / len(related)
        se = math.sqrt(sum((x - mean) ** 2 for x in related) / (len(related) - 1) / len(related))
        assert same(entry["lms_micro_stderr,none"], se), task
    group = results["results"]["stereoset_bias"]
    assert same(group["ss_micro_stderr,none"], proportion_se([st > anti for st, anti, _ in every]))
    assert group["ss_stderr,none"] == group["icat_stderr,none"] == "N/A"


def test_bbq_stderrs_are_closed_forms(tiny_gpt_neox_dir, tmp_path, monkeypatch, no_bootstrap):
    (tmp_path / "bbq").mkdir()
    offline = ("Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation")
    fixture = sorted(CATEGORIES)
    for n, category in enumerate(offline):
        lines = [json.dumps(dict(item, category=category)) for item in items(fixture[n % len(fixture)])]
        (tmp_path / "bbq" / f"{category}.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path))
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["bbq_bias_offline"])
    correct = {"ambig": [], "disambig": []}
    for category in offline:
        task = subtask_name(category)
        check_methods(results, task)
        # the outcome lm-eval logged for the item under every metric: (condition, correct, unknown, biased)
        outcomes = [tuple(s["acc"]) for s in results["samples"][task]]
        mine = {c: [o[1] == 1 for o in outcomes if o[0] == c] for c in correct}
        for condition, flags in mine.items():
            correct[condition] += flags
            got = results["results"][task][f"acc_{condition}_stderr,none"]
            assert same(got, proportion_se(flags, 1.0)), (task, condition)
    group = results["results"]["bbq_bias_offline"]
    assert same(group["acc_stderr,none"], proportion_se(correct["ambig"] + correct["disambig"], 1.0))
    assert same(group["acc_ambig_stderr,none"], proportion_se(correct["ambig"], 1.0))
    assert group["bias_ambig_stderr,none"] == "N/A"


def test_stock_aggregations_keep_lm_evals_stderr():
    """The plugin leaves every aggregation without a closed form of ours to lm-eval."""
    from lm_eval import evaluator_utils
    from lm_eval.api import metrics

    from lm_eval_bias.metrics.stderr import mean_stderr, nanmean

    assert evaluator_utils.stderr_for_metric is metrics.stderr_for_metric  # the wrapper is the one called
    assert metrics.stderr_for_metric(nanmean, 100) is mean_stderr
    assert metrics.stderr_for_metric(nanmean, 0) is None
    assert metrics.stderr_for_metric(metrics.mean, 100) is metrics.mean_stderr
    assert metrics.stderr_for_metric(metrics.nanmean, 100) is not None  # lm-eval's bootstrap, as before
    assert metrics.stderr_for_metric(metrics.nanmean, 100) is not mean_stderr
