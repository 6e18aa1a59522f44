"""What magnitude, Wanda and SparseGPT pruning share: options, masks, calibration, cache, measured sparsity.

    --model_args pretrained=PATH,quantization=wanda,sparsity=0.5,calibration=calib.txt
    --model_args pretrained=PATH,quantization=magnitude,structure=2:4

Options: `sparsity` (fraction of weights set to zero, 0 < s < 1; default 0.5) or `structure=N:M`
(semi-structured: in every group of M consecutive weights of a row, along the input dimension,
at most N stay non-zero; 2:4 is what sparse tensor cores run), `layers` (a regular expression
searched in each layer's qualified name, e.g. `layers=mlp` or `layers=q_proj|v_proj`; default:
every linear layer of the transformer blocks, never the embeddings or the LM head). Methods
that calibrate also take `calibration`, `calibration_samples` (default 128) and `seed`.

Calibration and the cache: see one_shot.py.

Pruned weights are stored as exact zeros in the model's own dtype (a dense checkpoint), which is
what every sparse format decodes to. The results record the measured fraction of zeros in the
pruned layers and in the whole model (embeddings and LM head included), the layers pruned, the
time taken (measured_sparsity, linear_layers.py), and where the checkpoint came from (cache hit/miss, see
compressed_cache.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers import llmcompressor_oneshot
from lm_eval_bias.model_wrappers.quantizers.config import QuantizationConfig, option, parse_float
from lm_eval_bias.model_wrappers.quantizers.linear_layers import measured_sparsity, set_weight_matrix, weight_matrix
from lm_eval_bias.model_wrappers.quantizers.one_shot import (
    MAX_CALIBRATION_TOKENS,
    CalibrationOptions,
    OneShotCompression,
    QuantizationError,
    layers_option,
)


def parse_sparsity(value: Any) -> float:
    sparsity = parse_float(value)
    if not 0 < sparsity < 1:
        raise ValueError("expected a fraction strictly between 0 and 1, e.g. 0.5")
    return sparsity


def parse_structure(value: Any) -> str:
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(value))
    if not match or not 0 < int(match[1]) < int(match[2]):
        raise ValueError("expected N:M with 0 < N < M (N of every M weights kept), e.g. 2:4 or 4:8")
    return f"{int(match[1])}:{int(match[2])}"


@dataclass
class PruningConfig(QuantizationConfig):
    sparsity: float | None = option(
        None, parse_sparsity, "fraction of weights zeroed, 0 < s < 1 (default 0.5 unless structure is given)"
    )
    structure: str | None = option(
        None,
        parse_structure,
        "N:M semi-structured sparsity instead: at most N non-zeros in every M consecutive inputs of a row, e.g. 2:4",
    )
    layers: str | None = layers_option()

    def validate(self) -> None:
        if self.sparsity is not None and self.structure is not None:
            raise QuantizationError(f"{type(self).__name__}: give sparsity=FRACTION or structure=N:M, not both.")
        if self.sparsity is None and self.structure is None:
            self.sparsity = 0.5

    @property
    def target_sparsity(self) -> float:
        """The fraction of zeros asked for (N:M: 1 - N/M)."""
        if self.structure is None:
            return self.sparsity
        n, m = structure_numbers(self.structure)
        return 1 - n / m


@dataclass
class CalibratedPruningConfig(CalibrationOptions, PruningConfig):
    """Pruning options, then calibration's, then whose code prunes."""

    implementation: str = llmcompressor_oneshot.implementation_option()


def structure_numbers(structure: str) -> tuple[int, int]:
    n, m = structure.split(":")
    return int(n), int(m)


def prune_mask(scores: torch.Tensor, sparsity: float | None, structure: str | None, per_row: bool) -> torch.Tensor:
    """True where a weight of the [out, in] `scores` is pruned: the lowest scores, taken per layer,
    per row, or per group of M inputs (ties broken by position, so the count is exact)."""
    rows, columns = scores.shape
    if structure is not None:
        n, m = structure_numbers(structure)
        if columns % m:
            raise QuantizationError(f"structure={structure}: a layer's input width {columns} is not a multiple of {m}.")
        groups = scores.reshape(rows, columns // m, m)
        lowest = torch.argsort(groups, dim=-1, stable=True)[..., : m - n]
        return torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True).reshape(rows, columns)
    if per_row:
        lowest = torch.argsort(scores, dim=1, stable=True)[:, : round(sparsity * columns)]
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)
    lowest = torch.argsort(scores.flatten(), stable=True)[: round(sparsity * scores.numel())]
    return (
        torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
        .scatter_(0, lowest, True)
        .reshape(rows, columns)
    )


class Pruner(OneShotCompression):
    """One pruning criterion = a subclass filling in `prune_weight` (and the statistic it needs)."""

    config_class = CalibratedPruningConfig
    config: PruningConfig
    what = "pruned"
    # the comparison group of unstructured pruning: each output row (Wanda) or the whole layer
    per_row: ClassVar[bool] = False

    def prune_weight(self, weight: torch.Tensor, statistic: Any) -> torch.Tensor:
        """The pruned [out, in] fp32 weight."""
        raise NotImplementedError

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        return prune_mask(scores, self.config.sparsity, self.config.structure, self.per_row)

    def compress_layer(self, name: str, layer: nn.Module, statistic: Any) -> None:
        with torch.no_grad():
            set_weight_matrix(layer, self.prune_weight(weight_matrix(layer).detach().float(), statistic))

    def report(self, model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
        return {
            "target_sparsity": self.config.target_sparsity,
            "storage": "dense, pruned weights stored as zeros",
            **measured_sparsity(model, layers),
        }

    def compress_by_llmcompressor(self, model: nn.Module, samples: list[torch.Tensor], layer_names: list[str]) -> None:
        llmcompressor_oneshot.prune(
            model, samples, self.name, layer_names, self.config.sparsity, self.config.structure, MAX_CALIBRATION_TOKENS
        )
