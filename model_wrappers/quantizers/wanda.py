"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter, 2024, "A Simple and Effective
Pruning Approach for Large Language Models").

    --model_args pretrained=PATH,quantization=wanda,sparsity=0.5,calibration=calib.txt

The score of weight W_ij is |W_ij| * ||X_j||_2, where ||X_j||_2 is the L2 norm of input feature j
over every calibration token reaching the layer. Unstructured: each output row loses its
round(sparsity x inputs) lowest-scoring weights (the paper's per-output comparison group);
N:M: each group of M consecutive inputs of a row keeps its N highest. No weight update.
Blocks are pruned in order, each calibrated on the output of the pruned blocks before it,
as in the paper's code (calibration_forward.py). Options and what is recorded: pruning.py.
"""

from __future__ import annotations

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.pruning import CalibratedPruningConfig, Pruner


class InputNorms:
    """Running sum of squares of each input feature over calibration tokens."""

    def __init__(self, layer: nn.Module) -> None:
        self.squares: torch.Tensor | None = None
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        squares = x.detach().double().pow(2).sum(dim=0)
        self.squares = squares if self.squares is None else self.squares + squares
        self.tokens += x.shape[0]

    def norms(self) -> torch.Tensor:
        return self.squares.sqrt().float()


class Wanda(Pruner):
    name = "wanda"
    config_class = CalibratedPruningConfig
    calibrated = True
    per_row = True

    def new_statistic(self, layer: nn.Module) -> InputNorms:
        return InputNorms(layer)

    def prune_weight(self, weight: torch.Tensor, statistic: InputNorms) -> torch.Tensor:
        scores = weight.abs() * statistic.norms().to(weight.device).unsqueeze(0)
        return weight.masked_fill(self.mask(scores), 0.0)
