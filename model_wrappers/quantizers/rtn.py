"""Round-to-nearest (RTN) weight-only quantization at 2..8 bits, stored as fake-quant fp32.

    --model_args pretrained=PATH,quantization=rtn,bits=4,group_size=128,symmetric=false

Every `nn.Linear` (and transformers' `Conv1D`, GPT-2's linear layer) has its weight
replaced by quantize-then-dequantize of itself; biases, norms and embeddings stay fp32.
The LM head is left alone unless `quantize_lm_head=true`; if it shares its weight with
the input embeddings, it gets its own quantized copy (the embeddings stay fp32).

Each row (output channel) is cut into groups of `group_size` input columns; omitted
(or 0 / -1) means one group per row. Per group, with b = bits:
  symmetric  (default): scale = max|w| / (2^(b-1) - 1); q = clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1);
                        w' = q * scale  (b = 2 gives the ternary levels {-1, 0, 1} * scale)
  asymmetric:           lo = min(w, 0), hi = max(w, 0); scale = (hi - lo) / (2^b - 1);
                        zero = clamp(round(-lo / scale), 0, 2^b - 1);
                        q = clamp(round(w / scale) + zero, 0, 2^b - 1); w' = (q - zero) * scale
`round` is round-half-to-even, all arithmetic fp32, so the result is deterministic and
the same on CPU and GPU. Scales are rounded to fp16 before use, so the stored weights are
exactly what a packed checkpoint (b-bit codes, fp16 scales, b-bit zero points) decodes to;
a scale that is 0 in fp16 becomes 1 (all-zero group) or 2^-24 (the smallest fp16 value).

Group sizes that do not divide the row width are allowed: the last group of each row is
shorter. This is the same as zero-padding the row to a multiple of `group_size`, since a
zero changes neither max|w| nor the [min(w, 0), max(w, 0)] range.

The record reports the effective bits per quantized weight: b plus the group's fp16
scale (and b-bit zero point when asymmetric) spread over its weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.loading import model_bytes
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer
from lm_eval_bias.model_wrappers.quantizers.config import (
    QuantizationConfig,
    integer_in,
    option,
    parse_bool,
    parse_int,
)
from lm_eval_bias.model_wrappers.quantizers.linear_layers import (
    set_weight_matrix,
    untie_lm_head,
    weight_layers,
    weight_matrix,
)

SCALE_BITS = 16  # scales are rounded to fp16


def parse_group_size(value: Any) -> int | None:
    """A positive group size, or None (one group per row) for '', 'none', 0 or -1."""
    if value is None or str(value).strip().lower() in ("", "none", "0", "-1"):
        return None
    size = parse_int(value)
    if size < 1:
        raise ValueError("expected a positive integer, or -1 (also 0, none) for one group per row")
    return size


@dataclass
class RtnConfig(QuantizationConfig):
    bits: int = option(4, integer_in(2, 8), "bits per weight code, 2 to 8")
    group_size: int | None = option(
        None, parse_group_size, "input columns per scale; -1 (or 0, none): one group per row"
    )
    symmetric: bool = option(True, parse_bool, "levels symmetric around zero (false: a zero point per group)")
    quantize_lm_head: bool = option(False, parse_bool, "quantize the LM head too (a tied head gets its own copy)")

    @property
    def weight_bits(self) -> int:
        return self.bits


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int | None, symmetric: bool) -> torch.Tensor:
    """Quantize-dequantize a [rows, columns] weight group-wise along its columns (fp32 result)."""
    rows, columns = weight.shape
    size = min(group_size or columns, columns)
    padding = (-columns) % size
    w = torch.nn.functional.pad(weight.detach().float(), (0, padding)).reshape(rows, -1, size)
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        extent = w.abs().amax(dim=-1, keepdim=True)
        scale = _fp16_scale(extent / qmax, extent)
        q = torch.clamp(torch.round(w / scale), qmin, qmax)
        dequantized = q * scale
    else:
        qmax = 2**bits - 1
        lo = w.amin(dim=-1, keepdim=True).clamp(max=0)
        hi = w.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = _fp16_scale((hi - lo) / qmax, hi - lo)
        zero = torch.clamp(torch.round(-lo / scale), 0, qmax)
        q = torch.clamp(torch.round(w / scale) + zero, 0, qmax)
        dequantized = (q - zero) * scale
    return dequantized.reshape(rows, -1)[:, :columns]


def _fp16_scale(scale: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
    scale = scale.to(torch.float16).float()
    underflow = torch.where(extent == 0, torch.ones_like(scale), torch.full_like(scale, 2.0**-24))
    return torch.where(scale == 0, underflow, scale)


def effective_bits(bits: int, group_size: int | None, symmetric: bool, columns: int) -> float:
    """Storage bits per weight of one row: codes plus its groups' scales (and zero points)."""
    groups = math.ceil(columns / min(group_size or columns, columns))
    per_group = SCALE_BITS + (0 if symmetric else bits)
    return bits + groups * per_group / columns


class RoundToNearest(Quantizer):
    name = "rtn"
    config_class = RtnConfig
    config: RtnConfig

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        bits, group_size, symmetric = self.config.bits, self.config.group_size, self.config.symmetric
        untied = untie_lm_head(model) if self.config.quantize_lm_head else False
        weights = storage_bits = layers = dense_bytes = 0
        with torch.no_grad():
            for _, _, layer in weight_layers(model, self.config.quantize_lm_head):
                weight = weight_matrix(layer)  # [out, in]; Conv1D stores [in, out]
                set_weight_matrix(layer, fake_quantize(weight, bits, group_size, symmetric))
                rows, columns = weight.shape
                weights += rows * columns
                dense_bytes += layer.weight.numel() * layer.weight.element_size()
                storage_bits += rows * columns * effective_bits(bits, group_size, symmetric, columns)
                layers += 1
        if layers == 0:
            raise QuantizationError(f"quantization=rtn found no nn.Linear or Conv1D layer in {type(model).__name__}.")
        self.effective_bits_per_weight = round(storage_bits / weights, 4)
        self.details = {
            "scale_dtype": "float16",
            "storage": "fake-quant (dequantized weights in the model's dtype)",
            "quantized_layers": layers,
            "quantized_weights": weights,
            "packed_model_bytes": model_bytes(model) - dense_bytes + math.ceil(storage_bits / 8),
            "lm_head_untied": untied,
        }
        return model
