"""The one interface every compression method implements.

A method is a subclass that fills in some of four hooks, called in this order by
`QuantizedHFLM`: `validate_environment` (before anything is loaded), `update_load_kwargs`
(what `from_pretrained` is given: a dtype, a transformers quantization config), `load_model`
(what is loaded: the checkpoint, or e.g. a cached quantized copy of it), and
`postprocess_model` (after loading: post-training quantization of the loaded model).
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import torch


class QuantizationError(ValueError):
    """A compression method was asked for something it cannot do here."""


class Quantizer:
    name: ClassVar[str]
    # option name -> parser applied to the model_args string (e.g. int)
    options: ClassVar[dict[str, Any]] = {}
    # device types the method runs on; None means any
    devices: ClassVar[tuple[str, ...] | None] = None
    # (importable module, what to install) the method needs
    requires: ClassVar[tuple[str, str] | None] = None

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise QuantizationError(f"quantization={self.name} does not take {', '.join(unknown)}; its options: {valid}.")
        self.settings = {key: self.options[key](value) for key, value in settings.items()}

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

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, **self.settings}
