"""seat_bias end to end through lm-eval, against a plain implementation; the embedding request."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from transformers import AutoModel, AutoTokenizer

from fixtures.harness import evaluate, metric
from fixtures.reference_scoring import reference_embedding, reference_seat
from fixtures.stereoset_seat import seat_test_content
from lm_eval_bias.data.seat import TESTS
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

pytestmark = pytest.mark.usefixtures("single_thread")
ORDER = [name for tests in TESTS.values() for name in tests]  # the fixture's test index order


@pytest.mark.parametrize("model_fixture", ["tiny_gpt_neox_dir", "tiny_bert_dir"])
def test_effect_sizes_and_p_values_match_reference(model_fixture, request, data_env, task_manager):
    folder = request.getfixturevalue(model_fixture)
    results = evaluate("quantized_hf", f"pretrained={folder}", ["seat_bias"], task_manager=task_manager)
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)

    def embed(sentence):
        return reference_embedding(model, tokenizer, sentence)

    sizes = {}
    for index, name in enumerate(ORDER):
        size, p = reference_seat(seat_test_content(index), embed)
        task = f"seat_bias_{name}"
        assert metric(results, task, "effect_size") == pytest.approx(size, abs=1e-6), task
        assert metric(results, task, "p_value") == pytest.approx(p, abs=1e-12), task
        assert metric(results, task, "abs_effect_size") == pytest.approx(abs(size), abs=1e-6)
        sizes[name] = abs(size)
    for bias, tests in TESTS.items():
        expected = sum(sizes[name] for name in tests) / len(tests)
        assert metric(results, f"seat_bias_{bias}", "abs_effect_size") == pytest.approx(expected, abs=1e-6)
    assert metric(results, "seat_bias", "abs_effect_size") == pytest.approx(sum(sizes.values()) / 17, abs=1e-6)
    assert set(results["group_subtasks"]["seat_bias"]) == {"seat_bias_gender", "seat_bias_race", "seat_bias_religion"}


@pytest.mark.parametrize("quantization", ["none", "dynamic_int8"])
@pytest.mark.parametrize("model_fixture", ["tiny_gpt2_dir", "tiny_roberta_dir"])
def test_embeddings_are_batch_invariant(model_fixture, quantization, request):
    lm = QuantizedHFLM(
        pretrained=request.getfixturevalue(model_fixture), device="cpu", quantization=quantization, batch_size=1
    )
    sentences = [s for i in range(4) for role in seat_test_content(i).values() for s in role["examples"]]
    requests = [SimpleNamespace(args=(s,)) for s in sentences]
    vectors = {}
    for batch_size in (1, 8, 32):
        lm.batch_size_per_gpu = batch_size
        vectors[batch_size] = np.stack(lm.sentence_embedding(requests, disable_tqdm=True))
    assert np.allclose(np.linalg.norm(vectors[1], axis=1), 1.0)
    for batch_size in (8, 32):
        assert np.abs(vectors[batch_size] - vectors[1]).max() < 1e-5, batch_size


def test_results_do_not_depend_on_batch_size_under_dynamic_int8(tiny_gpt_neox_dir, data_env, task_manager):
    runs = [
        evaluate(
            "quantized_hf",
            f"pretrained={tiny_gpt_neox_dir},quantization=dynamic_int8",
            ["seat_bias_gender"],
            batch_size=batch_size,
            task_manager=task_manager,
        )
        for batch_size in (1, 32)
    ]
    for task in TESTS["gender"]:
        for name in ("effect_size", "p_value"):
            values = [metric(run, f"seat_bias_{task}", name) for run in runs]
            assert values[1] == pytest.approx(values[0], abs=1e-5), (task, name)


def test_logged_samples_stay_small(tiny_gpt2_dir, data_env, task_manager):
    import json

    from lm_eval.utils import handle_non_serializable

    results = evaluate("quantized_hf", f"pretrained={tiny_gpt2_dir}", ["seat_bias_weat6"], task_manager=task_manager)
    sample = results["samples"]["seat_bias_weat6"][0]
    assert len(sample["resps"]) == sum(len(sample["doc"][role]) for role in ("targ1", "targ2", "attr1", "attr2"))
    text = json.dumps(sample, default=handle_non_serializable)
    assert "<sentence embedding: 32 dimensions>" in text and len(text) < 10_000


def test_stock_model_fails_before_scoring_anything(tiny_gpt_neox_dir, data_env, task_manager, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    calls = []
    monkeypatch.setattr(HFLM, "loglikelihood", lambda self, requests, **kw: calls.append(len(requests)))
    with pytest.raises(ValueError) as err:
        evaluate(
            "hf",
            f"pretrained={tiny_gpt_neox_dir}",
            ["crows_pairs_bias_age", "seat_bias_weat6"],
            task_manager=task_manager,
        )
    message = str(err.value)
    assert "seat_bias_weat6" in message and "'sentence_embedding'" in message and "HFLM" in message
    assert "models that implement it: quantized_hf" in message
    assert calls == []  # crows_pairs_bias_age's loglikelihood requests were never run
