"""Inputs longer than the model's context: an error naming the document, unless ``long_inputs=truncate``.

A causal LM reads at most ``max_length`` tokens, so a request of more than ``max_length + 1``
tokens (context + continuation; the first token is never predicted) cannot be scored whole.
lm-eval's HFLM keeps its last tokens without a word, and a CrowS-Pairs sentence's score becomes
the mean over the part that fit. ``quantized_hf`` refuses instead (:class:`BiasInputTooLongError`,
naming the task, the document, both lengths and the way out); ``long_inputs=truncate`` in
``--model_args`` keeps the harness's rule (the last ``max_length + 1`` tokens are scored), logs
one warning, and records ``long_inputs: {"rule": "truncate", "truncated": N}`` in the results
JSON's ``config``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lm_eval_bias.errors import BiasInputTooLongError

LONG_INPUT_RULES = ("error", "truncate")
logger = logging.getLogger("lm_eval.lm_eval_bias")


def describe(request: Any) -> str:
    """ "task T, document N (pair_id P)" for an lm-eval Instance; "a request" when there is none."""
    if request is None:
        return "a request"
    where = f"task {getattr(request, 'task_name', '?')}, document {getattr(request, 'doc_id', '?')}"
    doc = getattr(request, "doc", None)
    if isinstance(doc, dict):
        for key in ("pair_id", "cluster_id", "example_id"):
            if key in doc:
                return f"{where} ({key} {doc[key]})"
    return where


def _first_too_long(long: Sequence[int], lengths: Sequence[int], requests: Sequence[Any]) -> tuple[str, int, str]:
    """(the first too-long request named, its length, "; N more request(s) are too long" or "")."""
    first = long[0]
    more = f"; {len(long) - 1} more request(s) are too long" if len(long) > 1 else ""
    return describe(requests[first] if first < len(requests) else None), lengths[first], more


class InputLengthCheck:
    """One model's rule for inputs longer than its context, and the count of those it truncated."""

    def __init__(self, rule: str = "error") -> None:
        self.rule = rule
        self.truncated = 0
        self._owners: dict[tuple, Any] = {}

    def expect(self, requests: Sequence[Any]) -> None:
        """Remember which request each (context, continuation) came from, to name it in an error."""
        self._owners = {tuple(request.args[:2]): request for request in requests}

    def owner(self, cache_key: Any) -> Any:
        return self._owners.get(tuple(cache_key)) if isinstance(cache_key, (tuple, list)) else None

    def check(self, lengths: Sequence[int], requests: Sequence[Any], max_length: int | None) -> None:
        """Raise (rule ``error``) or count (``truncate``) the requests of more than ``max_length + 1`` tokens.

        Args:
            lengths: each request's tokens, context and continuation together.
            requests: the Instance each length belongs to (None where unknown), to name it.
            max_length: the model's context in tokens; None: no limit.
        """
        if max_length is None:
            return
        long = [i for i, n in enumerate(lengths) if n > max_length + 1]
        if not long:
            return
        if self.rule != "truncate":
            where, length, more = _first_too_long(long, lengths, requests)
            raise BiasInputTooLongError(
                f"{where}: the input is {length} tokens, longer than the model's context of {max_length} "
                f"tokens (+1 for the first, unpredicted token){more}; shorten it, or pass long_inputs=truncate "
                f"in --model_args to score only its last {max_length + 1} tokens"
            )
        if not self.truncated:
            logger.warning(
                "long_inputs=truncate: inputs longer than the model's context of %d tokens are scored on their "
                "last %d tokens only (recorded in the results' config.long_inputs)",
                max_length,
                max_length + 1,
            )
        self.truncated += len(long)

    def check_whole(self, lengths: Sequence[int], requests: Sequence[Any], max_length: int | None) -> None:
        """Masked LMs: every input, special tokens included, must fit the context; no rule truncates it.

        A pseudo-log-likelihood masks each token in turn with the whole sentence around it, so cutting
        the sentence would change what is measured: ``long_inputs=truncate`` does not apply.
        """
        long = [i for i, n in enumerate(lengths) if max_length is not None and n > max_length]
        if not long:
            return
        where, length, more = _first_too_long(long, lengths, requests)
        raise BiasInputTooLongError(
            f"{where}: the input is {length} tokens with the masked LM's special tokens, longer than its "
            f"context of {max_length} tokens{more}; shorten it (long_inputs=truncate is for causal LMs: a "
            "pseudo-log-likelihood needs the whole sentence)"
        )

    def record(self) -> dict[str, Any]:
        """What the results JSON's ``config`` records (nothing under the default rule)."""
        return {"long_inputs": {"rule": self.rule, "truncated": self.truncated}} if self.rule == "truncate" else {}
