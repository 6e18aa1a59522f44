"""The uncompressed reference: the model exactly as `from_pretrained` loads it."""

from lm_eval_bias.model_wrappers.quantizers.base import Quantizer


class NoQuantization(Quantizer):
    name = "none"
    nominal_bits = 32  # the checkpoint's own fp32 weights
