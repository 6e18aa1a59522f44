"""PyTorch post-training dynamic int8 quantization of every `nn.Linear`, LM head included.

This is what Gonçalves & Strubell (2023) applied (`torch.quantization.quantize_dynamic`):
int8 weights, activations quantized on the fly with one scale per input tensor. Because
that scale is computed over the whole input, padding in a batch would change it; each
quantized layer therefore quantizes every sequence of a batch on its own, over its real
tokens only, which is exactly what a batch of one computes.
"""

from __future__ import annotations

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.base import Quantizer
from lm_eval_bias.scoring.valid_tokens import current_valid_tokens


class PerSequenceDynamicLinear(nn.Module):
    """A dynamically quantized linear layer whose activation scale never sees padding."""

    def __init__(self, quantized: nn.Module) -> None:
        super().__init__()
        self.quantized = quantized
        self.in_features = quantized.in_features
        self.out_features = quantized.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = current_valid_tokens()
        if valid is None or x.dim() != 3 or tuple(x.shape[:2]) != tuple(valid.shape):
            return self.quantized(x)
        if x.shape[0] == 1 and bool(valid.all()):
            return self.quantized(x)
        out = x.new_zeros(*x.shape[:2], self.out_features)
        for row in range(x.shape[0]):
            positions = valid[row]
            out[row, positions] = self.quantized(x[row, positions].unsqueeze(0))[0]
        return out


class DynamicInt8(Quantizer):
    name = "dynamic_int8"
    devices = ("cpu",)

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model.float(), {nn.Linear}, dtype=torch.qint8, inplace=True)
        for parent in list(model.modules()):
            for child_name, child in parent.named_children():
                if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
                    setattr(parent, child_name, PerSequenceDynamicLinear(child))
        return model

    def describe(self):
        return {**super().describe(), "weight_dtype": "qint8", "activation_scale": "per sequence (dynamic)"}
