"""Pseudo-log-likelihood of a continuation given its context under a masked LM.

For a ``loglikelihood`` request ``(context, continuation)`` with a context (a multiple-choice
item's prompt and one answer), the text is encoded as the tokenizer encodes one sequence
(``[CLS] context continuation [SEP]``); each continuation token is masked in turn, everything
else visible, and the log-probabilities of the original tokens are summed (Salazar et al.'s
PLL restricted to the answer). A lone sentence without a context (HolisticBias) is framed the
same way (``[CLS] sentence [SEP]``) and all its tokens are scored: its whole PLL. All masked
copies of all requests share length-sorted batches (``stereoset.masked_logprobs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lm_eval_bias.scoring.stereoset import masked_logprobs


def continuation_copies(tokenizer, context: str, continuation: str) -> list[tuple[list[int], int]]:
    """(input ids, position) masking each token of the continuation, in order.

    Args:
        tokenizer: the masked LM's tokenizer.
        context: the text before the continuation.
        continuation: the scored text (its leading space, if any, kept as the harness sends it).

    Returns:
        One (ids, position) per continuation token.

    Raises:
        ValueError: when the continuation has no token.
    """
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if not answer_ids:
        raise ValueError(f"No token to score in the continuation {continuation!r}.")
    # the special tokens the tokenizer puts around one sequence ([CLS] ... [SEP]), read off the context
    # (off the continuation when there is no context: a whole sentence, every token of it scored)
    body = context_ids or answer_ids
    framed = list(tokenizer(context if context_ids else continuation)["input_ids"])
    start = next(i for i in range(len(framed) - len(body) + 1) if framed[i : i + len(body)] == body)
    prefix, suffix = framed[:start], framed[start + len(body) :]
    ids = [*prefix, *context_ids, *answer_ids, *suffix]
    first = len(prefix) + len(context_ids)
    return [(ids, position) for position in range(first, first + len(answer_ids))]


def score_masked_continuations(
    model: torch.nn.Module,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int,
    progress: bool = False,
) -> list[tuple[float, int]]:
    """(PLL of the continuation given the context, its token count) for each ``(context, continuation)``.

    Args:
        model: a masked LM.
        tokenizer: its tokenizer (with a mask token).
        requests: ``(context, continuation)`` texts.
        batch_size: rows per forward on an accelerator (on a CPU the token floor of ``batching``).
        progress: show a progress bar.

    Returns:
        One (sum of log p(token | the rest, token masked), number of tokens) per request.

    Raises:
        ValueError: when the tokenizer has no mask token or a continuation has no token.
    """
    if tokenizer.mask_token_id is None:
        raise ValueError("This tokenizer has no mask token, so pseudo-log-likelihoods cannot be computed.")
    copies = []
    for index, (context, continuation) in enumerate(requests):
        copies += [
            (index, ids, None, position, ids[position])
            for ids, position in continuation_copies(tokenizer, context, continuation)
        ]
    logprobs = masked_logprobs(model, tokenizer, copies, batch_size=batch_size, progress=progress)
    sums, counts = [0.0] * len(requests), [0] * len(requests)
    for (index, *_), logprob in zip(copies, logprobs):
        sums[index] += logprob
        counts[index] += 1
    return list(zip(sums, counts))
