"""SmoothQuant W8A8 (Xiao et al., 2023): migrate activation outliers into the weights, then int8 weights
and int8 activations.

    --model_args pretrained=PATH,quantization=smoothquant,alpha=0.5,calibration=calib.txt

Per input channel j of a layer, s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha) (max|X_j| over the
calibration tokens, alpha the migration strength, 0.5 in the paper); the layer computes
(X / s) (s W)^T, which equals X W^T before rounding. Then:
  weights:     s W quantized to int8 per output channel, symmetric: scale = max|row| / 127;
  activations: X / s quantized to int8 per token, dynamically, symmetric: scale = max|token| / 127,
               round-half-to-even, clamp to [-127, 127] (the paper's per-token dynamic setting, O1).
Each token has its own scale, so no activation scale ever sees another sequence or padding:
scores are batch-invariant by construction (unlike a per-tensor scale, cf. dynamic_int8).

The paper folds 1/s into the preceding LayerNorm (or linear layer), which ties one s to every
layer reading that norm; here each layer divides its own input by its own s (numerically the
same product up to fp32 rounding, and one s per layer is at least as good), so every linear
layer of the blocks is covered, whatever its architecture's names (q_proj, query_key_value, c_attn).
The int8 codes are exact; the matmul runs in fp32 on the dequantized codes (simulated W8A8, the
scores an int8 kernel with int32 accumulation gives up to fp32 rounding of the sum).
Calibration and the cache: one_shot.py (the cache also keeps each layer's 1/s).
`implementation=llmcompressor` runs llmcompressor's SmoothQuant and W8A8 instead (llmcompressor_oneshot.py:
s folded into the norms, as in the paper; refused where that changes the model, as on Gemma); its
cached checkpoint is in the compressed-tensors format and loads back through compressed_tensors.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers import compressed_tensors, llmcompressor_oneshot
from lm_eval_bias.model_wrappers.quantizers.base import fp32_unless_given
from lm_eval_bias.model_wrappers.quantizers.config import float_in, option
from lm_eval_bias.model_wrappers.quantizers.linear_layers import weight_matrix
from lm_eval_bias.model_wrappers.quantizers.one_shot import (
    MAX_CALIBRATION_TOKENS,
    CalibrationOptions,
    OneShotCompression,
    layers_option,
)

SCALES_FILE = "smoothquant_scales.pt"
QMAX = 127


@dataclass
class SmoothQuantConfig(CalibrationOptions):
    alpha: float = option(0.5, float_in(0.0, 1.0), "migration strength: s_j = max|X_j|^alpha / max|W_j|^(1-alpha)")
    layers: str | None = layers_option()
    implementation: str = llmcompressor_oneshot.implementation_option()

    @property
    def weight_bits(self) -> int:
        return 8


def int8_codes(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of x with one scale per slice along `dim` (max|x| / 127; 1 for an all-zero slice)."""
    scale = x.abs().amax(dim=dim, keepdim=True) / QMAX
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(x / scale), -QMAX, QMAX), scale


class InputMax:
    """max|X_j| over calibration tokens."""

    def __init__(self, layer: nn.Module) -> None:
        self.maximum: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        current = x.detach().abs().amax(dim=0).float()
        self.maximum = current if self.maximum is None else torch.maximum(self.maximum, current)


class W8A8Linear(nn.Module):
    """y = q8(x * inv_smooth) @ q8(W * smooth)^T + b, with per-token activation and per-channel weight scales.
    The weight buffer keeps the replaced layer's layout (transformers' Conv1D: [in, out]) so that the
    saved checkpoint loads back into the original architecture."""

    replaces_linear = True

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, inv_smooth: torch.Tensor, transposed: bool
    ) -> None:
        super().__init__()
        codes, scale = int8_codes(weight.float(), dim=1)  # weight: [out, in]
        quantized = (codes * scale).to(weight.dtype)
        self.register_buffer("weight", quantized.t().contiguous() if transposed else quantized)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("inv_smooth", inv_smooth.to(weight.dtype))
        self.transposed = transposed
        self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes, scale = int8_codes((x * self.inv_smooth).float(), dim=-1)
        weight = self.weight.t() if self.transposed else self.weight
        return nn.functional.linear((codes * scale).to(x.dtype), weight, self.bias)


