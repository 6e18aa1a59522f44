"""quantization=int8_weight_only (torchao), and dynamic_int8's torchao fallback when torch.ao.quantization is gone."""

from __future__ import annotations

import importlib.util
import logging
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.harness import corpus_sentence_scores as sentence_scores
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError

needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")


def _load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _assert_batch_invariant(model, tokenizer, atol: float = 1e-5):
    by_size = {size: sentence_scores(model, tokenizer, batch_size=size) for size in (1, 8, 32)}
    assert torch.allclose(by_size[8], by_size[1], rtol=0, atol=atol)
    assert torch.allclose(by_size[32], by_size[1], rtol=0, atol=atol)


def _hide_module(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda module, *a, **k: None if module == name else real(module, *a, **k)
    )


# --------------------------------------------------------------- int8_weight_only


@needs_torchao
def test_int8_weight_only_close_to_fp32_and_batch_invariant(tiny_gpt_neox_dir):
    reference, tokenizer = _load(tiny_gpt_neox_dir)
    model, _ = _load(tiny_gpt_neox_dir)
    quantizer = get_quantizer("int8_weight_only")
    model = quantizer.postprocess_model(model)
    change = (sentence_scores(model, tokenizer) - sentence_scores(reference, tokenizer)).abs().max().item()
    assert 0 < change < 0.02
    _assert_batch_invariant(model, tokenizer)
    info = quantizer.record().to_dict()
    assert info["method"] == "int8_weight_only" and info["settings"] == {"quantize_lm_head": False}
    assert info["details"]["quantized_layers"] == 8  # 4 per layer, LM head excluded
    # int8 codes + one fp32 scale and one int8 zero point per row; rows are 32 or 64 wide
    assert 8 + 40 / 64 <= info["effective_bits_per_weight"] <= 8 + 40 / 32


@needs_torchao
def test_int8_weight_only_gpt2_conv1d_and_head(tiny_gpt2_dir):
    reference, tokenizer = _load(tiny_gpt2_dir)
    model, _ = _load(tiny_gpt2_dir)
    quantizer = get_quantizer("int8_weight_only", quantize_lm_head="true")
    model = quantizer.postprocess_model(model)
    assert isinstance(model.transformer.h[0].attn.c_attn, torch.nn.Linear)  # Conv1D converted, then quantized
    assert type(model.lm_head.weight).__name__ == "Int8Tensor"
    assert torch.equal(model.get_input_embeddings().weight, reference.get_input_embeddings().weight)
    assert quantizer.details["quantized_layers"] == 2 * 4 + 1
    change = (sentence_scores(model, tokenizer) - sentence_scores(reference, tokenizer)).abs().max().item()
    assert change < 0.05


def test_int8_weight_only_names_the_install_when_torchao_is_missing(monkeypatch):
    _hide_module(monkeypatch, "torchao")
    with pytest.raises(QuantizationError, match=r"torchao.*pip install -c constraints/cpu-torch.txt"):
        get_quantizer("int8_weight_only").validate_environment("cpu")


# --------------------------------------------------------------- dynamic_int8 without torch.ao.quantization


@pytest.fixture
def without_torch_ao(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.ao.quantization", None)  # makes `from torch.ao.quantization import` fail


@needs_torchao
def test_dynamic_int8_falls_back_to_torchao(tiny_gpt_neox_dir, without_torch_ao, caplog):
    reference, tokenizer = _load(tiny_gpt_neox_dir)
    model, _ = _load(tiny_gpt_neox_dir)
    quantizer = get_quantizer("dynamic_int8")
    quantizer.validate_environment("cpu")
    with caplog.at_level(logging.WARNING):
        model = quantizer.postprocess_model(model)
    notices = [r for r in caplog.records if "torch.ao.quantization is not available" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()
    assert quantizer.details["backend"] == "torchao"
    change = (sentence_scores(model, tokenizer) - sentence_scores(reference, tokenizer)).abs().max().item()
    assert 0 < change < 0.1
    # activation rounding amplifies the ~1e-8 fp32 differences of padded attention (see dynamic_int8.py)
    _assert_batch_invariant(model, tokenizer, atol=1e-2)


def test_dynamic_int8_without_torch_ao_or_torchao_names_the_install(without_torch_ao, monkeypatch):
    _hide_module(monkeypatch, "torchao")
    with pytest.raises(QuantizationError, match=r"torchao"):
        get_quantizer("dynamic_int8").validate_environment("cpu")


def test_dynamic_int8_keeps_torch_ao_when_present():
    assert get_quantizer("dynamic_int8").details["backend"] == "torch.ao"
