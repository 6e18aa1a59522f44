"""seat_bias's sampled permutation p-value end to end (the branch every real SEAT test takes: its
sets are too large for all C(2n, n) partitions), against the exact p-value by brute force."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from transformers import AutoModel, AutoTokenizer

from fixtures.corpus import EXTRA_SENTENCES
from fixtures.harness import evaluate, metric, our_tasks
from fixtures.reference_scoring import reference_embedding, reference_seat
from fixtures.stereoset_seat import ATTRIBUTES

pytestmark = pytest.mark.usefixtures("single_thread")
N = 8  # C(16, 8) = 12,870 partitions: brute force is quick, and more than SAMPLES
SAMPLES = 4000


def test_sampled_p_value_is_close_to_the_exact_one(tiny_gpt_neox_dir, bias_data_dir, tmp_path, monkeypatch):
    content = {
        "targ1": {"category": "A", "examples": EXTRA_SENTENCES[:N]},
        "targ2": {"category": "B", "examples": EXTRA_SENTENCES[N : 2 * N]},
        "attr1": {"category": "Good", "examples": ATTRIBUTES[0]},
        "attr2": {"category": "Bad", "examples": ATTRIBUTES[1]},
    }
    data = tmp_path / "data"
    shutil.copytree(bias_data_dir, data)
    (data / "seat" / "sent-weat6.jsonl").write_text(json.dumps(content))
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(data))
    assert math.comb(2 * N, N) > SAMPLES

    results = evaluate(
        "quantized_hf",
        f"pretrained={tiny_gpt_neox_dir}",
        ["seat_bias_weat6"],
        task_manager=our_tasks({"permutation_samples": SAMPLES}),
    )
    got = metric(results, "seat_bias_weat6", "p_value")

    model, tokenizer = (
        AutoModel.from_pretrained(tiny_gpt_neox_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_gpt_neox_dir),
    )
    size, exact = reference_seat(content, lambda sentence: reference_embedding(model, tokenizer, sentence))
    assert metric(results, "seat_bias_weat6", "effect_size") == pytest.approx(size, abs=1e-6)
    assert 0.05 < exact < 0.95  # a p-value the sampling can miss in either direction
    assert got * SAMPLES == pytest.approx(round(got * SAMPLES), abs=1e-6)  # (1 + hits) / SAMPLES: sampled
    assert got * math.comb(2 * N, N) != pytest.approx(round(got * math.comb(2 * N, N)), abs=1e-6)  # not exact
    standard_error = math.sqrt(exact * (1 - exact) / SAMPLES)
    assert got == pytest.approx(exact, abs=5 * standard_error)
