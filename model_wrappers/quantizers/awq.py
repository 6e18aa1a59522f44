"""AWQ, activation-aware weight quantization (Lin et al., 2024), written here for CPU.

    --model_args pretrained=PATH,quantization=awq,bits=4,group_size=128,calibration=calib.txt

Per layer, input channels that carry large activations are scaled up before group-wise
round-to-nearest quantization and scaled back after, which protects the salient weights:
  W' = Q(W * s) / s,  s_j = mean|X_j|^r / sqrt(max_j(.) * min_j(.))   (the reference's normalisation)
with r searched over the grid 0, 1/20, ..., 19/20 to minimise the layer's output error
||X W^T - X W'^T||^2 on the calibration tokens (r = 0 is plain RTN, so AWQ is never worse than
RTN on them). Q is rtn.fake_quantize, asymmetric (a zero point per group, AWQ's default), with
fp16 scales. Blocks are quantized in order, each calibrated on the output of the quantized
blocks before it (calibration_forward.py).

Why not llmcompressor's AWQ: it fails on CPU (its intermediates cache calls pin_memory(), which
needs an accelerator) and it pins transformers 5.17. Differences from the reference (AutoAWQ /
llm-awq): the reference folds s into the preceding LayerNorm or linear layer, which ties one s to
every layer reading it (q, k and v share one, searched on the attention block's output); here
each layer gets its own s, searched on its own output, and keeps W' as a dequantized fp32 weight
(W' is what a packed AWQ checkpoint computes with; folding only moves the 1/s elsewhere).
The reference's second step, a per-group search of a clipping range, is not done.
Calibration and the cache: one_shot.py.

An AutoAWQ checkpoint (`quant_method: awq` in its config.json, packed `qweight` / `qzeros` /
`scales`) loads as it is: transformers reads it through gptqmodel's AWQ layers (the `[gptq]`
extra; on CPU its torch kernel), its bits and group size are recorded, nothing is searched, and a
`bits=` or `group_size=` that contradicts the checkpoint is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.loading import config_dict, stored_bits_per_weight
from lm_eval_bias.model_wrappers.quantizers.base import (
    GPTQ_INSTALL,
    QuantizationError,
    fp32_unless_given,
    quiet_kernel_override,
)
from lm_eval_bias.model_wrappers.quantizers.config import integer_in, option
from lm_eval_bias.model_wrappers.quantizers.linear_layers import set_weight_matrix, weight_matrix
from lm_eval_bias.model_wrappers.quantizers.one_shot import CalibrationOptions, OneShotCompression, layers_option
from lm_eval_bias.model_wrappers.quantizers.rtn import effective_bits, fake_quantize, parse_group_size

GRID = 20
MAX_SEARCH_TOKENS = 4096  # calibration tokens kept per layer for the output-error search


@dataclass
class AwqConfig(CalibrationOptions):
    bits: int = option(4, integer_in(2, 8), "bits per weight code, 2 to 8 (4 is AWQ's; 8 also works)")
    group_size: int | None = option(
        128, parse_group_size, "input columns per scale and zero point; -1: one group per row"
    )
    layers: str | None = layers_option()

    @property
    def weight_bits(self) -> int:
        return self.bits


class InputSample:
    """mean|X_j| over all calibration tokens, and the first MAX_SEARCH_TOKENS tokens themselves."""

    def __init__(self, layer: nn.Module) -> None:
        self.absolute_sum: torch.Tensor | None = None
        self.tokens = 0
        self.kept: list[torch.Tensor] = []

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        total = x.abs().sum(dim=0)
        self.absolute_sum = total if self.absolute_sum is None else self.absolute_sum + total
        room = MAX_SEARCH_TOKENS - sum(len(k) for k in self.kept)
        if room > 0:
            self.kept.append(x[:room])
        self.tokens += x.shape[0]

    def mean_abs(self) -> torch.Tensor:
        return self.absolute_sum / self.tokens

    def inputs(self) -> torch.Tensor:
        return torch.cat(self.kept)


def awq_scales(mean_abs: torch.Tensor, ratio: float) -> torch.Tensor:
    scales = mean_abs.clamp(min=1e-4).pow(ratio)
    return scales / (scales.max() * scales.min()).sqrt()


def search_scales(
    weight: torch.Tensor, statistic: InputSample, bits: int, group_size: int | None
) -> tuple[torch.Tensor, float]:
    """(best W', best r): the grid search of the paper's eq. 5 on this layer's output."""
    x = statistic.inputs().to(weight.device)
    reference = x @ weight.t()
    best: tuple[float, torch.Tensor, float] | None = None
    for step in range(GRID):
        ratio = step / GRID
        scales = awq_scales(statistic.mean_abs().to(weight.device), ratio)
        candidate = fake_quantize(weight * scales, bits, group_size, symmetric=False) / scales
        error = float(((x @ candidate.t() - reference) ** 2).sum())
        if best is None or error < best[0]:
            best = (error, candidate, ratio)
    return best[1], best[2]


class AWQ(OneShotCompression):
    name = "awq"
    config_class = AwqConfig
    config: AwqConfig
    what = "quantized"
    loads_checkpoints = ("awq",)

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._autoawq_checkpoint: str | None = None

    # --- an AutoAWQ checkpoint, loaded as it is ----------------------------------------------

    def load_model(self, auto_class, pretrained, *args, **kwargs):
        if kwargs.get("quantization_config") is None:
            return super().load_model(auto_class, pretrained, *args, **kwargs)
        import importlib.util

        if importlib.util.find_spec("gptqmodel") is None:
            raise QuantizationError(f"quantization=awq loads AutoAWQ checkpoints through gptqmodel: {GPTQ_INSTALL}.")
        self._adopt_autoawq(config_dict(kwargs["quantization_config"]), str(pretrained))
        with quiet_kernel_override():  # a checkpoint with a quantization_config loads as it is, never compressed
            return super().load_model(auto_class, pretrained, *args, **fp32_unless_given(kwargs))

    def _adopt_autoawq(self, config: dict[str, Any], checkpoint: str) -> None:
        found = {
            "bits": config.get("bits", config.get("w_bit")),
            "group_size": config.get("group_size", config.get("q_group_size")),
        }
        self.config.adopt(found, f"{checkpoint!r} is an AWQ checkpoint")  # the record says what it holds
        self._autoawq_checkpoint = checkpoint
        self.details = {
            "checkpoint": checkpoint,
            "cache": "AutoAWQ checkpoint",
            "zero_point": config.get("zero_point"),
            "version": config.get("version"),
        }

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        if self._autoawq_checkpoint is None:
            return super().postprocess_model(model)
        layers = [module for module in model.modules() if hasattr(module, "qweight")]
        if not layers:
            raise QuantizationError(f"quantization=awq: {self._autoawq_checkpoint!r} holds no AWQ layer after loading.")
        self.effective_bits_per_weight = round(stored_bits_per_weight(layers), 4)
        self.details.update({"quantized_layers": len(layers), "kernel": type(layers[0]).__name__})
        return model

    # --- quantizing here ------------------------------------------------------------------------

    def new_statistic(self, layer: nn.Module) -> InputSample:
        return InputSample(layer)

    def compress_layer(self, name: str, layer: nn.Module, statistic: InputSample) -> None:
        weight = weight_matrix(layer).detach().float()
        quantized, ratio = search_scales(weight, statistic, self.config.bits, self.config.group_size)
        with torch.no_grad():
            set_weight_matrix(layer, quantized)
        self.details.setdefault("scale_exponents", []).append(ratio)  # r chosen per layer, in order

    def report(self, model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
        bits, group_size = self.config.bits, self.config.group_size
        weights = sum(layer.weight.numel() for layer in layers.values())
        stored = sum(
            layer.weight.numel() * effective_bits(bits, group_size, False, weight_matrix(layer).shape[1])
            for layer in layers.values()
        )
        self.effective_bits_per_weight = round(stored / weights, 4)
        return {
            "quantized_layers": len(layers),
            "zero_point": True,
            "scale_dtype": "float16",
            "storage": "fake-quant (dequantized weights in the model's dtype)",
        }
