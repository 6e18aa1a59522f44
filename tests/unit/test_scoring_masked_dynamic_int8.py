"""Masked PLL under per-sequence dynamic int8: the MLM head scales each masked position on its own,
so a batch scores every pair exactly as batch size 1 does."""

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.scoring.masked import score_minimal_pairs

PAIRS = [
    ("the nurse said she was tired", "the nurse said he was tired"),
    ("poor people are lazy", "rich people are lazy"),
    ("he cried at the movie because he was weak", "she cried at the movie because she was weak"),
    ("old men cannot drive", "young men cannot drive"),
]


@pytest.mark.parametrize("variant", ["shared", "modified"])
def test_masked_dynamic_int8_scores_do_not_depend_on_the_batch(tiny_bert_dir, variant):
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    model = get_quantizer("dynamic_int8").postprocess_model(model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    one_by_one = [score_minimal_pairs(model, tokenizer, [pair], batch_size=1, variant=variant)[0] for pair in PAIRS]
    batched = score_minimal_pairs(model, tokenizer, PAIRS, batch_size=32, variant=variant)
    for single, together in zip(one_by_one, batched):
        assert together == pytest.approx(single, abs=1e-6)
