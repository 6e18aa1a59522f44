"""Checkpoints compressed elsewhere in the compressed-tensors format, loaded as they are.

    --model_args pretrained=DIR_OR_HUB_ID,quantization=compressed_tensors

compressed-tensors is what llmcompressor saves (GPTQ / AWQ W4A16, SmoothQuant W8A8, FP8, 2:4
sparsity, ...) and what vLLM serves. transformers loads such a checkpoint itself
(`CompressedTensorsHfQuantizer`, which needs the `compressed-tensors` package: the
`[compressed-tensors]` extra): the weights are decompressed into the compute dtype (fp32 here, as
the checkpoint's bf16 is slower on CPU) and each layer keeps its quantization scheme, so a scheme
that quantizes activations (W8A8) still quantizes them in the forward pass. Nothing is
compressed here; the record says what the checkpoint holds: its schemes, the bits it stores per
weight (read from its files: codes, scales, zero points), and for a sparse checkpoint the measured
sparsity of its layers.

Refused: activations quantized dynamically with one scale per tensor, as that scale would span a
whole batch (padding included), so a sentence's score would move with its batch companions;
per-token and static activation scales are kept as they are (each sequence alone, like `dynamic_int8`).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

from torch import nn

from lm_eval_bias.model_wrappers.loading import checkpoint_quant_method, config_dict
from lm_eval_bias.model_wrappers.quantizers.base import (
    QuantizationError,
    Quantizer,
    fp32_unless_given,
    quiet_kernel_override,
)
from lm_eval_bias.model_wrappers.quantizers.compressed_cache import model_source
from lm_eval_bias.model_wrappers.quantizers.linear_layers import measured_sparsity

INSTALL = (
    "pip install -c constraints/cpu-torch.txt -e '.[compressed-tensors]' (in a checkout; else pip install "
    "'lm-eval-bias[compressed-tensors]' 'torch==<the installed version>')"
)
FORMAT = "compressed-tensors"
# the tensor giving a compressed layer's logical weight shape; every other `weight*` tensor is stored for it
# (weight, weight_packed, weight_scale, weight_zero_point, weight_g_idx, weight.bitmask, ...)
SHAPE_SUFFIX = "weight_shape"


def schemes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each config group as {targets, weights, input_activations}, the arguments kept that say what it does."""
    keep = ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "actorder")
    groups = config.get("config_groups") or {}
    summary = []
    for group in groups.values():
        entry = {"targets": list(group.get("targets") or [])}
        for part in ("weights", "input_activations"):
            args = group.get(part)
            entry[part] = {k: args.get(k) for k in keep if args.get(k) is not None} if args else None
        summary.append(entry)
    return summary


def refuse_batch_wide_scales(config: dict[str, Any], pretrained: str) -> None:
    for scheme in schemes(config):
        activations = scheme["input_activations"]
        if activations and activations.get("dynamic") is True and activations.get("strategy") == "tensor":
            raise QuantizationError(
                f"quantization=compressed_tensors: {pretrained!r} quantizes activations with one dynamic scale per "
                "tensor; that scale would span the whole batch (padding included), so a sentence's score would "
                "move with batch size. Supported: weight-only schemes, per-token dynamic or static activation scales."
            )


