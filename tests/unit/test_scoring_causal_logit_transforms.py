"""The causal scorer on models whose forward changes the head's logits: Gemma-2's
final_logit_softcapping (applied by our body-then-head path) and Cohere's logit_scale (not known
to it, so the scorer must fall back to the model's own full logits); both against the
one-item fp64 reference over the model's own logits."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.scoring import causal, head

SENTENCES = CORPUS[:6] + [" ".join(CORPUS[6:12])]  # different lengths, one long enough for several head calls


def _load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _requests(tokenizer):
    return [([tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False)) for s in SENTENCES]


def _reference(model, requests):
    return [reference_causal_logprob(model, context, continuation)[0] for context, continuation in requests]


def _head_only_logits(model, ids):
    with torch.no_grad():
        return model.get_output_embeddings()(model.base_model(input_ids=ids)[0])[0]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_softcapped_gemma2_matches_the_reference(tiny_gemma2_dir, batch_size, monkeypatch):
    model, tokenizer = _load(tiny_gemma2_dir)
    requests = _requests(tokenizer)
    ids = torch.tensor([requests[0][0] + requests[0][1]])
    with torch.no_grad():
        capped = model(input_ids=ids).logits[0]
    raw = _head_only_logits(model, ids)
    cap = model.config.final_logit_softcapping
    assert (capped - raw).abs().max() > 0.1  # the cap really bends these logits...
    torch.testing.assert_close(capped, torch.tanh(raw / cap) * cap)  # ...as tanh(x / cap) * cap
    assert head.body_then_head_matches(model, ids[0, :8].tolist())  # the split path is the one taken
    monkeypatch.setattr(causal, "HEAD_POSITIONS", 16)  # several head calls per batch
    scores = causal.score_continuations(model, requests, batch_size=batch_size, pad_token_id=tokenizer.pad_token_id)
    assert [s.logprob for s in scores] == pytest.approx(_reference(model, requests), abs=1e-4)
    assert [s.num_tokens for s in scores] == [len(c) for _, c in requests]


def test_an_unknown_logit_transform_falls_back_to_full_logits(tiny_cohere_dir):
    model, tokenizer = _load(tiny_cohere_dir)
    requests = _requests(tokenizer)
    ids = torch.tensor([requests[0][0] + requests[0][1]])
    with torch.no_grad():
        full = model(input_ids=ids).logits[0]
    torch.testing.assert_close(full, _head_only_logits(model, ids) * model.config.logit_scale)
    assert not head.body_then_head_matches(model, ids[0, :8].tolist())
    for batch_size in (1, 4):
        scores = causal.score_continuations(model, requests, batch_size=batch_size, pad_token_id=tokenizer.pad_token_id)
        assert [s.logprob for s in scores] == pytest.approx(_reference(model, requests), abs=1e-4)
