"""The teacher record a distilled checkpoint carries: :mod:`lm_eval_bias.distillation_record`.

The format lives in that neutral module, which the harness wrappers read without importing
this package; this name stays for the distillation code and for code that imported it here.
"""

from lm_eval_bias.distillation_record import (
    CONFIG_KEY,
    KNOWN_PAIRS,
    RECORD_FILE,
    checkpoint_record,
    distillation_info,
    known_teacher,
    resolve_record,
)

__all__ = [
    "CONFIG_KEY",
    "KNOWN_PAIRS",
    "RECORD_FILE",
    "checkpoint_record",
    "distillation_info",
    "known_teacher",
    "resolve_record",
]
