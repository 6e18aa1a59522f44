"""torchao int8 weight-only quantization: int8 weights, one fp32 scale per output row.

    --model_args pretrained=PATH,quantization=int8_weight_only[,quantize_lm_head=true]

After loading, every `nn.Linear` (GPT-2's `Conv1D` is first turned into the equivalent
`nn.Linear`) gets a torchao `Int8WeightOnlyConfig` weight; activations stay fp32. The
LM head is left alone unless `quantize_lm_head=true` (as for `rtn`); a head tied to the
input embeddings then gets its own quantized copy. Each row is computed on its own, so
scores do not depend on the batch size.

Install: pip install -c constraints/cpu-torch.txt torchao   (torchao 0.18 runs with torch 2.13 CPU)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lm_eval_bias.model_wrappers.loading import stored_bits_per_weight
from lm_eval_bias.model_wrappers.quantizers.base import TORCHAO_INSTALL, QuantizationError, Quantizer
from lm_eval_bias.model_wrappers.quantizers.config import QuantizationConfig, option, parse_bool
from lm_eval_bias.model_wrappers.quantizers.linear_layers import untie_lm_head, weight_layers


@dataclass
class Int8WeightOnlyConfig(QuantizationConfig):
    quantize_lm_head: bool = option(False, parse_bool, "quantize the LM head too (a tied head gets its own copy)")


def conv1d_to_linear(conv) -> nn.Linear:
    """transformers' Conv1D (weight [in, out]) as the nn.Linear computing the same function."""
    linear = nn.Linear(conv.weight.shape[0], conv.weight.shape[1], bias=conv.bias is not None)
    linear = linear.to(device=conv.weight.device, dtype=conv.weight.dtype)
    linear.weight.data = conv.weight.detach().t().contiguous()
    if conv.bias is not None:
        linear.bias.data = conv.bias.detach().clone()
    return linear


def as_linear_layers(model: nn.Module, include_lm_head: bool) -> list[nn.Linear]:
    """Every layer to quantize, as nn.Linear (Conv1D layers are replaced in the model)."""
    from transformers.pytorch_utils import Conv1D

    layers = []
    for parent, attribute, layer in list(weight_layers(model, include_lm_head)):
        if isinstance(layer, Conv1D):
            layer = conv1d_to_linear(layer)
            setattr(parent, attribute, layer)
        layers.append(layer)
    return layers


class Int8WeightOnly(Quantizer):
    name = "int8_weight_only"
    config_class = Int8WeightOnlyConfig
    config: Int8WeightOnlyConfig
    nominal_bits = 8
    requires = ("torchao", TORCHAO_INSTALL)

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        import torchao
        from torchao.quantization import Int8WeightOnlyConfig as TorchaoInt8WeightOnly
        from torchao.quantization import quantize_

        include_head = self.config.quantize_lm_head
        untied = untie_lm_head(model) if include_head else False
        layers = as_linear_layers(model, include_head)
        if not layers:
            raise QuantizationError(
                f"quantization={self.name} found no nn.Linear layer to quantize in {type(model).__name__}."
            )
        chosen = {id(layer) for layer in layers}
        quantize_(model, TorchaoInt8WeightOnly(), filter_fn=lambda module, _: id(module) in chosen)
        self.effective_bits_per_weight = round(stored_bits_per_weight(layers), 4)
        self.details = {
            "weight_dtype": "int8",
            "granularity": "per output channel",
            "activation_dtype": "float32 (not quantized)",
            "torchao_version": torchao.__version__,
            "quantized_layers": len(layers),
            "lm_head_untied": untied,
        }
        return model
