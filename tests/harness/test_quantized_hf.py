"""quantized_hf: each compression method loads, scores and reports itself; bad requests are named."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.scoring.causal import score_continuations

SENTENCES = ["The poor man was lazy.", "Women are bad at driving cars.", "The old woman could not use the phone."]


def requests(sentences=SENTENCES):
    return [
        Instance(request_type="loglikelihood", doc={}, arguments=("", s), idx=0, metadata=("t", i, 1))
        for i, s in enumerate(sentences)
    ]


def fp32_scores(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [
        reference_causal_logprob(model, [tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False))[0]
        for s in SENTENCES
    ]


@pytest.mark.parametrize("method, dtype", [("none", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_precision_methods_load_in_their_dtype(tiny_gpt_neox_dir, method, dtype):
    lm = QuantizedHFLM(pretrained=tiny_gpt_neox_dir, quantization=method, device="cpu")
    assert lm.model.dtype == dtype
    record = lm.get_model_info()["quantization"]
    params = sum(p.numel() for p in lm.model.parameters())
    bits = torch.finfo(dtype).bits
    assert record == {
        "method": method,
        "label": method,
        "settings": {},
        "weight_bits": bits,
        "effective_bits_per_weight": None if method == "none" else float(bits),
        "model_bytes_before": 4 * params,
        "model_bytes_after": params * bits // 8,
        "details": {},
    }


@pytest.fixture(scope="module")
def neox_width_64_dir(tiny_gpt_neox_dir, tmp_path_factory):
    """bitsandbytes' 4-bit kernels need layers wider than the 32 of the shared tiny model."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    config = GPTNeoXConfig.from_pretrained(tiny_gpt_neox_dir, hidden_size=64, intermediate_size=256)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("neox64")
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("method", ["bnb_int8", "bnb_nf4", "bnb_fp4"])
def test_bitsandbytes_methods_score_close_to_fp32(neox_width_64_dir, method):
    lm = QuantizedHFLM(pretrained=neox_width_64_dir, quantization=method, device="cpu", batch_size=2)
    scores = [r[0] for r in lm.loglikelihood(requests(), disable_tqdm=True)]
    reference = fp32_scores(neox_width_64_dir)
    record = lm.get_model_info()["quantization"]
    assert record["method"] == method and record["weight_bits"] == (8 if method == "bnb_int8" else 4)
    assert record["model_bytes_after"] < record["model_bytes_before"]
    assert scores != reference  # the weights really were quantized...
    assert scores == pytest.approx(reference, rel=0.2)  # ...and the model still works


def test_dynamic_int8_quantizes_every_linear_and_stays_close(tiny_gpt_neox_dir):
    lm = QuantizedHFLM(pretrained=tiny_gpt_neox_dir, quantization="dynamic_int8", device="cpu")
    assert not [m for m in lm.model.modules() if type(m) is torch.nn.Linear]  # LM head included
    scores = [r[0] for r in lm.loglikelihood(requests(), disable_tqdm=True)]
    reference = fp32_scores(tiny_gpt_neox_dir)
    assert scores != reference and scores == pytest.approx(reference, rel=0.05)


def test_padding_would_move_naive_dynamic_int8_scores(tiny_gpt_neox_dir):
    """Why PerSequenceDynamicLinear exists: plain quantize_dynamic is not batch-invariant."""
    from torch.ao.quantization import quantize_dynamic

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    batch = [([tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False)) for s in SENTENCES]
    alone = [
        score_continuations(model, [r], batch_size=1, pad_token_id=tokenizer.pad_token_id)[0].logprob for r in batch
    ]
    together = [s.logprob for s in score_continuations(model, batch, batch_size=3, pad_token_id=tokenizer.pad_token_id)]
    assert max(abs(a - b) for a, b in zip(alone, together)) > 1e-4


def test_dynamic_int8_refuses_other_devices():
    with pytest.raises(QuantizationError, match="dynamic_int8 runs on cpu only.*cuda"):
        get_quantizer("dynamic_int8").validate_environment("cuda")


def test_quantizer_rejects_options_it_does_not_take():
    with pytest.raises(QuantizationError, match="quantization=none does not take colour"):
        get_quantizer("none", colour="red")


def test_peft_adapter_loads_as_in_hf(tiny_gpt_neox_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir)
    torch.manual_seed(0)
    adapted = get_peft_model(model, LoraConfig(r=2, target_modules=["query_key_value"], init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")
    plain = QuantizedHFLM(pretrained=tiny_gpt_neox_dir, device="cpu")
    with_adapter = QuantizedHFLM(pretrained=tiny_gpt_neox_dir, peft=str(tmp_path / "adapter"), device="cpu")
    plain_scores = [r[0] for r in plain.loglikelihood(requests(), disable_tqdm=True)]
    adapter_scores = [r[0] for r in with_adapter.loglikelihood(requests(), disable_tqdm=True)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    expected = [
        reference_causal_logprob(
            adapted.eval(), [tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False)
        )[0]
        for s in SENTENCES
    ]
    assert adapter_scores == pytest.approx(expected, abs=1e-5)
    assert max(abs(a - b) for a, b in zip(plain_scores, adapter_scores)) > 1e-3


def test_masked_backend_is_detected_and_refuses_generation(tiny_bert_dir):
    lm = QuantizedHFLM(pretrained=tiny_bert_dir, device="cpu")
    assert lm.backend == "masked"
    with pytest.raises(ValueError, match="needs a causal LM"):
        lm.generate_until([], disable_tqdm=True)


def test_unknown_backend_names_the_choices(tiny_gpt_neox_dir):
    with pytest.raises(ValueError, match="'encoder'.*default.*causal.*masked"):
        QuantizedHFLM(pretrained=tiny_gpt_neox_dir, backend="encoder", device="cpu")
