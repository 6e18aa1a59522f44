"""Running calibration texts through a model one transformer block at a time.

Wanda, SparseGPT, SmoothQuant and AWQ all compress a layer from statistics of its inputs.
As in the papers' code, blocks are compressed in order and block i's statistics come from
the output of the already-compressed blocks before it: each sample's hidden state is
carried from block to block, so the whole pass costs about two forwards of the model
(statistics, then the compressed block's output), not one forward per block.

Each block is called with the arguments the model itself gave it (attention mask, rotary
embeddings, ...), recorded in one uncompressed forward per sample: blocks of one model can
receive different ones (Gemma-3 alternates sliding-window and global attention, each with
its own rotary base), so block 0's arguments are not reused for the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.linear_layers import is_linear


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the ModuleList of linear-holding modules with most weights."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if not all(any(is_linear(m) for m in block.modules()) for block in module):
            continue
        if best is None or _weights(module) > _weights(best[1]):
            best = (name, module)
    if best is None:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks holding linear layers.")
    return best


def block_linears(model: nn.Module, pattern: Callable[[str], bool]) -> Iterator[tuple[int, dict[str, nn.Module]]]:
    """(block index, {qualified name: layer}) of the blocks' linear layers whose name `pattern` accepts."""
    prefix, blocks = decoder_blocks(model)
    for index, block in enumerate(blocks):
        layers = {
            f"{prefix}.{index}.{name}": layer
            for name, layer in block.named_modules()
            if is_linear(layer) and pattern(f"{prefix}.{index}.{name}")
        }
        yield index, layers


class _Stop(Exception):
    pass


def record_block_inputs(model: nn.Module, samples: list[torch.Tensor]) -> list[list[tuple[tuple, dict]]]:
    """inputs[block][sample] = (args, kwargs) the model passes to that block, from an uncompressed forward."""
    _, blocks = decoder_blocks(model)
    inputs: list[list[tuple[tuple, dict]]] = [[] for _ in blocks]
    handles = []
    for index, block in enumerate(blocks):

        def record(module, args, kwargs, index=index):
            inputs[index].append((args, kwargs))
            if index == len(blocks) - 1:
                raise _Stop  # nothing after the last block is needed

        handles.append(block.register_forward_pre_hook(record, with_kwargs=True))
    extra = {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}
    try:
        with torch.no_grad():
            for ids in samples:
                try:
                    model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
                except _Stop:
                    pass
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _output(result: Any) -> torch.Tensor:
    return result if isinstance(result, torch.Tensor) else result[0]


def compress_block_by_block(
    model: nn.Module,
    samples: list[torch.Tensor],
    pattern: Callable[[str], bool],
    new_statistic: Callable[[nn.Module], Any],
    compress: Callable[[str, nn.Module, Any], nn.Module | None],
) -> int:
    """For each block: feed it the samples, let `new_statistic(layer)` objects see every chosen
    layer's input (`.add(x)` with x [tokens, in]), `compress(name, layer, statistic)` each layer
    (in place, or returning a module that takes its place), then feed the compressed block to get
    the next block's inputs. Returns the layers compressed."""
    _, blocks = decoder_blocks(model)
    recorded = record_block_inputs(model, samples)
    hidden = [_hidden(*call) for call in recorded[0]]
    compressed = 0
    for index, layers in block_linears(model, pattern):
        block = blocks[index]
        calls = [_with_hidden(args, kwargs, h) for (args, kwargs), h in zip(recorded[index], hidden)]
        statistics = {name: new_statistic(layer) for name, layer in layers.items()}
        handles = [
            layer.register_forward_hook(lambda m, a, o, s=statistics[name]: s.add(a[0].reshape(-1, a[0].shape[-1])))
            for name, layer in layers.items()
        ]
        try:
            with torch.no_grad():
                for args, kwargs in calls:
                    block(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        for name, layer in layers.items():
            replacement = compress(name, layer, statistics[name])
            if replacement is not None:
                model.set_submodule(name, replacement)
        compressed += len(layers)
        with torch.no_grad():
            hidden = [_output(block(*args, **kwargs)) for args, kwargs in calls]
    return compressed


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
