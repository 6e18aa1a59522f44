"""A method added with register_method runs through quantized_hf from --model_args, as one of METHODS does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from lm_eval.api.instance import Instance
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from lm_eval_bias.model_wrappers.quantizers import QuantizationConfig, Quantizer, auto, option, register_method
from lm_eval_bias.model_wrappers.quantizers.config import float_in
from lm_eval_bias.model_wrappers.quantizers.linear_layers import weight_layers

NAME = "test_scaled_hf"
SENTENCES = ["The poor man was lazy.", "Women are bad at driving cars."]


@dataclass
class ScaledConfig(QuantizationConfig):
    factor: float = option(0.5, float_in(-4.0, 4.0), "what every linear weight but the LM head's is multiplied by")


class Scaled(Quantizer):
    config_class = ScaledConfig
    config: ScaledConfig

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        with torch.no_grad():
            for _, _, layer in weight_layers(model, include_lm_head=False):
                layer.weight.mul_(self.config.factor)
        self.details = {"scaled": True}
        return model


@pytest.fixture
def scaled():
    before = dict(auto.METHODS)
    register_method(NAME)(Scaled)
    yield NAME
    auto.METHODS.clear()
    auto.METHODS.update(before)
    auto.quantizer_class.cache_clear()
    auto.quantizer_options.cache_clear()


def test_model_args_reach_the_registered_method_and_scores_follow(scaled, tiny_gpt_neox_dir):
    lm = QuantizedHFLM.create_from_arg_string(
        f"pretrained={tiny_gpt_neox_dir},quantization={scaled},factor=0.5,dtype=float32", {"device": "cpu"}
    )
    record = lm.get_model_info()["quantization"]
    assert {k: record[k] for k in ("method", "label", "settings", "details")} == {
        "method": scaled,
        "label": f"{scaled}(factor=0.5)",
        "settings": {"factor": 0.5},
        "details": {"scaled": True},
    }

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)

    def scores(model):
        return [
            reference_causal_logprob(model, [tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False))[0]
            for s in SENTENCES
        ]

    unscaled = scores(AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval())
    by_hand = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    head = by_hand.get_output_embeddings()
    with torch.no_grad():
        for module in by_hand.modules():
            if isinstance(module, nn.Linear) and module is not head:
                module.weight.mul_(0.5)
    expected = scores(by_hand)
    assert max(abs(a - b) for a, b in zip(expected, unscaled)) > 1e-3  # the scaling shows in the scores
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=("", s), idx=0, metadata=("t", i, 1))
        for i, s in enumerate(SENTENCES)
    ]
    assert [r[0] for r in lm.loglikelihood(requests, disable_tqdm=True)] == pytest.approx(expected, abs=1e-5)
