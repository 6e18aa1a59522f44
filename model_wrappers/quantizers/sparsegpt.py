"""SparseGPT (Frantar & Alistarh, 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned
in One-Shot"): prune by the OBS saliency w^2 / [H^-1]_jj and update the remaining weights of the
row to compensate, with H = X^T X from calibration inputs.

    --model_args pretrained=PATH,quantization=sparsegpt,sparsity=0.5,calibration=calib.txt

Written here after the paper's Algorithm 1 and its reference code (`fasterprune`): dampening
1% of the mean diagonal of H, columns processed in blocks of 128 with the mask of each block
chosen when the block starts (adaptive mask selection), N:M masks chosen per group of M
columns. Unstructured masks take exactly round(sparsity x weights) per block of columns
(the reference takes those under a threshold: the same up to ties). Inputs never seen in
calibration (a zero diagonal of H) get their weights zeroed, as in the reference.
llmcompressor's SparseGPT needs transformers 5.17 (this package tracks the newest), hence our own;
`implementation=llmcompressor` runs theirs instead (llmcompressor_oneshot.py).
Options and what is recorded: pruning.py.
"""

from __future__ import annotations

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.pruning import CalibratedPruningConfig, Pruner, structure_numbers

DAMPENING = 0.01
BLOCK_SIZE = 128


class InputHessian:
    """H = sum over calibration tokens of x x^T (the factor 2/n does not change the result)."""

    def __init__(self, layer: nn.Module) -> None:
        self.hessian: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        product = x.t() @ x
        self.hessian = product if self.hessian is None else self.hessian + product


def inverse_hessian_factor(hessian: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor of the dampened H^-1 (rows of it drive the OBS updates)."""
    hessian = hessian.clone()
    diagonal = torch.arange(hessian.shape[0])
    hessian[diagonal, diagonal] += DAMPENING * hessian.diagonal().mean()
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(hessian))
    return torch.linalg.cholesky(inverse, upper=True)


class SparseGPT(Pruner):
    name = "sparsegpt"
    config_class = CalibratedPruningConfig
    calibrated = True

    def new_statistic(self, layer: nn.Module) -> InputHessian:
        return InputHessian(layer)

    def prune_weight(self, weight: torch.Tensor, statistic: InputHessian) -> torch.Tensor:
        structure = self.config.structure
        if structure and (
            weight.shape[1] % structure_numbers(structure)[1] or BLOCK_SIZE % structure_numbers(structure)[1]
        ):
            raise QuantizationError(
                f"quantization=sparsegpt: structure={structure} needs M dividing both the input "
                f"width {weight.shape[1]} and the column block {BLOCK_SIZE}."
            )
        w = weight.double().clone()
        hessian = statistic.hessian.to(w.device)
        dead = hessian.diagonal() == 0
        hessian[dead, dead] = 1
        w[:, dead] = 0
        factor = inverse_hessian_factor(hessian)
        columns = w.shape[1]
        for start in range(0, columns, BLOCK_SIZE):
            end = min(start + BLOCK_SIZE, columns)
            pruned, errors = self._prune_block(w[:, start:end].clone(), factor[start:end, start:end])
            w[:, start:end] = pruned
            w[:, end:] -= errors @ factor[start:end, end:]
        return w.float()

    def _prune_block(self, block: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One block of columns: pruned weights and the scaled errors to push to later columns."""
        diagonal = factor.diagonal()
        structure = self.config.structure
        mask = None if structure else self.mask(block**2 / diagonal.unsqueeze(0) ** 2)
        if structure:
            n, m = structure_numbers(structure)
            mask = torch.zeros_like(block, dtype=torch.bool)
        errors = torch.zeros_like(block)
        for i in range(block.shape[1]):
            if structure and i % m == 0:
                group = block[:, i : i + m] ** 2 / diagonal[i : i + m].unsqueeze(0) ** 2
                mask[:, i : i + m] = self._group_mask(group, n, m)
            column = block[:, i]
            kept = column.masked_fill(mask[:, i], 0.0)
            error = (column - kept) / factor[i, i]
            block[:, i:] -= error.unsqueeze(1) @ factor[i, i:].unsqueeze(0)
            block[:, i] = kept
            errors[:, i] = error
        return block, errors

    @staticmethod
    def _group_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
        lowest = torch.argsort(scores, dim=1, stable=True)[:, : m - n]
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)
