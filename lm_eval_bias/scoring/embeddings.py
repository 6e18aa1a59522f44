"""Sentence embeddings for SEAT: the mean of the last hidden layer over all tokens, L2-normalised.

As bias-bench's ``seat.py`` (after May et al., 2019): each sentence is tokenized the way its
tokenizer does by default (special tokens included, e.g. [CLS] ... [SEP] for BERT), the model
body's last hidden state is averaged over every token, and the mean vector is divided by its
norm. Batches are right-padded and length-sorted; the mean runs over each sentence's own
tokens only, and forwards publish the attention mask (``valid_tokens_scope``), so a
sentence's embedding does not depend on the batch it is in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import length_sorted_batches, min_tokens_per_batch, model_device, right_padded
from lm_eval_bias.scoring.heap import retained_heap
from lm_eval_bias.valid_tokens import valid_tokens_scope


class SentenceEmbedding(np.ndarray):
    """A plain float64 vector whose text form is one short line: the harness writes every
    response into its logged samples as ``str(response)``, and a full vector per sentence
    would make SEAT's sample files tens of megabytes."""

    def __repr__(self) -> str:
        return f"<sentence embedding: {self.shape[-1]} dimensions>"

    __str__ = __repr__


def last_hidden_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, length, hidden) output of the model's last layer (after its final norm, if any).

    Uses the model body (``base_model``, e.g. ``BertModel`` inside ``BertForMaskedLM``) so the
    LM head is not computed; a model without a separate body returns its last hidden state.

    Args:
        model: a transformers model (masked or causal LM, or a bare encoder).
        input_ids: (batch, length) token ids.
        attention_mask: (batch, length) mask, 1 on real tokens.

    Returns:
        The (batch, length, hidden) hidden states, in the model's dtype and on its device.
    """
    body = getattr(model, "base_model", model)
    if body is not model:
        return body(input_ids=input_ids, attention_mask=attention_mask)[0]
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return outputs.hidden_states[-1]


def sentence_embeddings(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[str],
    *,
    batch_size: int,
    progress: bool = False,
) -> list[SentenceEmbedding]:
    """One unit-norm float64 vector per sentence (see the module docstring), as a
    :class:`SentenceEmbedding` (``np.asarray`` turns it into a plain array).

    Args:
        model: a transformers model whose last hidden layer is averaged (``last_hidden_states``).
        tokenizer: its Hugging Face tokenizer; batches are padded with its pad token, else its EOS
            token, else id 0 (padding is never averaged).
        sentences: the sentences to embed.
        batch_size: sentences per forward pass (on a CPU the least number: a batch also holds at least
            ``batching.CPU_MIN_TOKENS`` tokens).
        progress: show a tqdm progress bar over the batches.

    Returns:
        One (hidden,) float64 ``SentenceEmbedding`` of L2 norm 1 per sentence, in order.

    Raises:
        ValueError: a sentence encodes to no tokens.
    """
    encoded = [list(tokenizer(sentence)["input_ids"]) for sentence in sentences]
    if any(not ids for ids in encoded):
        raise ValueError("A sentence encodes to no tokens, so it has no mean hidden state.")
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    device = model_device(model)
    out: list[np.ndarray | None] = [None] * len(sentences)
    batches = list(length_sorted_batches([len(ids) for ids in encoded], batch_size, min_tokens_per_batch(device)))
    with retained_heap():
        for batch in tqdm(batches, desc="Embedding sentences", disable=not progress):
            input_ids, attention_mask = right_padded([encoded[i] for i in batch], pad, device)
            with torch.inference_mode(), valid_tokens_scope(attention_mask):
                hidden = last_hidden_states(model, input_ids, attention_mask)
            for row, index in enumerate(batch):
                mean = hidden[row, : len(encoded[index])].double().mean(dim=0)
                out[index] = (mean / mean.norm()).cpu().numpy().view(SentenceEmbedding)
    return out  # type: ignore[return-value]
