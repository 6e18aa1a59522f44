"""fp16 / bf16: load the weights in half precision (all computation in that dtype)."""

from __future__ import annotations

from typing import Any

import torch

from lm_eval_bias.model_wrappers.quantizers.base import Quantizer


class _HalfPrecision(Quantizer):
    dtype: torch.dtype
    nominal_bits = 16

    def postprocess_model(self, model: torch.nn.Module) -> torch.nn.Module:
        self.effective_bits_per_weight = 16.0  # dense half-precision weights, no scales
        return model

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**load_kwargs, "dtype": self.dtype}


class Float16(_HalfPrecision):
    name = "fp16"
    dtype = torch.float16


class BFloat16(_HalfPrecision):
    name = "bf16"
    dtype = torch.bfloat16