def stored_bits(folder: Path, layer_names: list[str]) -> tuple[float, int] | None:
    """(bits stored per logical weight of these layers, bytes of the checkpoint's tensors), read from
    the safetensors headers (no tensor is loaded); None without safetensors files."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    stored: dict[str, int] = {name: 0 for name in layer_names}
    logical: dict[str, int] = {}
    total = 0
    for file in files:
        with safe_open(file, "pt") as handle:
            for key in handle.keys():
                tensor = handle.get_slice(key)
                shape, dtype = tensor.get_shape(), tensor.get_dtype()
                size = _numel(shape) * _dtype_bytes(dtype)
                total += size
                layer = _owner(key, stored)
                if layer is None:
                    continue
                suffix = key[len(layer) + 1 :]
                if suffix == SHAPE_SUFFIX:
                    logical[layer] = _numel(handle.get_tensor(key).tolist())
                elif suffix.startswith("weight"):
                    stored[layer] += 8 * size
                    if suffix == "weight":
                        logical.setdefault(layer, _numel(shape))
    weights = sum(logical.get(name, 0) for name in layer_names)
    return (round(sum(stored.values()) / weights, 4) if weights else None), total


def _owner(key: str, layers: dict[str, int]) -> str | None:
    """The layer a checkpoint tensor belongs to: `model.layers.0.mlp.up_proj.weight_scale` and
    `model.layers.0.mlp.up_proj.weight.bitmask` both belong to `model.layers.0.mlp.up_proj`."""
    head = key
    while "." in head:
        head = head.rpartition(".")[0]
        if head in layers:
            return head
    return None


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def _dtype_bytes(dtype: str) -> int:
    bits = {
        "BOOL": 8,
        "U8": 8,
        "I8": 8,
        "F8_E4M3": 8,
        "F8_E5M2": 8,
        "I16": 16,
        "U16": 16,
        "F16": 16,
        "BF16": 16,
        "I32": 32,
        "U32": 32,
        "F32": 32,
        "I64": 64,
        "U64": 64,
        "F64": 64,
    }
    return bits[dtype] // 8


def decompress(model: nn.Module) -> None:
    """Packed weights decompressed here, once, rather than by a hook on the first forward."""
    model.hf_quantizer.compressor.decompress_model(model)


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers a compressed-tensors scheme is attached to."""
    return {
        name: module
        for name, module in model.named_modules()
        if getattr(module, "quantization_scheme", None) is not None
    }


class CompressedTensors(Quantizer):
    name = "compressed_tensors"
    requires = ("compressed_tensors", INSTALL)
    loads_checkpoints = (FORMAT,)

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._pretrained: str | None = None
        self._revision: str | None = None
        self._bits: float | None = None

    @property
    def weight_bits(self) -> float | None:
        return self._bits

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        self._revision = load_kwargs.get("revision")
        return fp32_unless_given(load_kwargs)

    def load_model(self, auto_class, pretrained, *args, **load_kwargs):
        # HFLM passes the checkpoint's own quantization_config: there is none without one
        method = checkpoint_quant_method(load_kwargs.get("quantization_config"))
        if method != FORMAT:
            held = f"a {method!r} quantization_config" if method else "no quantization_config"
            raise QuantizationError(
                f"quantization=compressed_tensors loads checkpoints saved in the compressed-tensors format "
                f"(llmcompressor's output); {str(pretrained)!r} holds {held} in its config.json. Load an "
                "uncompressed model with another quantization= (lm-eval-bias methods lists them)."
            )
        refuse_batch_wide_scales(config_dict(load_kwargs["quantization_config"]), str(pretrained))
        self._pretrained = str(pretrained)
        with quiet_kernel_override():  # HFLM hands back the checkpoint's own config: nothing is overridden
            return super().load_model(auto_class, pretrained, *args, **load_kwargs)

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        decompress(model)
        folder, _ = model_source(self._pretrained, self._revision)
        # the config as saved: transformers' parsed copy drops the sparsity metadata
        config = json.loads((folder / "config.json").read_text())["quantization_config"]
        layers = quantized_layers(model)
        bits = [
            (module.quantization_scheme.weights.num_bits, module.weight.numel())
            for module in layers.values()
            if module.quantization_scheme.weights is not None
        ]
        if bits:
            self._bits = round(sum(b * n for b, n in bits) / sum(n for _, n in bits), 4)
        self.details = {
            "checkpoint_format": config.get("format"),
            "schemes": schemes(config),
            "ignore": list(config.get("ignore") or []),
            "quantized_layers": len(layers),
            "compressed_tensors_version": importlib.metadata.version("compressed-tensors"),
        }
        sparsity = config.get("sparsity_config") or {}
        if sparsity:
            self.details["sparsity_structure"] = sparsity.get("sparsity_structure")
            from compressed_tensors.utils.match import is_match

            targets = {
                name: module
                for name, module in model.named_modules()
                if isinstance(module, nn.Linear)
                and is_match(name, module, sparsity.get("targets") or [], sparsity.get("ignore") or [])
            }
            self.details.update(measured_sparsity(model, targets))
        measured = stored_bits(folder, list(layers))
        if measured is not None:
            self.effective_bits_per_weight, self.details["checkpoint_bytes"] = measured
        return model
