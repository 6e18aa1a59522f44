"""One module per compression method; installed as ``lm_eval_bias.model_wrappers.quantizers``.

What code outside the package needs to add a method (docs/compression.md, "Adding a method") is
importable from here: ``register_method``, ``get_quantizer``, ``Quantizer``, ``QuantizationConfig``,
``QuantizationError`` and ``option``. They are imported when first asked for, so that importing a
light submodule (``config``: no torch) does not import torch through this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "register_method": "auto",
    "get_quantizer": "auto",
    "Quantizer": "base",
    "QuantizationConfig": "config",
    "QuantizationError": "config",
    "option": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
