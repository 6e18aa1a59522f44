"""BBQ on the authors' files, where present: counts, targets, and a run through the stock `lm_eval` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_bias.data.bbq import available_categories, bbq_file, load_bbq, subtask_name
from lm_eval_bias.metrics.bbq import bbq_metrics

REAL_DATA = Path(os.environ.get("LM_EVAL_BIAS_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
# the released item counts of the categories (Parrish et al. 2022; nyu-mll/BBQ data/)
RELEASED = {
    "Age": 3680,
    "Disability_status": 1556,
    "Nationality": 3080,
    "Physical_appearance": 1576,
    "Religion": 1200,
    "Sexual_orientation": 864,
    "Gender_identity": 5672,
    "Race_ethnicity": 6880,
    "Race_x_SES": 11160,
    "Race_x_gender": 15960,
    "SES": 6864,
}

pytestmark = pytest.mark.skipif(
    not (REAL_DATA / "bbq").is_dir(), reason=f"no bbq/ under {REAL_DATA} (set LM_EVAL_BIAS_DATA_DIR to the real data)"
)


def test_released_counts_and_every_item_has_a_target():
    present = available_categories(REAL_DATA)
    assert present
    for category in present:
        docs = load_bbq(bbq_file(category, REAL_DATA))
        assert len(docs) == RELEASED[category]
        assert all(doc["target_loc"] >= 0 for doc in docs), category
        # each question set: four items per (question_index, answer order), both polarities and conditions
        assert {(d["question_polarity"], d["context_condition"]) for d in docs} == {
            (p, c) for p in ("neg", "nonneg") for c in ("ambig", "disambig")
        }


def test_lm_eval_cli_with_a_limit(tiny_gpt_neox_dir, tmp_path):
    tasks = [subtask_name(c) for c in available_categories(REAL_DATA)][:2]
    env = {**os.environ, "LM_EVAL_BIAS_DATA_DIR": str(REAL_DATA), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "quantized_hf",
        "--model_args",
        # the tiny model's context is 128 tokens and BBQ prompts run longer: score their last tokens
        f"pretrained={tiny_gpt_neox_dir},long_inputs=truncate",
        "--tasks",
        ",".join(tasks),
        "--limit",
        "24",
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--output_path",
        str(tmp_path),
        "--log_samples",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())
    for task in tasks:
        samples = [json.loads(line) for line in next(tmp_path.rglob(f"samples_{task}_*.jsonl")).open()]
        assert len(samples) == 24
        want = bbq_metrics([tuple(s["acc"]) for s in samples])
        for name in ("acc_ambig", "acc_disambig", "bias_ambig", "bias_disambig"):
            got = results["results"][task][f"{name},none"]
            assert got == pytest.approx(want[name]) or (got != got and want[name] != want[name])
