"""bitsandbytes LLM.int8() and 4-bit (NF4 / FP4) weights, through transformers' BitsAndBytesConfig."""

from __future__ import annotations

from typing import Any

import torch

from lm_eval_bias.model_wrappers.quantizers.base import Quantizer


class _BitsAndBytes(Quantizer):
    requires = ("bitsandbytes", "pip install bitsandbytes")

    def config_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        from transformers import BitsAndBytesConfig

        return {**load_kwargs, "quantization_config": BitsAndBytesConfig(**self.config_kwargs())}


class BitsAndBytesInt8(_BitsAndBytes):
    name = "bnb_int8"
    position_independent = False  # LLM.int8 picks outlier columns over the whole input
    nominal_bits = 8

    def config_kwargs(self) -> dict[str, Any]:
        return {"load_in_8bit": True}


class _BitsAndBytes4Bit(_BitsAndBytes):
    quant_type: str
    nominal_bits = 4

    def config_kwargs(self) -> dict[str, Any]:
        return {"load_in_4bit": True, "bnb_4bit_quant_type": self.quant_type, "bnb_4bit_compute_dtype": torch.float32}

    def postprocess_model(self, model: torch.nn.Module) -> torch.nn.Module:
        self.details = {"compute_dtype": "float32"}
        return model


class BitsAndBytesNF4(_BitsAndBytes4Bit):
    name = "bnb_nf4"
    quant_type = "nf4"


class BitsAndBytesFP4(_BitsAndBytes4Bit):
    name = "bnb_fp4"
    quant_type = "fp4"
