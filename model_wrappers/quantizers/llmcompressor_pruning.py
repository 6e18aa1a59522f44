"""Wanda and SparseGPT through llmcompressor (vLLM's compression library), in place of our own code.

    --model_args pretrained=PATH,quantization=wanda,sparsity=0.5,calibration=FILE,implementation=llmcompressor

The same layers (`layers=`, default every linear layer of the blocks), the same calibration
token ids and the same sparsity or N:M structure are handed to llmcompressor's `oneshot` with its
`WandaPruningModifier` / `SparseGPTModifier` (its defaults: SparseGPT blocks of 128 columns, 1%
dampening, as ours), run by its sequential pipeline (each block calibrated on the output of the
pruned blocks before it, as ours). The pruned model then goes through the same cache and record
as our implementation's; `details.implementation` says which one ran.

llmcompressor 0.14 pins transformers 5.17 (this package otherwise tracks the newest), so it is
an opt-in extra: `pip install -c constraints/cpu-torch.txt -e ".[llmcompressor]"` (docs/compression.md
says what that install changes). Its AWQ fails on CPU, and its SmoothQuant only smooths (W8A8
then needs a compressed-tensors runtime), so `awq` and `smoothquant` stay our own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError

INSTALL = ("pip install -c constraints/cpu-torch.txt -e '.[llmcompressor]' (in a checkout; it installs "
           "transformers 5.17, which llmcompressor 0.14 pins)")
MODIFIERS = {"wanda": "llmcompressor.modifiers.pruning.wanda:WandaPruningModifier",
             "sparsegpt": "llmcompressor.modifiers.pruning.sparsegpt:SparseGPTModifier"}


def require_llmcompressor(method: str) -> None:
    if method not in MODIFIERS:
        raise QuantizationError(f"quantization={method}: implementation=llmcompressor is available for "
                                f"{', '.join(MODIFIERS)} only.")
    if importlib.util.find_spec("llmcompressor") is None:
        raise QuantizationError(f"quantization={method},implementation=llmcompressor needs llmcompressor: {INSTALL}.")


def version() -> str:
    return importlib.metadata.version("llmcompressor")


def prune(model: nn.Module, samples: list[torch.Tensor], method: str, layer_names: list[str], sparsity: float | None,
          structure: str | None, max_length: int) -> None:
    """Prune `layer_names` of `model` in place with llmcompressor's `method`, calibrated on `samples`
    (token-id tensors [1, length])."""
    import importlib

    from datasets import Dataset
    from llmcompressor import oneshot

    module, attribute = MODIFIERS[method].split(":")
    modifier_class = getattr(importlib.import_module(module), attribute)
    options: dict[str, Any] = {"targets": list(layer_names)}
    if structure is not None:
        n, m = structure.split(":")
        options.update(sparsity=1 - int(n) / int(m), mask_structure=structure)
    else:
        options["sparsity"] = sparsity
    ids = [sample[0].tolist() for sample in samples]
    dataset = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]})
    oneshot(model=model, dataset=dataset, recipe=[modifier_class(**options)], num_calibration_samples=len(ids),
            max_seq_length=max_length, shuffle_calibration_samples=False, pipeline="sequential")
