"""Pruning through lm_eval: each method runs crows_pairs_bias end to end and the results JSON records
the method, its settings and the measured sparsity."""

from __future__ import annotations

import json
import math

import pytest

from fixtures.corpus import write_calibration_jsonl
from fixtures.harness import evaluate, metric, our_tasks, sample_scores

TASK = "crows_pairs_bias"


@pytest.fixture(scope="module")
def task_manager():
    return our_tasks()


@pytest.fixture
def setup(crows_pairs_fixture_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))
    return write_calibration_jsonl(tmp_path / "neutral.jsonl")


@pytest.mark.parametrize(
    "method, options, target",
    [
        ("magnitude", "structure=2:4", 0.5),
        ("wanda", "sparsity=0.5,calibration_samples=8", 0.5),
        ("sparsegpt", "sparsity=0.6,calibration_samples=8", 0.6),
    ],
)
def test_pruned_model_through_the_harness(tiny_llama_dir, setup, task_manager, method, options, target):
    calibration = "" if method == "magnitude" else f",calibration={setup}"
    dense = evaluate("quantized_hf", f"pretrained={tiny_llama_dir}", [TASK], task_manager=task_manager)
    pruned = evaluate(
        "quantized_hf",
        f"pretrained={tiny_llama_dir},quantization={method},{options}{calibration}",
        [TASK],
        task_manager=task_manager,
    )
    record = json.loads(json.dumps(pruned["config"]["quantization"]))  # what the results JSON holds
    assert record["method"] == method
    assert record["details"]["target_sparsity"] == target
    assert abs(record["details"]["measured_sparsity_pruned_layers"] - target) <= 0.01
    assert 0 < record["details"]["measured_sparsity_model"] < record["details"]["measured_sparsity_pruned_layers"]
    assert record["details"]["cache"] == "miss"
    for subtask in dense["samples"]:  # every pair is scored by the pruned model
        before, after = sample_scores(dense, subtask), sample_scores(pruned, subtask)
        assert all(after[d] != before[d] and all(map(math.isfinite, after[d])) for d in before)
    assert math.isfinite(metric(pruned, TASK, "stereotype_score"))
