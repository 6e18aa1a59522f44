"""From the harness's loglikelihood responses to benchmark sentence scores.

Our wrappers answer `loglikelihood` with `ScoredLoglikelihood`: still the harness's
`(logprob, is_greedy)` pair, so every stock task works, but carrying the number of scored
tokens (for length normalisation) or `None` when the score is already final (masked-LM
pseudo-log-likelihoods). Responses from other harness models are plain tuples; their token
counts come from the model's tokenizer, the way `HFLM.loglikelihood` encodes an
empty-context continuation.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from lm_eval_bias.errors import BiasOptionError

SENTENCE_SCORES = ("mean", "sum")
_NOT_GIVEN = object()

# model_args that decide how the tokenizer of a stock harness model is loaded
TOKENIZER_ARGS = (
    "pretrained",
    "tokenizer",
    "revision",
    "subfolder",
    "trust_remote_code",
    "gguf_file",
    "prefix_token_id",
)


class ScoredLoglikelihood(tuple):
    """`(logprob, is_greedy)` plus `num_tokens` (None: the logprob is already the sentence score)
    and `perplexity_terms`: (sum of token log-probs, tokens) behind it, (logprob, num_tokens) unless
    given (a masked LM's pseudo-log-likelihood gives its own: it is final, yet made of scored tokens).

    Args:
        logprob: the summed log-probability (or final score), stored as ``self[0]``.
        is_greedy: whether the continuation is the greedy one, stored as ``self[1]``.
        num_tokens: the number of scored tokens, or None when ``logprob`` is already the sentence score.
        perplexity_terms: ``(sum of token log-probs, tokens)``; defaults to ``(logprob, num_tokens)``
            when ``num_tokens`` is given, else None.

    Attributes:
        num_tokens: as given.
        perplexity_terms: as given, or its default.
    """

    def __new__(
        cls, logprob: float, is_greedy: bool, num_tokens: int | None, perplexity_terms: tuple[float, int] | None = None
    ):
        scored = super().__new__(cls, (float(logprob), bool(is_greedy)))
        scored.num_tokens = num_tokens
        if perplexity_terms is None and num_tokens is not None:
            perplexity_terms = (float(logprob), num_tokens)
        scored.perplexity_terms = perplexity_terms
        return scored

    def __reduce__(self):
        return (ScoredLoglikelihood, (self[0], self[1], self.num_tokens, self.perplexity_terms))


def check_sentence_score(name: str) -> str:
    """Validate a ``sentence_score`` setting.

    Args:
        name: the setting, one of ``SENTENCE_SCORES``.

    Returns:
        ``name`` unchanged.

    Raises:
        BiasOptionError: ``name`` is not one of ``SENTENCE_SCORES`` (a ValueError).
    """
    if name not in SENTENCE_SCORES:
        raise BiasOptionError(f"Unknown sentence_score {name!r}; expected one of {SENTENCE_SCORES}.")
    return name


def tokenizer_spec(model_args: dict[str, Any]) -> str:
    """The model_args that identify the tokenizer, as a JSON string (hashable: it keys the tokenizer cache).

    Args:
        model_args: the harness model's arguments (``pretrained``, ``tokenizer``, ``revision``, ...).

    Returns:
        A JSON object with sorted keys holding those of ``TOKENIZER_ARGS`` that are set (not None or "").
    """
    return json.dumps({k: model_args[k] for k in TOKENIZER_ARGS if model_args.get(k) not in (None, "")}, sort_keys=True)


def sentence_score(response, sentence: str, mode: str, tokenizer_json: str) -> float:
    """The sentence's score: summed log-prob, or its mean per token when mode == 'mean'.

    Args:
        response: a loglikelihood response, ``(logprob, is_greedy)``: a ``ScoredLoglikelihood`` from
            our wrappers, or a plain tuple from another harness model.
        sentence: the scored continuation's text, tokenized to count its tokens when the response does
            not carry the count.
        mode: ``"sum"``, or ``"mean"`` (any other value is taken as ``"mean"``).
        tokenizer_json: ``tokenizer_spec`` of the model's arguments.

    Returns:
        ``float(response[0])`` for ``"sum"``, or for a response whose score is already final
        (``num_tokens`` None); otherwise that divided by the token count (0.0 for no tokens).

    Raises:
        ValueError: the tokens must be counted and ``tokenizer_json`` names no tokenizer.
    """
    logprob = float(response[0])
    if mode == "sum":
        return logprob
    num_tokens = getattr(response, "num_tokens", _NOT_GIVEN)
    if num_tokens is None:
        return logprob
    if num_tokens is _NOT_GIVEN:
        num_tokens = continuation_token_count(sentence, tokenizer_json)
    return logprob / num_tokens if num_tokens else 0.0


def perplexity_terms(response, sentence: str, tokenizer_json: str) -> tuple[float, float]:
    """(sum of token log-probs, tokens) behind a response; tokens NaN when no one can count them
    (a stock model given as an object, with no tokenizer named in model_args).

    Args:
        response: a loglikelihood response (``ScoredLoglikelihood`` or a plain ``(logprob, is_greedy)``).
        sentence: the scored continuation's text, tokenized when the response carries no count.
        tokenizer_json: ``tokenizer_spec`` of the model's arguments.

    Returns:
        ``(log-prob sum, token count)`` as floats: the response's ``perplexity_terms`` when it has them;
        ``(logprob, NaN)`` when its score is final without terms or no tokenizer is named.
    """
    terms = getattr(response, "perplexity_terms", None)
    if terms is not None:
        return float(terms[0]), float(terms[1])
    if getattr(response, "num_tokens", _NOT_GIVEN) is None or not _names_tokenizer(tokenizer_json):
        return float(response[0]), math.nan
    return float(response[0]), float(continuation_token_count(sentence, tokenizer_json))


def _names_tokenizer(tokenizer_json: str) -> bool:
    spec = json.loads(tokenizer_json)
    return isinstance(spec.get("tokenizer") or spec.get("pretrained"), str)


def continuation_token_count(sentence: str, tokenizer_json: str) -> int:
    """Tokens HFLM scores for `sentence` after its prefix token (empty context).

    The tokenizer is loaded once per spec (the last four are cached).

    Args:
        sentence: the continuation's text.
        tokenizer_json: ``tokenizer_spec`` of the model's arguments.

    Returns:
        The number of tokens of ``sentence`` (encoded without special tokens), less a leading prefix token.

    Raises:
        ValueError: ``tokenizer_json`` names no tokenizer (neither ``tokenizer`` nor ``pretrained`` a string).
    """
    tokenizer, prefix_token_id = _tokenizer(tokenizer_json)
    ids = tokenizer.encode(sentence, add_special_tokens=False)
    return len(ids) - 1 if ids and ids[0] == prefix_token_id else len(ids)


@lru_cache(maxsize=4)
def _tokenizer(tokenizer_json: str):
    spec = json.loads(tokenizer_json)
    source = spec.get("tokenizer") or spec.get("pretrained")
    if not isinstance(source, str):
        raise ValueError(
            "sentence_score=mean needs token counts. Use `--model quantized_hf` (it reports them), "
            "give the model as `pretrained=NAME_OR_PATH` in model_args, or score with "
            '`--metadata \'{"sentence_score": "sum"}\'`.'
        )
    from transformers import AutoTokenizer

    kwargs = {k: spec[k] for k in ("revision", "subfolder", "trust_remote_code", "gguf_file") if k in spec}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    prefix = spec.get("prefix_token_id")
    if prefix is None:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return tokenizer, None if prefix is None else int(prefix)
