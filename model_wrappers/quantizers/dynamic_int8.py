"""PyTorch post-training dynamic int8 quantization of every `nn.Linear`, LM head included.

This is what Gonçalves & Strubell (2023) applied (`torch.quantization.quantize_dynamic`):
int8 weights, activations quantized on the fly with one scale per input tensor. Because
that scale is computed over the whole input, padding in a batch would change it; each
quantized layer therefore quantizes every sequence of a batch on its own, over its real
tokens only, which is exactly what a batch of one computes.

Where `torch.ao.quantization` is gone (it is deprecated in favour of torchao), the same
layers get torchao's `Int8DynamicActivationInt8WeightConfig` instead, after a one-line
notice: int8 per-row weights, activations quantized per token, so no scale sees padding.
Batch invariance is looser there: the ~1e-8 differences that padded attention leaves in
fp32 activations can move one activation across an int8 rounding step, which moved
tiny-model sentence scores by up to ~2e-3 between batch sizes (torch.ao: identical).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.base import TORCHAO_INSTALL, QuantizationError, Quantizer
from lm_eval_bias.valid_tokens import current_valid_tokens

logger = logging.getLogger(__name__)


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


def _torch_ao_available() -> bool:
    try:
        import torch.ao.nn.quantized.dynamic  # noqa: F401
        from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return True


class DynamicInt8(Quantizer):
    name = "dynamic_int8"
    position_independent = False  # one activation scale per sequence
    nominal_bits = 8
    devices = ("cpu",)

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._backend = "torch.ao" if _torch_ao_available() else "torchao"
        if self._backend == "torchao":
            self.details = {
                "backend": "torchao",
                "weight_dtype": "int8 (per output channel)",
                "activation_scale": "per token (dynamic)",
            }
        else:
            self.details = {
                "backend": "torch.ao",
                "weight_dtype": "qint8",
                "activation_scale": "per sequence (dynamic)",
            }

    def validate_environment(self, device) -> None:
        super().validate_environment(device)
        if self._backend == "torchao" and importlib.util.find_spec("torchao") is None:
            raise QuantizationError(
                f"quantization={self.name}: this torch has no torch.ao.quantization, and the torchao fallback "
                f"is not installed: {TORCHAO_INSTALL}."
            )

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        if self._backend == "torchao":
            return self._torchao_postprocess(model)
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model.float(), {nn.Linear}, dtype=torch.qint8, inplace=True)
        for parent in list(model.modules()):
            for child_name, child in parent.named_children():
                if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
                    setattr(parent, child_name, PerSequenceDynamicLinear(child))
        return model

    def _torchao_postprocess(self, model: nn.Module) -> nn.Module:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        logger.warning(
            "dynamic_int8: torch.ao.quantization is not available; using torchao's int8 dynamic quantization "
            "(per-token activation scales) instead."
        )
        model = model.float()
        quantize_(
            model, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda module, _: isinstance(module, nn.Linear)
        )
        return model
