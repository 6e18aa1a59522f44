"""The one interface every compression method implements.

A method is a subclass that fills in some of four hooks, called in this order by
`QuantizedHFLM`: `validate_environment` (before anything is loaded), `update_load_kwargs`
(what `from_pretrained` is given: a dtype, a transformers quantization config), `load_model`
(what is loaded: the checkpoint, or e.g. a cached quantized copy of it), and
`postprocess_model` (after loading: post-training quantization of the loaded model).
Its options are a typed `QuantizationConfig` (`config_class`), parsed once from `model_args`;
`record` is what the results JSON gets as `config.quantization` (a `QuantizationRecord`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from lm_eval_bias.model_wrappers.quantizers.config import (
    NoOptions,
    QuantizationConfig,
    QuantizationError,
    QuantizationRecord,
    compression_label,
)

__all__ = [
    "Quantizer",
    "QuantizationConfig",
    "QuantizationError",
    "QuantizationRecord",
    "GPTQ_INSTALL",
    "TORCHAO_INSTALL",
    "fp32_unless_given",
    "quiet_kernel_override",
]

TORCHAO_INSTALL = (
    "pip install -c constraints/cpu-torch.txt 'torchao>=0.18' (the [torchao] extra; the constraint keeps torch)"
)
# the [gptq] extra (gptqmodel, optimum): GPTQ, and AutoAWQ checkpoints, which load through gptqmodel's layers
GPTQ_INSTALL = (
    "pip install 'lm-eval-bias[gptq]' 'torch==<the installed version>' (in a checkout: pip install -c "
    "constraints/cpu-torch.txt -e '.[gptq]'); with torch pinned pip picks a gptqmodel release that accepts it, "
    "e.g. 7.6.0 for torch 2.13, instead of replacing torch"
)


def fp32_unless_given(load_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Compute in fp32 unless a dtype was given: compressed checkpoints say bf16 or fp16 (their scales'
    dtype), which is slower than fp32 on CPU and would differ from the uncompressed runs they are
    compared with."""
    if load_kwargs.get("dtype") in (None, "auto"):
        return {**load_kwargs, "dtype": torch.float32}
    return load_kwargs


@contextlib.contextmanager
def quiet_kernel_override() -> Iterator[None]:
    """transformers warns whenever a kernel passed at load time overrides the checkpoint's own choice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You passed `quantization_config`", category=UserWarning)
        yield


class Quantizer:
    name: ClassVar[str]
    # the method's options: a QuantizationConfig dataclass
    config_class: ClassVar[type[QuantizationConfig]] = NoOptions
    # nominal bits per weight when no option sets them (config.weight_bits is None); None: undefined
    nominal_bits: ClassVar[float | None] = None
    # device types the method runs on; None means any
    devices: ClassVar[tuple[str, ...] | None] = None
    # (importable module, what to install) the method needs
    requires: ClassVar[tuple[str, str] | None] = None
    # whether the compressed model computes each position from the tokens up to it alone; False when
    # an activation statistic spans a sequence (a per-sequence int8 scale), so later tokens move earlier
    # positions' outputs. True lets the causal scorer score a shared (prefix, next token) event once.
    position_independent: ClassVar[bool] = True
    # `quant_method`s of checkpoints compressed elsewhere that this method loads as they are; a checkpoint
    # whose config holds any other quantization_config is refused (loading.CheckedLoader)
    loads_checkpoints: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: QuantizationConfig | None = None, **options: Any) -> None:
        """From a config, or from options as `--model_args` gives them (parsed here, once)."""
        if config is None:
            config = self.config_class.from_options(options, method=self.name)
        elif options or not isinstance(config, self.config_class):
            raise QuantizationError(
                f"quantization={self.name} takes one {self.config_class.__name__}, "
                f"or options, not {type(config).__name__} {options or ''}."
            )
        self.config = config
        # what postprocess_model measured: effective bits per weight, and the method's own details
        self.effective_bits_per_weight: float | None = None
        self.details: dict[str, Any] = {}

    @property
    def settings(self) -> dict[str, Any]:
        """Every option, defaults filled in."""
        return self.config.to_dict()

    @property
    def weight_bits(self) -> float | None:
        bits = self.config.weight_bits
        return self.nominal_bits if bits is None else bits

    def validate_environment(self, device: str | torch.device) -> None:
        device_type = torch.device(device).type
        if self.devices is not None and device_type not in self.devices:
            raise QuantizationError(
                f"quantization={self.name} runs on {', '.join(self.devices)} only, not on device '{device}'. "
                f"Pass --device {self.devices[0]}, or choose another method."
            )
        if self.requires is not None and importlib.util.find_spec(self.requires[0]) is None:
            raise QuantizationError(f"quantization={self.name} needs {self.requires[0]}: {self.requires[1]}.")

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        return load_kwargs

    def load_model(self, auto_class, pretrained, *args, **load_kwargs):
        """How the checkpoint is loaded (after update_load_kwargs); a method that loads something
        else than the checkpoint itself, e.g. a cached quantized copy, overrides this."""
        return auto_class.from_pretrained(pretrained, *args, **load_kwargs)

    def postprocess_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def record(self, model_bytes_before: int | None = None, model_bytes_after: int | None = None) -> QuantizationRecord:
        """`config.quantization` of the results JSON (after postprocess_model has run)."""
        return QuantizationRecord(
            method=self.name,
            label=compression_label({"quantization": self.name, **self.config.given_options()}),
            settings=self.settings,
            weight_bits=self.weight_bits,
            effective_bits_per_weight=self.effective_bits_per_weight,
            model_bytes_before=model_bytes_before,
            model_bytes_after=model_bytes_after,
            details=dict(self.details),
        )
