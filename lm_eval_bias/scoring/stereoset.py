"""StereoSet candidate scores (higher = more likely), for causal and masked LMs.

A request is ``(split, context, sentence, mlm_score)``: for ``intrasentence`` the context
is the template holding BLANK and the sentence the filled-in candidate; for
``intersentence`` the context is the preceding sentence and the sentence the candidate.

Causal LMs (:func:`causal_pair` turns a request into a loglikelihood request; the wrapper
divides by the number of scored tokens):

- intrasentence: mean log-probability of the sentence after the prefix token, the
  ``crows_pairs_bias`` sentence score (bias-bench's geometric mean of token probabilities,
  i.e. the same ordering);
- intersentence: mean log-probability of the candidate given ``context + " "``.

Masked LMs (:func:`score_masked`):

- intrasentence, ``mlm_score="target_word"`` (default; bias-bench's ``_likelihood_score``):
  the filled-in word (see :func:`~lm_eval_bias.data.stereoset.blank_filler`) is tokenized
  and its subtokens are predicted left to right, the k-th from the context with BLANK
  replaced by the first k-1 subtokens (decoded) followed by one mask token; the score is
  the mean of the k subtoken probabilities. Where the context has two BLANKs both get
  that text and the first mask is read (what bias-bench does at batch size 1).
  bias-bench encodes the word with a leading space whenever the model's name contains
  ``roberta``; here the word is encoded with a leading space whenever BLANK follows a space
  (no change for WordPiece or SentencePiece, the word-initial form for byte-level BPE).
- intrasentence, ``mlm_score="pll"``: pseudo-log-likelihood of the whole sentence,
  sum over its non-special tokens of log p(token | sentence with that token masked).
- intersentence: pseudo-log-likelihood of the candidate given the context, the two
  encoded as a sentence pair, candidate tokens masked one at a time, averaged over the
  candidate's tokens (ours: Nadeem et al. score intersentence with NSP heads, unused here).

All masked copies of all requests run together in length-sorted, right-padded batches
inside ``valid_tokens_scope``, the MLM head at the masked positions only and, on a CPU, the
linear layers packed for oneDNN (:mod:`~lm_eval_bias.scoring.packed_linears`);
log-probabilities use an fp64 normaliser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm import tqdm

from lm_eval_bias.data.stereoset import BLANK, blank_filler
from lm_eval_bias.errors import BiasOptionError
from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded
from lm_eval_bias.scoring.heap import retained_heap
from lm_eval_bias.scoring.masked import logits_at
from lm_eval_bias.scoring.packed_linears import packed_linears
from lm_eval_bias.valid_tokens import valid_tokens_scope

SPLITS = ("intrasentence", "intersentence")
MLM_SCORES = ("target_word", "pll")

# (request index, input ids, token type ids or None, masked position, original token id)
Copy = tuple[int, list[int], "list[int] | None", int, int]


def check_mlm_score(name: str) -> str:
    """Validate a StereoSet ``mlm_score`` setting.

    Args:
        name: the setting, one of ``MLM_SCORES``.

    Returns:
        ``name`` unchanged.

    Raises:
        BiasOptionError: ``name`` is not one of ``MLM_SCORES`` (a ValueError).
    """
    if name not in MLM_SCORES:
        raise BiasOptionError(f"Unknown StereoSet masked-LM score {name!r}; expected one of {MLM_SCORES}.")
    return name


def causal_pair(split: str, context: str, sentence: str, mlm_score: str = "target_word") -> tuple[str, str]:
    """The (context, continuation) loglikelihood request that scores this candidate.

    Args:
        split: ``"intrasentence"`` or ``"intersentence"``.
        context: the template (intrasentence) or the preceding sentence (intersentence).
        sentence: the candidate sentence.
        mlm_score: not used for causal LMs (taken so that a whole request can be passed).

    Returns:
        ``("", sentence)`` for intrasentence, ``(context, " " + sentence)`` for intersentence.

    Raises:
        ValueError: an unknown ``split``.
    """
    if split == "intrasentence":
        return "", sentence
    if split == "intersentence":
        return context, " " + sentence
    raise ValueError(f"Unknown StereoSet split {split!r}; expected one of {SPLITS}.")


def target_word_copies(tokenizer, context: str, sentence: str) -> list[tuple[list[int], int, int]]:
    """(input ids, mask position, subtoken id) for each subtoken of the filled-in word.

    Args:
        tokenizer: a masked LM's Hugging Face tokenizer.
        context: the intrasentence template, holding BLANK.
        sentence: the candidate sentence (the template filled in).

    Returns:
        One ``(input ids, position of the mask token, subtoken id)`` per subtoken of the word, the k-th
        with BLANK replaced by the decoded first k-1 subtokens and one mask token (module docstring).

    Raises:
        ValueError: the word encodes to no tokens (or the context holds no BLANK), or tokenizing a copy
            lost its mask token.
    """
    word = blank_filler(context, sentence)
    blank = context.index(BLANK)
    spaced = blank > 0 and context[blank - 1] == " "
    word_ids = tokenizer.encode((" " if spaced else "") + word, add_special_tokens=False)
    if not word_ids:
        raise ValueError(f"The word {word!r} filling BLANK in {context!r} encodes to no tokens.")
    copies = []
    for k, subtoken in enumerate(word_ids):
        insertion = tokenizer.decode(word_ids[:k]) if k else ""
        text = context.replace(BLANK, (insertion.lstrip() if spaced else insertion) + tokenizer.mask_token)
        ids = list(tokenizer(text)["input_ids"])
        if tokenizer.mask_token_id not in ids:
            raise ValueError(f"The mask token was lost when tokenizing {text!r}.")
        copies.append((ids, ids.index(tokenizer.mask_token_id), subtoken))
    return copies


def pll_copies(tokenizer, text: str, text_pair: str | None = None) -> list[tuple[list[int], list[int] | None, int]]:
    """(input ids, token type ids, position) masking each non-special token of ``text``, or of
    ``text_pair`` when given (the pair encoded as the tokenizer encodes sentence pairs).

    Args:
        tokenizer: a masked LM's Hugging Face tokenizer.
        text: the sentence to score, or the first sentence (context) of a pair.
        text_pair: the sentence to score after ``text``, or None.

    Returns:
        One ``(input ids, token type ids or None, position to mask)`` per scored token, in order; the ids
        are unmasked and shared by all the entries.

    Raises:
        ValueError: there is no token to score.
    """
    encoding = tokenizer(text, text_pair) if text_pair is not None else tokenizer(text)
    ids = list(encoding["input_ids"])
    token_types = list(encoding["token_type_ids"]) if "token_type_ids" in encoding else None
    special = set(tokenizer.all_special_ids)
    if text_pair is not None:
        sequence_ids = encoding.sequence_ids()
        scored = [i for i, s in enumerate(sequence_ids) if s == 1 and ids[i] not in special]
    else:
        scored = [i for i, token in enumerate(ids) if token not in special]
    if not scored:
        raise ValueError(f"No token to score in {text_pair if text_pair is not None else text!r}.")
    return [(ids, token_types, position) for position in scored]


def score_masked(
    model: torch.nn.Module,
    tokenizer,
    requests: Sequence[tuple[str, str, str, str]],
    *,
    batch_size: int,
    progress: bool = False,
) -> list[float]:
    """One score per ``(split, context, sentence, mlm_score)`` request (module docstring).

    Args:
        model: a masked LM.
        tokenizer: its Hugging Face tokenizer, which must have a mask token.
        requests: ``(split, context, sentence, mlm_score)`` tuples; ``mlm_score`` is read for
            intrasentence requests only.
        batch_size: masked copies per forward pass (on a CPU the least number, see ``masked_logprobs``).
        progress: show a tqdm progress bar over the batches.

    Returns:
        One score per request, in order: the mean subtoken probability (intrasentence, ``target_word``),
        the summed log-probability (intrasentence, ``pll``), or the mean log-probability of the
        candidate's tokens (intersentence).

    Raises:
        ValueError: the tokenizer has no mask token, a request's split or intrasentence ``mlm_score`` is
            unknown, or a candidate cannot be masked (see ``target_word_copies``, ``pll_copies``).
    """
    if tokenizer.mask_token_id is None:
        raise ValueError("This tokenizer has no mask token, so masked-LM StereoSet scores cannot be computed.")
    copies: list[Copy] = []
    kinds = []
    for index, (split, context, sentence, mlm_score) in enumerate(requests):
        if split == "intrasentence" and check_mlm_score(mlm_score) == "target_word":
            kinds.append("mean_probability")
            filled = target_word_copies(tokenizer, context, sentence)
            copies += [(index, ids, None, pos, target) for ids, pos, target in filled]
        elif split in SPLITS:
            pair = split == "intersentence"
            kinds.append("mean_logprob" if pair else "sum_logprob")
            masked = pll_copies(tokenizer, context, sentence) if pair else pll_copies(tokenizer, sentence)
            copies += [(index, ids, types, pos, ids[pos]) for ids, types, pos in masked]
        else:
            raise ValueError(f"Unknown StereoSet split {split!r}; expected one of {SPLITS}.")
    logprobs = masked_logprobs(model, tokenizer, copies, batch_size=batch_size, progress=progress)
    per_request: list[list[float]] = [[] for _ in requests]
    for (index, *_), logprob in zip(copies, logprobs):
        per_request[index].append(logprob)
    scores = []
    for kind, values in zip(kinds, per_request):
        if kind == "mean_probability":
            scores.append(sum(math.exp(v) for v in values) / len(values))
        elif kind == "mean_logprob":
            scores.append(sum(values) / len(values))
        else:
            scores.append(sum(values))
    return scores


def masked_logprobs(
    model, tokenizer, copies: Sequence[Copy], *, batch_size: int, progress: bool = False
) -> list[float]:
    """log p(original token | copy with that position masked) for each copy.

    Copies whose masked inputs are identical (the first subtoken of the three filled-in
    words of a cluster) share one forward row.

    Args:
        model: a masked LM.
        tokenizer: its Hugging Face tokenizer (its mask token masks, its pad token, else the mask token,
            pads).
        copies: ``(request index, input ids, token type ids or None, position to mask, token id to
            score)`` tuples (``Copy``).
        batch_size: rows per forward pass; on a CPU the least number, as a batch also holds at least
            ``batching.CPU_MIN_TOKENS`` tokens.
        progress: show a tqdm progress bar over the batches.

    Returns:
        log p(token id | the copy with its position masked) per copy, in order (fp64 normaliser).
    """
    device = model_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.mask_token_id
    rows: dict[tuple, int] = {}  # (masked ids, token types, position) -> row
    row_of_copy = []
    for _, ids, types, position, _ in copies:
        masked = list(ids)
        masked[position] = tokenizer.mask_token_id
        key = (tuple(masked), None if types is None else tuple(types), position)
        row_of_copy.append(rows.setdefault(key, len(rows)))
    keys = list(rows)
    targets_of_row: list[list[tuple[int, int]]] = [[] for _ in keys]  # row -> [(copy, target id)]
    for index, (row, copy) in enumerate(zip(row_of_copy, copies)):
        targets_of_row[row].append((index, copy[4]))
    out = [0.0] * len(copies)
    batches = list(length_sorted_batches([len(key[0]) for key in keys], batch_size, min_tokens_per_batch(device)))
    with retained_heap(), packed_linears(model):
        for batch in tqdm(batches, desc="Scoring masked tokens", disable=not progress):
            logprobs = _batch_logprobs(model, [keys[r] for r in batch], pad, device)
            for slot, r in enumerate(batch):
                for index, target in targets_of_row[r]:
                    out[index] = float(logprobs[slot, target])
    return out


def _batch_logprobs(model, keys, pad: int, device) -> torch.Tensor:
    """Log-softmax (fp64, on the CPU) at each row's masked position, for one batch of
    (ids, token types, position) rows."""
    input_ids, attention_mask = right_padded([ids for ids, _, _ in keys], pad, device)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if any(types is not None for _, types, _ in keys):  # segment ids; zeros for single sentences
        types = [types if types is not None else [0] * len(ids) for ids, types, _ in keys]
        inputs["token_type_ids"] = right_padded(types, 0, device)[0]
    positions = torch.as_tensor([position for _, _, position in keys], device=device)
    with torch.inference_mode(), valid_tokens_scope(attention_mask):
        logits = logits_at(model, positions, **inputs).double()
        return torch.log_softmax(logits, dim=-1).cpu()