def smoothing_factors(input_max: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    weight_max = weight.abs().amax(dim=0).float().clamp(min=1e-5)
    factors = input_max.clamp(min=1e-5).pow(alpha) / weight_max.pow(1 - alpha)
    return factors.clamp(min=1e-5)


class SmoothQuant(OneShotCompression):
    name = "smoothquant"
    config_class = SmoothQuantConfig
    config: SmoothQuantConfig
    what = "quantized"
    recorded = (*OneShotCompression.recorded, *llmcompressor_oneshot.SMOOTHING_CHECK)

    def new_statistic(self, layer: nn.Module) -> InputMax:
        return InputMax(layer)

    def compress_layer(self, name: str, layer: nn.Module, statistic: InputMax) -> W8A8Linear:
        weight = weight_matrix(layer).detach().float()
        factors = smoothing_factors(statistic.maximum.to(weight.device), weight, self.config.alpha)
        return W8A8Linear(
            weight * factors.unsqueeze(0), layer.bias, 1 / factors, transposed=not isinstance(layer, nn.Linear)
        )

    def compress_by_llmcompressor(self, model: nn.Module, samples: list[torch.Tensor], layer_names: list[str]) -> None:
        self.details.update(
            llmcompressor_oneshot.smooth_and_quantize(
                model, samples, layer_names, self.config.alpha, MAX_CALIBRATION_TOKENS
            )
        )

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        # llmcompressor's cached checkpoint says the dtype of its scales; compute in fp32 as ours does
        return fp32_unless_given(load_kwargs) if self.by_llmcompressor else load_kwargs

    def _w8a8_layers(self, model: nn.Module) -> dict[str, W8A8Linear]:
        return {name: m for name, m in model.named_modules() if isinstance(m, W8A8Linear)}

    def extra_files(self, model: nn.Module) -> dict[str, bytes]:
        if self.by_llmcompressor:  # its checkpoint holds everything
            return {}
        buffer = io.BytesIO()
        torch.save({name: layer.inv_smooth for name, layer in self._w8a8_layers(model).items()}, buffer)
        return {SCALES_FILE: buffer.getvalue()}

    def restore(self, model: nn.Module, folder: str) -> nn.Module:
        """The saved checkpoint holds s W already int8-valued per row; the 1/s come from their own file.
        llmcompressor's is a compressed-tensors checkpoint: its int8 codes are decompressed."""
        if self.by_llmcompressor:
            compressed_tensors.decompress(model)
            return model
        scales = torch.load(f"{folder}/{SCALES_FILE}", map_location="cpu")
        for name, inv_smooth in scales.items():
            layer = model.get_submodule(name)
            restored = W8A8Linear(
                weight_matrix(layer).detach(),
                layer.bias,
                inv_smooth.to(layer.weight.device),
                transposed=not isinstance(layer, nn.Linear),
            )
            model.set_submodule(name, restored)
        return model

    def report(self, model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
        activations = "int8 per token, dynamic, symmetric"
        if self.by_llmcompressor:
            quantized = compressed_tensors.quantized_layers(model)
            saved = self.details.get("checkpoint")  # the int8 checkpoint in the cache: its bits are measured
            measured = compressed_tensors.stored_bits(Path(saved), list(quantized)) if saved else None
            self.effective_bits_per_weight = measured[0] if measured else None
            return {
                "quantized_layers": len(quantized),
                "weights": "int8 per output channel, symmetric",
                "activations": activations,
                "storage": "compressed-tensors layers (int8 codes x scales in fp32)",
            }
        quantized = self._w8a8_layers(model)
        weights = sum(layer.weight.numel() for layer in quantized.values())
        self.effective_bits_per_weight = round(
            8 + 32 * sum(layer.out_features for layer in quantized.values()) / weights, 4
        )
        return {
            "quantized_layers": len(quantized),
            "weights": "int8 per output channel, symmetric",
            "activations": activations,
            "storage": "fake-quant (int8 codes x scales in fp32)",
        }
