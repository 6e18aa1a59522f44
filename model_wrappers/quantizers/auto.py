"""Compression method name -> the module and class that implement it: the one table to extend.

A method is one module of this package with a `Quantizer` subclass (and its `QuantizationConfig`),
plus one line in `METHODS`; see docs/compression.md, "Adding a method".
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer

# name -> "module:Class" in lm_eval_bias.model_wrappers.quantizers (imported when first needed)
METHODS: dict[str, str] = {
    "none": "none:NoQuantization",
    "fp16": "half_precision:Float16",
    "bf16": "half_precision:BFloat16",
    "dynamic_int8": "dynamic_int8:DynamicInt8",
    "bnb_int8": "bitsandbytes:BitsAndBytesInt8",
    "bnb_nf4": "bitsandbytes:BitsAndBytesNF4",
    "bnb_fp4": "bitsandbytes:BitsAndBytesFP4",
    "int8_weight_only": "int8_weight_only:Int8WeightOnly",
    "rtn": "rtn:RoundToNearest",
    "gptq": "gptq:GPTQ",
    "magnitude": "magnitude:MagnitudePruning",
    "wanda": "wanda:Wanda",
    "sparsegpt": "sparsegpt:SparseGPT",
    "awq": "awq:AWQ",
    "smoothquant": "smoothquant:SmoothQuant",
    "compressed_tensors": "compressed_tensors:CompressedTensors",
}


@cache
def quantizer_class(name: str) -> type[Quantizer]:
    if name not in METHODS:
        raise QuantizationError(f"Unknown quantization {name!r}; valid choices: {', '.join(METHODS)}.")
    module, attribute = METHODS[name].split(":")
    cls = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Quantizer)) or cls.name != name:
        raise TypeError(f"METHODS[{name!r}] = {METHODS[name]!r} is not a Quantizer named {name!r}.")
    return cls


class _Quantizers(Mapping):
    """name -> Quantizer class, for every method in METHODS (a read-only view of the table)."""

    def __getitem__(self, name: str) -> type[Quantizer]:
        if name not in METHODS:
            raise KeyError(name)
        return quantizer_class(name)

    def __iter__(self):
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)


QUANTIZERS: Mapping[str, type[Quantizer]] = _Quantizers()


@cache
def quantizer_options() -> frozenset[str]:
    """Every option any method takes: model_args with these names belong to the quantizer."""
    return frozenset(option for cls in QUANTIZERS.values() for option in cls.config_class.option_names())


def split_model_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """model_args -> (the quantizer's options, everything else for HFLM)."""
    options = quantizer_options()
    return ({k: v for k, v in kwargs.items() if k in options}, {k: v for k, v in kwargs.items() if k not in options})


def get_quantizer(name: str | None, **options: Any) -> Quantizer:
    """The method `name` (None, as lm-eval casts "none", is "none") with its options parsed into its config."""
    return quantizer_class("none" if name is None else str(name))(**options)
