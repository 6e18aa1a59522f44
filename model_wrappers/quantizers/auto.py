"""Compression method name -> its Quantizer class: the one table to extend."""

from __future__ import annotations

from typing import Any

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer
from lm_eval_bias.model_wrappers.quantizers.bitsandbytes import BitsAndBytesFP4, BitsAndBytesInt8, BitsAndBytesNF4
from lm_eval_bias.model_wrappers.quantizers.dynamic_int8 import DynamicInt8
from lm_eval_bias.model_wrappers.quantizers.gptq import GPTQ
from lm_eval_bias.model_wrappers.quantizers.half_precision import BFloat16, Float16
from lm_eval_bias.model_wrappers.quantizers.int8_weight_only import Int8WeightOnly
from lm_eval_bias.model_wrappers.quantizers.none import NoQuantization
from lm_eval_bias.model_wrappers.quantizers.rtn import RoundToNearest

QUANTIZERS: dict[str, type[Quantizer]] = {
    cls.name: cls
    for cls in (
        NoQuantization,
        Float16,
        BFloat16,
        DynamicInt8,
        BitsAndBytesInt8,
        BitsAndBytesNF4,
        BitsAndBytesFP4,
        Int8WeightOnly,
        RoundToNearest,
        GPTQ,
    )
}

# every option any method takes: model_args with these names belong to the quantizer
QUANTIZER_OPTIONS = frozenset(option for cls in QUANTIZERS.values() for option in cls.options)


def get_quantizer(name: str, **settings: Any) -> Quantizer:
    if name not in QUANTIZERS:
        raise QuantizationError(f"Unknown quantization {name!r}; valid choices: {', '.join(QUANTIZERS)}.")
    return QUANTIZERS[name](**settings)
