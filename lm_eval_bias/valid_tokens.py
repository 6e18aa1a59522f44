"""Which positions of the batch being scored hold real tokens.

Scorers publish the attention mask of the batch they run; modules whose arithmetic
would otherwise mix padding into per-tensor statistics (dynamic int8 activation scales)
read it and treat each sequence on its own. Outside a scorer nothing is published and
such modules behave as usual.

A neutral module (torch only): the scorers (:mod:`lm_eval_bias.scoring`) and the quantizers
(``model_wrappers/quantizers/dynamic_int8.py``) meet here without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_valid_tokens: ContextVar[torch.Tensor | None] = ContextVar("lm_eval_bias_valid_tokens", default=None)


@contextmanager
def valid_tokens_scope(attention_mask: torch.Tensor) -> Iterator[None]:
    token = _valid_tokens.set(attention_mask.bool())
    try:
        yield
    finally:
        _valid_tokens.reset(token)


def current_valid_tokens() -> torch.Tensor | None:
    return _valid_tokens.get()
