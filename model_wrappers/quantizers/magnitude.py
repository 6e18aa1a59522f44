"""Magnitude pruning: zero the weights of smallest |W| (Han et al., 2015; the baseline of the Wanda
and SparseGPT papers). No calibration data.

    --model_args pretrained=PATH,quantization=magnitude,sparsity=0.5
    --model_args pretrained=PATH,quantization=magnitude,structure=2:4

Unstructured: in each pruned layer, the round(sparsity x weights) weights of smallest |W| are
zeroed, compared across the whole layer (the layer-wise magnitude baseline of those papers).
N:M: in every group of M consecutive inputs of a row, the M - N of smallest |W|. Options and
what is recorded: see pruning.py.
"""

from __future__ import annotations

from typing import Any

import torch

from lm_eval_bias.model_wrappers.quantizers.pruning import Pruner, PruningConfig


class MagnitudePruning(Pruner):
    name = "magnitude"
    config_class = PruningConfig
    calibrated = False
    per_row = False

    def prune_weight(self, weight: torch.Tensor, statistic: Any) -> torch.Tensor:
        return weight.masked_fill(self.mask(weight.abs()), 0.0)
