"""crows_pairs_bias end to end through lm-eval, against independent computations."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.harness import evaluate, metric, sample_scores
from fixtures.reference_scoring import reference_causal_logprob, reference_pll

SUBTASK = "crows_pairs_bias_{}"
BIAS_TASKS = [
    "race_color",
    "gender",
    "socioeconomic",
    "nationality",
    "religion",
    "age",
    "sexual_orientation",
    "physical_appearance",
    "disability",
]


@pytest.fixture
def data_dir(crows_pairs_fixture_csv, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    return Path(crows_pairs_fixture_csv)


def fixture_pairs(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "crows_pairs" / "crows_pairs_anonymized.csv")


def expected_causal_scores(model_dir: str, pairs: pd.DataFrame, mean: bool = True) -> list[tuple[float, float]]:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    scores = []
    for more, less in zip(pairs["sent_more"], pairs["sent_less"]):
        pair = []
        for sentence in (more, less):
            ids = tokenizer.encode(sentence, add_special_tokens=False)
            total, _ = reference_causal_logprob(model, [prefix], ids)
            pair.append(total / len(ids) if mean else total)
        scores.append(tuple(pair))
    return scores


def percent(flags) -> float:
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags)


def test_group_metrics_match_independent_scores(tiny_gpt_neox_dir, data_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias"])
    pairs = fixture_pairs(data_dir)
    expected = expected_causal_scores(tiny_gpt_neox_dir, pairs)
    prefers = [more > less for more, less in expected]
    assert metric(results, "crows_pairs_bias", "stereotype_score") == pytest.approx(percent(prefers), abs=1e-9)
    diffs = [more - less for more, less in expected]
    assert metric(results, "crows_pairs_bias", "likelihood_diff") == pytest.approx(sum(diffs) / len(diffs), abs=1e-5)
    stereo = [p for p, d in zip(prefers, pairs["stereo_antistereo"]) if d == "stereo"]
    assert metric(results, "crows_pairs_bias", "stereo_score") == pytest.approx(percent(stereo), abs=1e-9)
    antistereo = [p for p, d in zip(prefers, pairs["stereo_antistereo"]) if d == "antistereo"]
    assert metric(results, "crows_pairs_bias", "antistereo_score") == pytest.approx(percent(antistereo), abs=1e-9)
    stderr = results["results"]["crows_pairs_bias"]["stereotype_score_stderr,none"]
    p, n = percent(prefers), len(prefers)
    items = [100.0 if x else 0.0 for x in prefers]
    sample_std = math.sqrt(sum((x - p) ** 2 for x in items) / (n - 1))
    assert stderr == pytest.approx(sample_std / math.sqrt(n), abs=1e-9)


def test_subtasks_split_by_bias_type(tiny_gpt_neox_dir, data_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias"])
    pairs = fixture_pairs(data_dir)
    counts = pairs["bias_type"].str.replace("-", "_").value_counts()
    for bias_type, count in counts.items():
        assert len(results["samples"][SUBTASK.format(bias_type)]) == count
    assert set(results["group_subtasks"]["crows_pairs_bias"]) == {SUBTASK.format(b) for b in BIAS_TASKS}


def test_stock_hf_gives_the_same_scores(tiny_gpt_neox_dir, data_dir):
    ours = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir},quantization=none", ["crows_pairs_bias_gender"])
    stock = evaluate("hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias_gender"])
    task = "crows_pairs_bias_gender"
    ours_scores, stock_scores = sample_scores(ours, task), sample_scores(stock, task)
    assert ours_scores.keys() == stock_scores.keys() and ours_scores
    for doc_id, (more, less) in ours_scores.items():
        assert more == pytest.approx(stock_scores[doc_id][0], abs=1e-5)
        assert less == pytest.approx(stock_scores[doc_id][1], abs=1e-5)


def test_summed_sentence_scores_are_selectable(tiny_gpt2_dir, data_dir):
    results = evaluate(
        "quantized_hf", f"pretrained={tiny_gpt2_dir}", ["crows_pairs_bias_gender"], metadata={"sentence_score": "sum"}
    )
    pairs = fixture_pairs(data_dir)
    gender = pairs[pairs["bias_type"] == "gender"].reset_index(drop=True)
    expected = expected_causal_scores(tiny_gpt2_dir, gender, mean=False)
    for doc_id, (more, less) in sample_scores(results, "crows_pairs_bias_gender").items():
        assert (more, less) == pytest.approx(expected[doc_id], abs=1e-5)


@pytest.mark.parametrize("quantization", ["none", "dynamic_int8"])
def test_batch_invariance(tiny_gpt_neox_dir, data_dir, quantization):
    runs = {
        batch_size: evaluate(
            "quantized_hf",
            f"pretrained={tiny_gpt_neox_dir},quantization={quantization}",
            ["crows_pairs_bias"],
            batch_size=batch_size,
        )
        for batch_size in (1, 8, 32)
    }
    reference = runs[1]
    for batch_size, results in runs.items():
        for task in reference["samples"]:
            for doc_id, scores in sample_scores(reference, task).items():
                assert sample_scores(results, task)[doc_id] == pytest.approx(scores, abs=1e-5), (batch_size, task)
        for key, value in reference["results"]["crows_pairs_bias"].items():
            if isinstance(value, float) and not math.isnan(value):
                assert results["results"]["crows_pairs_bias"][key] == pytest.approx(value, abs=1e-5), key


@pytest.mark.parametrize("variant", ["shared", "modified"])
def test_masked_lm_pseudo_log_likelihood(tiny_bert_dir, data_dir, variant):
    results = evaluate("quantized_hf", f"pretrained={tiny_bert_dir},mlm_score={variant}", ["crows_pairs_bias_gender"])
    assert results["config"]["backend"] == "masked"
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    pairs = fixture_pairs(data_dir)
    gender = pairs[pairs["bias_type"] == "gender"].reset_index(drop=True)
    for doc_id, (more, less) in sample_scores(results, "crows_pairs_bias_gender").items():
        expected = reference_pll(model, tokenizer, gender["sent_more"][doc_id], gender["sent_less"][doc_id], variant)
        assert (more, less) == pytest.approx(expected, abs=1e-5)


def test_results_config_records_compression(tiny_gpt_neox_dir, data_dir):
    results = evaluate(
        "quantized_hf", f"pretrained={tiny_gpt_neox_dir},quantization=dynamic_int8", ["crows_pairs_bias_age"]
    )
    config = results["config"]
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir)
    record = config["quantization"]
    assert record["method"] == "dynamic_int8" and record["label"] == "dynamic_int8" and record["weight_bits"] == 8
    assert record["model_bytes_before"] == 4 * sum(p.numel() for p in model.parameters())
    assert 0 < record["model_bytes_after"] < record["model_bytes_before"]


def test_cli_run_writes_results_and_samples(tiny_gpt_neox_dir, data_dir, tmp_path):
    output = tmp_path / "out"
    command = [
        "lm_eval",
        "--model",
        "quantized_hf",
        "--model_args",
        f"pretrained={tiny_gpt_neox_dir},quantization=dynamic_int8",
        "--tasks",
        "crows_pairs_bias",
        "--device",
        "cpu",
        "--batch_size",
        "4",
        "--output_path",
        str(output),
        "--log_samples",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ)
    results_file = next(output.rglob("results_*.json"))
    results = json.loads(results_file.read_text())
    assert results["config"]["quantization"]["method"] == "dynamic_int8"
    assert "stereotype_score,none" in results["results"]["crows_pairs_bias"]
    samples = [json.loads(line) for f in output.rglob("samples_crows_pairs_bias_gender_*.jsonl") for line in f.open()]
    assert samples and all({"sent_more_score", "sent_less_score"} <= s.keys() for s in samples)


def test_bad_data_fails_without_result_file(tiny_gpt_neox_dir, tmp_path, monkeypatch):
    (tmp_path / "data" / "crows_pairs").mkdir(parents=True)
    (tmp_path / "data" / "crows_pairs" / "crows_pairs_anonymized.csv").write_text(
        ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"
        "0,A man cried.,A woman cried.,stereo,weather,[],a0,[]\n"
    )
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path / "data"))
    output = tmp_path / "out"
    command = [
        "lm_eval",
        "--model",
        "quantized_hf",
        "--model_args",
        f"pretrained={tiny_gpt_neox_dir}",
        "--tasks",
        "crows_pairs_bias",
        "--device",
        "cpu",
        "--output_path",
        str(output),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    assert finished.returncode != 0
    assert "weather" in finished.stderr and "race-color" in finished.stderr
    assert not list(output.rglob("*.json")) if output.exists() else True


def test_unknown_quantization_names_the_choices(tiny_gpt_neox_dir, data_dir):
    with pytest.raises(ValueError, match="int3.*none, fp16, bf16, dynamic_int8, bnb_int8, bnb_nf4, bnb_fp4"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir},quantization=int3", ["crows_pairs_bias_age"])


def test_checkpoint_without_lm_head_is_refused(tiny_bert_dir, tmp_path):
    from transformers import BertModel

    from lm_eval_bias.model_wrappers.loading import ArchitectureMismatchError
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    body_only = tmp_path / "bert_body"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(body_only)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(body_only)
    config = json.loads((body_only / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]
    (body_only / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArchitectureMismatchError, match="newly initialised"):
        QuantizedHFLM(pretrained=str(body_only), device="cpu")
