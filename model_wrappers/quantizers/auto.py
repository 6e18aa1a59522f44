"""Compression method name -> the module and class that implement it: the one table to extend.

A method of this package is one module with a `Quantizer` subclass (and its `QuantizationConfig`),
plus one line in `METHODS`. Code outside the package adds one with `register_method` instead; see
docs/compression.md, "Adding a method".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer

# name -> "module:Class" in lm_eval_bias.model_wrappers.quantizers (imported when first needed),
# or the Quantizer class itself for a method added by register_method
METHODS: dict[str, str | type[Quantizer]] = {
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
METHOD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # written in model_args (quantization=NAME) and labels

Q = TypeVar("Q", bound=type[Quantizer])


@cache
def quantizer_class(name: str) -> type[Quantizer]:
    if name not in METHODS:
        raise QuantizationError(f"Unknown quantization {name!r}; valid choices: {', '.join(METHODS)}.")
    target = METHODS[name]
    if isinstance(target, str):
        module, attribute = target.split(":")
        cls = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    else:
        cls = target
    if not (isinstance(cls, type) and issubclass(cls, Quantizer)) or cls.name != name:
        raise TypeError(f"METHODS[{name!r}] = {target!r} is not a Quantizer named {name!r}.")
    return cls


def register_method(name: str) -> Callable[[Q], Q]:
    """A class decorator that adds a compression method from outside this package.

    After `@register_method("scaled")` on a `Quantizer` subclass, `quantization=scaled` and the
    method's options work wherever a method of `METHODS` does: `get_quantizer`, `split_model_args`
    (so `quantized_hf` routes the options to it), a study config, and `lm-eval-bias methods`, in
    the Python process that ran the decorator.

    Args:
        name: the method's name, as `quantization=` takes it (letters, digits and underscores, not
            starting with a digit); it must not be a name already in use. The class gets it as its
            `name` unless it defines a `name` of its own, which must then be the same.

    Returns:
        The decorator, which registers the class and returns it unchanged (but for `name`).

    Raises:
        ValueError: an invalid name, a name already registered, or a class whose own `name` differs.
        TypeError: what is decorated is not a subclass of `Quantizer`.
    """
    if not isinstance(name, str) or not METHOD_NAME.fullmatch(name):
        raise ValueError(
            f"register_method({name!r}): a method name is letters, digits and underscores, not starting with a "
            "digit (it is written as quantization=NAME in --model_args)."
        )

    def register(cls: Q) -> Q:
        if not (isinstance(cls, type) and issubclass(cls, Quantizer)):
            raise TypeError(
                f"register_method({name!r}) takes a subclass of {Quantizer.__module__}.Quantizer, "
                f"not {cls!r} ({type(cls).__name__})."
            )
        if name in METHODS:
            raise ValueError(
                f"register_method({name!r}): quantization={name} is already registered ({METHODS[name]!r}); "
                f"choose another name. Taken: {', '.join(METHODS)}."
            )
        own_name = cls.__dict__.get("name")
        if own_name is not None and own_name != name:
            raise ValueError(
                f"register_method({name!r}): {cls.__qualname__}.name is {own_name!r}; "
                f"set it to {name!r} or leave it out."
            )
        cls.name = name
        METHODS[name] = cls
        quantizer_class.cache_clear()  # the name may have been used (and cached) before, then removed
        quantizer_options.cache_clear()  # the new method's options now belong to the quantizer
        return cls

    return register


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
