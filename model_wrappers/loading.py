"""Loading a checkpoint into its own architecture, and measuring what it occupies."""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from lm_eval_bias.errors import BiasError
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer

# what a GPTQ-packed layer stores for its weight matrix
PACKED_WEIGHT_TENSORS = ("qweight", "qzeros", "scales", "g_idx")


class ArchitectureMismatchError(BiasError, ValueError):
    """transformers had to initialise weights the checkpoint does not hold."""


def config_dict(quantization_config: Any) -> dict[str, Any]:
    if isinstance(quantization_config, dict):
        return quantization_config
    return quantization_config.to_dict()


def checkpoint_quant_method(quantization_config: Any) -> str | None:
    """`quant_method` of a checkpoint's quantization_config (a dict or a transformers config), lower case."""
    if quantization_config is None:
        return None
    method = config_dict(quantization_config).get("quant_method")
    method = getattr(method, "value", method)
    return str(method).lower() if method is not None else "unknown"


def already_compressed(pretrained, quant_method: str, quantizer: Quantizer) -> QuantizationError:
    """The error for a checkpoint compressed elsewhere that `quantizer` cannot load as it is."""
    from lm_eval_bias.model_wrappers.quantizers.auto import METHODS, quantizer_class

    formats = {name: quantizer_class(name).loads_checkpoints for name in METHODS}
    loaders = [name for name, loaded in formats.items() if quant_method in loaded]
    consequence = (
        "the results would call it uncompressed"
        if quantizer.name == "none"
        else f"quantization={quantizer.name} would compress it a second time"
    )
    known = ", ".join(f"{fmt!r} (quantization={name})" for name, loaded in formats.items() for fmt in loaded)
    advice = (
        f"Pass quantization={' or '.join(loaders)} to load it as it is"
        if loaders
        else f"No method here loads such a checkpoint as it is (those that load as they are: {known}); "
        "evaluate its uncompressed model with the quantization= you want instead"
    )
    return QuantizationError(
        f"{str(pretrained)!r} is already compressed (its config.json holds a {quant_method!r} "
        f"quantization_config): {consequence}. {advice}."
    )


def is_encoder_only(config) -> bool:
    """A masked-LM checkpoint (BERT, RoBERTa, ALBERT, DistilBERT, ...), not a decoder."""
    if getattr(config, "model_type", None) not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(
        config, "is_decoder", False
    ):
        return False
    architectures = getattr(config, "architectures", None) or []
    return not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


class CheckedLoader:
    """Stands in for an AutoModel class: applies the quantizer's load kwargs and refuses
    checkpoints that would be loaded with newly initialised weights."""

    def __init__(self, auto_class, quantizer: Quantizer) -> None:
        self.auto_class = auto_class
        self.quantizer = quantizer

    def from_pretrained(self, pretrained, *args, **kwargs):
        # HFLM passes the checkpoint's own quantization_config, if it has one
        quant_method = checkpoint_quant_method(kwargs.get("quantization_config"))
        if quant_method is not None and quant_method not in self.quantizer.loads_checkpoints:
            raise already_compressed(pretrained, quant_method, self.quantizer)
        kwargs = self.quantizer.update_load_kwargs(kwargs)
        model, loading_info = self.quantizer.load_model(
            self.auto_class, pretrained, *args, output_loading_info=True, **kwargs
        )
        missing = sorted(loading_info.get("missing_keys") or [])
        mismatched = sorted(str(k) for k in loading_info.get("mismatched_keys") or [])
        if missing or mismatched:
            architectures = getattr(model.config, "architectures", None)
            shown = ", ".join((missing + mismatched)[:8])
            raise ArchitectureMismatchError(
                f"Loading {pretrained!r} (architectures {architectures}) as {type(model).__name__} would leave "
                f"{len(missing) + len(mismatched)} weights newly initialised ({shown}"
                f"{', ...' if len(missing) + len(mismatched) > 8 else ''}); its scores would be meaningless. "
                "Check that the checkpoint is a causal or masked LM with its LM head, or pass backend=causal|masked."
            )
        return model


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of every distinct tensor in the state dict (packed quantized weights included)."""
    seen: set[tuple] = set()
    total = 0
    for tensor in _tensors(model.state_dict().values()):
        key = (tensor.data_ptr(), tensor.numel(), tensor.dtype)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def stored_bits_per_weight(layers: list[torch.nn.Module]) -> float:
    """Bits of what these layers store for their weight matrices (codes, scales, zero points, group
    index; a tensor subclass's inner tensors) per logical weight: the effective bits per weight.
    A packed (GPTQ) layer's logical weights are its in x out matrix, held as `qweight`, `qzeros`,
    `scales` and `g_idx`; any other layer's are `weight`."""
    weights = stored = 0
    for layer in layers:
        if hasattr(layer, "qweight"):
            weights += layer.in_features * layer.out_features
            held = [getattr(layer, name, None) for name in PACKED_WEIGHT_TENSORS]
        else:
            weights += layer.weight.numel()
            held = [layer.weight]
        stored += sum(8 * t.numel() * t.element_size() for t in _tensors(t for t in held if t is not None))
    if not weights:
        raise ValueError("stored_bits_per_weight needs at least one layer with weights")
    return stored / weights


def logical_parameter_count(model: torch.nn.Module) -> int:
    """Weights the model stands for: a packed (e.g. GPTQ) layer counts as its in x out matrix and bias,
    which it keeps as buffers rather than parameters; a compressed-tensors layer counts as its
    `weight_shape` in place of the `weight*` parameters it holds (packed codes, scales, zero points)."""
    count = (
        int(model.num_parameters()) if hasattr(model, "num_parameters") else sum(p.numel() for p in model.parameters())
    )
    for module in model.modules():
        shape = getattr(module, "weight_shape", None)
        if isinstance(shape, torch.Tensor) and getattr(module, "quantization_scheme", None) is not None:
            count += int(torch.prod(shape.long())) - sum(
                p.numel() for name, p in module.named_parameters(recurse=False) if name.startswith("weight")
            )
        elif hasattr(module, "qweight") and hasattr(module, "in_features"):
            count += module.in_features * module.out_features
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor) and not isinstance(bias, torch.nn.Parameter):
                count += bias.numel()
    return count


def _tensors(values: Any):
    for value in values:
        if hasattr(value, "__tensor_flatten__"):  # tensor subclasses (torchao) hold their real storage inside
            yield from _tensors([getattr(value, name) for name in value.__tensor_flatten__()[0]])
        elif isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (tuple, list)):
            yield from _tensors(value)
