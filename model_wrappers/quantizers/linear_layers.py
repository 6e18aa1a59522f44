"""The linear layers of a model, as every method that compresses weights walks and rewrites them.

`nn.Linear` and transformers' `Conv1D` (GPT-2's linear layer, which stores its weight [in, out])
are the layers compressed; `weight_matrix` / `set_weight_matrix` read and write either as [out, in].
`weight_layers` walks them (the LM head only when asked), `untie_lm_head` gives a head that shares
the input embeddings' weight its own copy before it is compressed, and `measured_sparsity` counts
the zeros that pruning left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def linear_types() -> tuple[type, ...]:
    """The layer classes compressed as linear layers: (nn.Linear, transformers' Conv1D)."""
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D)


def is_linear(module: nn.Module) -> bool:
    """A linear layer, or a compressed layer standing in for one (e.g. SmoothQuant's W8A8Linear)."""
    return isinstance(module, linear_types()) or getattr(module, "replaces_linear", False)


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The weight as [out, in] (transformers' Conv1D stores [in, out])."""
    return layer.weight.t() if not isinstance(layer, nn.Linear) else layer.weight


def set_weight_matrix(layer: nn.Module, weight: torch.Tensor) -> None:
    """Store an [out, in] weight into the layer, in the layer's own layout and dtype."""
    weight = weight if isinstance(layer, nn.Linear) else weight.t()
    layer.weight.data = weight.contiguous().to(layer.weight.dtype)


def weight_layers(model: nn.Module, include_lm_head: bool) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """Every nn.Linear / transformers Conv1D of the model, with where it sits.

    Args:
        model: the model to walk.
        include_lm_head: whether the LM head (the output embeddings) is included.

    Returns:
        An iterator of (parent module, attribute name, layer), so that a caller can replace the layer.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for parent in list(model.modules()):
        for attribute, child in list(parent.named_children()):
            if not isinstance(child, linear_types()):
                continue
            if child is head and not include_lm_head:
                continue
            yield parent, attribute, child


def untie_lm_head(model: nn.Module) -> bool:
    """Give the LM head its own weight if it shares it with the input embeddings.

    Args:
        model: a transformers model (the config's `tie_word_embeddings` is turned off too).

    Returns:
        Whether the head was untied.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if head is None or embeddings is None or head.weight is not embeddings.weight:
        return False
    head.weight = nn.Parameter(head.weight.detach().clone(), requires_grad=False)
    if getattr(model.config, "tie_word_embeddings", False):
        model.config.tie_word_embeddings = False
    return True


def measured_sparsity(model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
    """Fractions of exact zeros in the given layers' weights and in every distinct model tensor.

    Args:
        model: the whole model (its floating-point state, each shared tensor counted once).
        layers: the pruned layers by qualified name.

    Returns:
        {pruned_layers, pruned_layer_weights, measured_sparsity_pruned_layers, measured_sparsity_model},
        the fractions rounded to 6 digits.
    """
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers.values())
    weights = sum(layer.weight.numel() for layer in layers.values())
    seen, model_zeros, model_weights = set(), 0, 0
    for tensor in model.state_dict().values():
        key = (tensor.data_ptr(), tensor.numel())
        if key not in seen and tensor.is_floating_point():
            seen.add(key)
            model_zeros += int((tensor == 0).sum())
            model_weights += tensor.numel()
    return {
        "pruned_layers": len(layers),
        "pruned_layer_weights": weights,
        "measured_sparsity_pruned_layers": round(zeros / max(weights, 1), 6),
        "measured_sparsity_model": round(model_zeros / max(model_weights, 1), 6),
    }
