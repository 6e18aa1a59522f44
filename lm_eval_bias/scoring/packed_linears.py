"""fp32 `nn.Linear` layers through oneDNN, with each weight reordered once for its matrix product.

On an x86 CPU PyTorch runs a float32 `nn.Linear` through MKL's sgemm, which reorders ("packs")
the weight into its own blocked layout on every call. oneDNN can do that reordering once,
ahead of time (`mkldnn._reorder_linear_weight`), and then run every product on the packed
weight (`mkldnn._linear_pointwise`): the path `torch.compile` takes for CPU inference with
inductor's weight prepacking, here without compiling. On the project's CPU host this ran a
BERT-base-shaped model's products, and masked pseudo-log-likelihood as a whole, markedly faster
than MKL (measured figures: docs/benchmarks.md, *Packed linears*). Results differ from MKL's by
fp32 rounding only (a different summation order).

The packed copies cost as much memory as the layers' weights while the scope is open, so the
masked-LM scorers use it (scoring a masked copy per token is the slow path), and the causal
scorers, which hold a memory target, do not. Only plain float32 `nn.Linear` layers on a CPU are
packed: quantized, half-precision and subclassed layers keep their own forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch


def onednn_available() -> bool:
    """Whether this PyTorch build can run packed oneDNN products (and oneDNN is not switched off).

    Returns:
        True when ``torch.backends.mkldnn`` is available and enabled and the two oneDNN ops exist.
    """
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def packable(module: torch.nn.Module) -> bool:
    """Whether ``packed_linears`` packs this module.

    Args:
        module: any module of the model.

    Returns:
        True for exactly ``nn.Linear`` (no subclass) with a float32 weight on the CPU and no forward of
        its own set on the instance (already packed, or patched by someone else).
    """
    return (
        type(module) is torch.nn.Linear
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
        and "forward" not in vars(module)  # already packed, or patched by someone else
    )


def _packed_forward(packed_weight: torch.Tensor, bias: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(inputs, packed_weight, bias, "none", [], "")


@contextmanager
def packed_linears(model: torch.nn.Module) -> Iterator[int]:
    """Within the scope, the model's packable layers run on weights packed once for oneDNN; yields
    how many layers were packed (0 where oneDNN is unavailable). Leaving restores every forward.

    The packed copies hold as much memory as the packed layers' weights while the scope is open; the
    weights themselves are not changed.

    Args:
        model: the model whose ``packable`` layers are packed.

    Yields:
        The number of layers packed.
    """
    patched: list[torch.nn.Module] = []
    try:
        if onednn_available():
            for module in model.modules():
                if packable(module):
                    packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), None)
                    module.forward = partial(_packed_forward, packed, module.bias)
                    patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
