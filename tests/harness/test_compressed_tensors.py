"""Checkpoints compressed elsewhere (compressed-tensors, llmcompressor's format) load as they are:
their scores equal those of the same weights dequantized by hand, the record says what they hold,
activation quantization stays batch-invariant, and a compressed checkpoint is never recorded as
uncompressed nor compressed a second time."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from fixtures.compressed_tensors_checkpoint import build
from fixtures.harness import evaluate, our_tasks, sample_scores
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError

pytest.importorskip("compressed_tensors")

TASK = "crows_pairs_bias"
PER_TOKEN_INT8 = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "token", "dynamic": True}


@pytest.fixture(scope="module")
def task_manager():
    return our_tasks()


@pytest.fixture
def crows_data(crows_pairs_fixture_csv, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))


@pytest.fixture(scope="module")
def w4_checkpoint(tiny_llama_dir, tmp_path_factory):
    return build(tiny_llama_dir, tmp_path_factory.mktemp("ct") / "w4a16")


def test_w4_checkpoint_scores_as_its_weights_dequantized_by_hand(
    w4_checkpoint, tiny_llama_dir, tmp_path, crows_data, task_manager
):
    folder, expected = w4_checkpoint
    by_hand = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    with torch.no_grad():
        for name, weight in expected.items():
            by_hand.get_submodule(name).weight.copy_(weight)
    by_hand.save_pretrained(tmp_path / "by_hand")
    (tmp_path / "by_hand").joinpath("tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    (tmp_path / "by_hand").joinpath("tokenizer_config.json").write_bytes(
        (folder / "tokenizer_config.json").read_bytes()
    )

    loaded = evaluate(
        "quantized_hf", f"pretrained={folder},quantization=compressed_tensors", [TASK], task_manager=task_manager
    )
    reference = evaluate("quantized_hf", f"pretrained={tmp_path / 'by_hand'}", [TASK], task_manager=task_manager)
    for subtask in reference["samples"]:
        ours, theirs = sample_scores(loaded, subtask), sample_scores(reference, subtask)
        assert ours.keys() == theirs.keys()
        for doc in ours:
            assert ours[doc] == pytest.approx(theirs[doc], abs=1e-4)

    record = json.loads(json.dumps(loaded["config"]["quantization"]))
    assert record["method"] == "compressed_tensors" and record["settings"] == {}
    assert record["weight_bits"] == 4
    # stored per weight: a 4-bit code, and one fp32 scale per group of 16 weights
    assert record["effective_bits_per_weight"] == pytest.approx(4 + 32 / 16)
    assert record["model_bytes_before"] == 4 * by_hand.num_parameters()
    details = record["details"]
    assert details["quantized_layers"] == 2 * 7  # q, k, v, o, gate, up, down per block; not the LM head
    assert details["schemes"][0]["weights"] == {
        "num_bits": 4,
        "type": "int",
        "strategy": "group",
        "group_size": 16,
        "symmetric": True,
        "dynamic": False,
    }
    assert details["schemes"][0]["input_activations"] is None and details["ignore"] == ["lm_head"]


def test_per_token_activation_quantization_is_batch_invariant_and_active(tiny_llama_dir, tmp_path):
    w8a8, _ = build(tiny_llama_dir, tmp_path / "w8a8", bits=8, group_size=None, activations=PER_TOKEN_INT8)
    w8, _ = build(tiny_llama_dir, tmp_path / "w8", bits=8, group_size=None)
    requests = [("", " ".join(["the doctor said she was tired"] * n)) for n in (1, 2, 4)] + [("the nurse", " was kind")]

    def scores(folder, batch_size):
        lm = QuantizedHFLM(
            pretrained=str(folder), quantization="compressed_tensors", device="cpu", batch_size=batch_size
        )
        return lm, [
            lm._score_tokens([lm._encode_request(*r) for r in requests], True)[i].logprob for i in range(len(requests))
        ]

    lm, alone = scores(w8a8, 1)
    _, together = scores(w8a8, 8)
    assert together == pytest.approx(alone, abs=1e-5)
    _, weight_only = scores(w8, 8)
    assert max(abs(a - b) for a, b in zip(alone, weight_only)) > 1e-4  # the activations are quantized
    scheme = lm.get_model_info()["quantization"]["details"]["schemes"][0]
    assert scheme["input_activations"] == {
        "num_bits": 8,
        "type": "int",
        "strategy": "token",
        "symmetric": True,
        "dynamic": True,
    }
    # int8 codes, one fp32 scale per output row of `columns` weights: 8 + 32 / columns bits per weight
    layers = [m for n, m in lm.model.named_modules() if getattr(m, "quantization_scheme", None) is not None]
    weights = sum(m.weight.numel() for m in layers)
    stored = sum(m.weight.numel() * 8 + m.weight.shape[0] * 32 for m in layers)
    assert lm.get_model_info()["quantization"]["effective_bits_per_weight"] == pytest.approx(stored / weights, abs=1e-4)


def test_a_batch_wide_activation_scale_is_refused(tiny_llama_dir, tmp_path):
    per_tensor = {**PER_TOKEN_INT8, "strategy": "tensor"}
    folder, _ = build(tiny_llama_dir, tmp_path / "w8a8_tensor", bits=8, group_size=None, activations=per_tensor)
    with pytest.raises(QuantizationError, match="one dynamic scale per tensor.*move with batch size"):
        QuantizedHFLM(pretrained=str(folder), quantization="compressed_tensors", device="cpu")


def test_2_4_sparse_checkpoint_records_its_measured_sparsity(tiny_llama_dir, tmp_path):
    folder, expected = build(tiny_llama_dir, tmp_path / "sparse", sparse_2_4=True)
    lm = QuantizedHFLM(pretrained=str(folder), quantization="compressed_tensors", device="cpu")
    details = lm.get_model_info()["quantization"]["details"]
    assert details["sparsity_structure"] == "2:4" and details["pruned_layers"] == 14
    zeros = sum(int((w == 0).sum()) for w in expected.values())
    assert details["measured_sparsity_pruned_layers"] == round(zeros / sum(w.numel() for w in expected.values()), 6)
    assert details["measured_sparsity_pruned_layers"] >= 0.5
    for name in expected:  # every group of 4 input weights keeps at least 2 zeros
        groups = lm.model.get_submodule(name).weight.reshape(-1, 4)
        assert bool(((groups == 0).sum(dim=1) >= 2).all())


@pytest.mark.parametrize(
    "quantization, consequence",
    [
        ("none", "the results would call it uncompressed"),
        ("rtn", "quantization=rtn would compress it a second time"),
    ],
)
def test_a_compressed_checkpoint_is_loaded_only_as_what_it_is(w4_checkpoint, quantization, consequence):
    folder, _ = w4_checkpoint
    with pytest.raises(QuantizationError) as error:
        QuantizedHFLM(pretrained=str(folder), quantization=quantization, device="cpu")
    message = str(error.value)
    assert "'compressed-tensors' quantization_config" in message and consequence in message
    assert "Pass quantization=compressed_tensors" in message


def test_compressed_tensors_needs_such_a_checkpoint(tiny_llama_dir):
    with pytest.raises(QuantizationError, match="holds no quantization_config.*lm-eval-bias methods"):
        QuantizedHFLM(pretrained=tiny_llama_dir, quantization="compressed_tensors", device="cpu")


def test_compressed_tensors_takes_no_options():
    from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer

    with pytest.raises(QuantizationError, match="compressed_tensors does not take bits"):
        get_quantizer("compressed_tensors", bits=4)


# --- AutoAWQ checkpoints ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def autoawq_checkpoint(tiny_llama_dir, tmp_path_factory):
    pytest.importorskip("gptqmodel")
    from fixtures.autoawq_checkpoint import build as build_autoawq

    return build_autoawq(tiny_llama_dir, tmp_path_factory.mktemp("awq") / "autoawq")


def test_autoawq_checkpoint_loads_as_it_is(autoawq_checkpoint, tiny_llama_dir, crows_data, task_manager):
    folder, expected = autoawq_checkpoint
    lm = QuantizedHFLM(pretrained=str(folder), quantization="awq", device="cpu", batch_size=4)
    by_hand = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, weight in expected.items():
            by_hand.get_submodule(name).weight.copy_(weight)
        tokens = torch.tensor([[5, 17, 42, 99, 3, 250, 7, 11], [8, 9, 10, 11, 12, 13, 14, 15]])
        unquantized = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()(tokens).logits
        logits, reference = lm.model(tokens).logits, by_hand(tokens).logits
        # torch's CPU int4 kernel holds each scale and zero point in bf16 (8 significant bits), so the
        # logits match the weights dequantized by hand to ~1e-3, far closer than to the unquantized model
        off_by_hand, off_unquantized = (logits - reference).abs().max(), (logits - unquantized).abs().max()
        assert off_by_hand < 5e-3 and off_by_hand < off_unquantized / 5
        assert torch.equal(lm.model(tokens[:1]).logits[0], lm.model(tokens).logits[0])  # batch-invariant
    record = lm.get_model_info()["quantization"]
    assert record["method"] == "awq" and record["weight_bits"] == 4
    assert record["settings"]["group_size"] == 32 and record["details"]["cache"] == "AutoAWQ checkpoint"
    assert (
        record["details"]["quantized_layers"] == 14 and "scale_exponents" not in record["details"]
    )  # nothing searched
    # stored per weight: a 4-bit code, plus per group of 32 an fp16 scale and a 4-bit zero point
    assert record["effective_bits_per_weight"] == pytest.approx(4 + (16 + 4) / 32)
    assert record["model_bytes_before"] == 4 * by_hand.num_parameters()

    results = evaluate("quantized_hf", f"pretrained={folder},quantization=awq", [TASK], task_manager=task_manager)
    assert json.loads(json.dumps(results["config"]["quantization"]))["details"]["kernel"] == record["details"]["kernel"]


def test_autoawq_checkpoint_refuses_contradicting_options(autoawq_checkpoint):
    folder, _ = autoawq_checkpoint
    with pytest.raises(
        QuantizationError, match=r"AWQ checkpoint with other settings: group_size=128 \(checkpoint: 32\)"
    ):
        QuantizedHFLM(pretrained=str(folder), quantization="awq", group_size=128, device="cpu")
    with pytest.raises(QuantizationError, match="'awq' quantization_config.*Pass quantization=awq"):
        QuantizedHFLM(pretrained=str(folder), device="cpu")
