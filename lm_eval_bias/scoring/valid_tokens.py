"""Which positions of the batch being scored hold real tokens: :mod:`lm_eval_bias.valid_tokens`.

The per-sequence scope lives in that neutral module so that quantizers can read it without
importing the scorers; this name stays for the scorers and for code that imported it here.
"""

from lm_eval_bias.valid_tokens import current_valid_tokens, valid_tokens_scope

__all__ = ["current_valid_tokens", "valid_tokens_scope"]
