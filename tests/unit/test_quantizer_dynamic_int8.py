"""dynamic_int8's per-sequence layer against plain torch quantize_dynamic run one sentence at a time.

dynamic_int8.py claims that quantizing each sequence of a padded batch on its own, over its real
tokens, is exactly what a batch of one computes. The reference here is torch's own
`quantize_dynamic` (no wrapper of ours), each sentence alone in its own forward, no padding and
no attention mask, scored in fp64 by the one-item reference scorer (fed, as lm-eval feeds a
model, every token but the last)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.dynamic_int8 import PerSequenceDynamicLinear
from lm_eval_bias.scoring.causal import score_continuations

torch_ao = pytest.importorskip("torch.ao.quantization", reason="this torch has no torch.ao.quantization")


def _requests(tokenizer):
    return [([tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False)) for s in CORPUS]


@pytest.mark.parametrize("fixture", ["tiny_gpt_neox_dir", "tiny_gpt2_dir"])
def test_batch_of_32_equals_plain_quantize_dynamic_one_at_a_time(fixture, request):
    folder = request.getfixturevalue(fixture)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    requests = _requests(tokenizer)
    assert len(requests) > 32 and len({len(c) for _, c in requests}) > 5  # two batches, much padding

    plain = torch_ao.quantize_dynamic(
        AutoModelForCausalLM.from_pretrained(folder).eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    expected = [
        reference_causal_logprob(plain, context, continuation, feed_last=False)[0] for context, continuation in requests
    ]

    quantizer = get_quantizer("dynamic_int8")
    ours = quantizer.postprocess_model(AutoModelForCausalLM.from_pretrained(folder).eval())
    assert any(isinstance(m, PerSequenceDynamicLinear) for m in ours.modules())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    got = [s.logprob for s in score_continuations(ours, requests, batch_size=32, pad_token_id=pad)]
    assert got == pytest.approx(expected, abs=1e-5)

    fp32 = AutoModelForCausalLM.from_pretrained(folder).eval()
    unquantized = [reference_causal_logprob(fp32, context, continuation)[0] for context, continuation in requests]
    assert max(abs(a - b) for a, b in zip(got, unquantized)) > 1e-3  # int8 really changed the scores
