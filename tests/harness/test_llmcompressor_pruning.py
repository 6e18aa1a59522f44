"""implementation=llmcompressor: Wanda and SparseGPT by llmcompressor's code on the same layers and
calibration tokens, checked against ours (a second implementation of each), and through lm_eval.

Runs where the [llmcompressor] extra is installed (it pins transformers 5.17); skipped elsewhere."""

from __future__ import annotations

import json

import pytest
import torch

from fixtures.corpus import write_calibration_jsonl
from fixtures.harness import evaluate, our_tasks, sample_scores
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

pytest.importorskip("llmcompressor")


@pytest.fixture
def calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))
    return write_calibration_jsonl(tmp_path / "neutral.jsonl")


def pruned_weights(lm) -> dict[str, torch.Tensor]:
    return {
        name: module.weight.detach()
        for name, module in lm.model.named_modules()
        if isinstance(module, torch.nn.Linear) and name != "lm_head"
    }


def both(model_dir, calibration, method, **options):
    common = dict(
        pretrained=model_dir, quantization=method, calibration=calibration, calibration_samples=8, device="cpu"
    )
    return QuantizedHFLM(**common, **options), QuantizedHFLM(**common, implementation="llmcompressor", **options)


@pytest.mark.parametrize("options", [{"sparsity": 0.5}, {"structure": "2:4"}])
def test_wanda_by_llmcompressor_prunes_exactly_as_ours(tiny_llama_dir, calibration, options):
    ours, theirs = both(tiny_llama_dir, calibration, "wanda", **options)
    mine, other = pruned_weights(ours), pruned_weights(theirs)
    assert mine.keys() == other.keys() and len(mine) == 14
    for name in mine:  # same inputs, same |W| * ||X|| per output row: the same weights survive
        assert torch.equal(mine[name], other[name]), name
    details = theirs.get_model_info()["quantization"]["details"]
    assert (
        details["implementation"].startswith("llmcompressor ")
        and "implementation" not in ours.get_model_info()["quantization"]["details"]
    )
    assert details["measured_sparsity_pruned_layers"] == 0.5
    assert details["checkpoint"] != ours.get_model_info()["quantization"]["details"]["checkpoint"]  # cached apart


def test_sparsegpt_by_llmcompressor_agrees_with_ours(tiny_llama_dir, calibration):
    ours, theirs = both(tiny_llama_dir, calibration, "sparsegpt", structure="2:4")
    for name, weight in pruned_weights(ours).items():  # the same OBS updates, to float rounding
        assert torch.allclose(weight, pruned_weights(theirs)[name], atol=1e-5), name
    ours, theirs = both(tiny_llama_dir, calibration, "sparsegpt", sparsity=0.5)
    mine, other = pruned_weights(ours), pruned_weights(theirs)
    # unstructured: ours zeroes exactly round(s x weights) per block of columns, llmcompressor those
    # under a threshold, so the masks differ only at ties
    agree = sum(int(((mine[n] == 0) == (other[n] == 0)).sum()) for n in mine) / sum(w.numel() for w in mine.values())
    assert agree > 0.99
    assert abs(theirs.get_model_info()["quantization"]["details"]["measured_sparsity_pruned_layers"] - 0.5) <= 0.01


def test_llmcompressor_wanda_through_the_harness(tiny_llama_dir, calibration, crows_pairs_fixture_csv, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    args = (
        f"pretrained={tiny_llama_dir},quantization=wanda,sparsity=0.5,calibration={calibration},calibration_samples=8"
    )
    ours = evaluate("quantized_hf", args, ["crows_pairs_bias"], task_manager=our_tasks())
    theirs = evaluate(
        "quantized_hf", args + ",implementation=llmcompressor", ["crows_pairs_bias"], task_manager=our_tasks()
    )
    record = json.loads(json.dumps(theirs["config"]["quantization"]))
    assert record["settings"]["implementation"] == "llmcompressor" and "implementation=llmcompressor" in record["label"]
    for subtask in ours["samples"]:  # identical weights, identical scores
        assert sample_scores(theirs, subtask) == sample_scores(ours, subtask)
