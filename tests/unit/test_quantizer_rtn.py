"""quantization=rtn: round-to-nearest fake quantization against a hand-written reference, and on tiny LMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lm_eval.api.instance import Instance
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.rtn import RoundToNearest, effective_bits, fake_quantize
from lm_eval_bias.scoring.causal import score_continuations

# --------------------------------------------------------------- the hand-written reference


def reference_fake_quantize(weight: np.ndarray, bits: int, group_size: int | None, symmetric: bool) -> np.ndarray:
    """Row by row, group by group, element by element, in float32 (a short last group is its own group)."""
    f32 = np.float32
    out = np.zeros_like(weight, dtype=f32)
    rows, columns = weight.shape
    size = group_size or columns
    for r in range(rows):
        for start in range(0, columns, size):
            group = weight[r, start : start + size].astype(f32)
            if symmetric:
                qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
                extent = f32(max(abs(float(x)) for x in group))
                scale = _fp16(f32(extent / f32(qmax)), extent)
                for c, x in enumerate(group):
                    q = min(max(np.round(f32(x / scale)), qmin), qmax)
                    out[r, start + c] = f32(f32(q) * scale)
            else:
                qmax = 2**bits - 1
                lo, hi = f32(min(float(group.min()), 0.0)), f32(max(float(group.max()), 0.0))
                scale = _fp16(f32(f32(hi - lo) / f32(qmax)), f32(hi - lo))
                zero = min(max(np.round(f32(-lo / scale)), 0), qmax)
                for c, x in enumerate(group):
                    q = min(max(np.round(f32(x / scale)) + zero, 0), qmax)
                    out[r, start + c] = f32(f32(q - zero) * scale)
    return out


def _fp16(scale, extent):
    scale = np.float32(np.float16(scale))
    if scale == 0:
        return np.float32(1.0) if extent == 0 else np.float32(2.0**-24)
    return scale


def _matrix(rows: int = 6, columns: int = 12, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    weight = generator.normal(0.0, 0.05, size=(rows, columns)).astype(np.float32)
    weight[1] = np.abs(weight[1])  # all positive: asymmetric range must still include 0
    weight[2] = 0.0  # all-zero row: no division by zero
    weight[3, :5] = 1e-9  # a group whose fp16 scale underflows
    weight[4, 3] = 0.9  # one outlier
    return weight


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [None, 4, 5, 7, 64])  # 5 and 7 do not divide 12; 64 > 12
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_matches_hand_written_quantize_dequantize(bits, group_size, symmetric):
    weight = _matrix()
    expected = reference_fake_quantize(weight, bits, group_size, symmetric)
    got = fake_quantize(torch.from_numpy(weight), bits, group_size, symmetric).numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_levels_per_group(bits):
    weight = torch.from_numpy(_matrix(columns=64, seed=1))
    for symmetric, allowed in [(True, 2**bits - 1), (False, 2**bits)]:
        quantized = fake_quantize(weight, bits, 16, symmetric)
        for group in quantized.reshape(-1, 16):
            assert len(torch.unique(group)) <= allowed


def test_non_dividing_group_equals_zero_padding():
    weight = torch.from_numpy(_matrix(columns=13))
    padded = torch.nn.functional.pad(weight, (0, 2))  # 13 -> 15 = 3 groups of 5
    for symmetric in (True, False):
        assert torch.equal(fake_quantize(weight, 3, 5, symmetric), fake_quantize(padded, 3, 5, symmetric)[:, :13])


def test_effective_bits():
    assert effective_bits(4, None, True, 12) == pytest.approx(4 + 16 / 12)
    assert effective_bits(4, 128, True, 640) == pytest.approx(4 + 16 / 128)
    assert effective_bits(3, 5, False, 12) == pytest.approx(3 + 3 * (16 + 3) / 12)  # groups of 5, 5, 2
    assert effective_bits(8, 64, False, 12) == pytest.approx(8 + (16 + 8) / 12)


# --------------------------------------------------------------- options as model_args strings


def test_options_arrive_as_strings():
    quantizer = get_quantizer("rtn", bits="3", group_size="128", symmetric="false", quantize_lm_head="True")
    assert quantizer.settings == {"bits": 3, "group_size": 128, "symmetric": False, "quantize_lm_head": True}
    assert get_quantizer("rtn").settings == {
        "bits": 4,
        "group_size": None,
        "symmetric": True,
        "quantize_lm_head": False,
    }
    assert get_quantizer("rtn", group_size=-1, symmetric=True).settings["group_size"] is None  # lm-eval casts values


@pytest.mark.parametrize(
    "settings", [{"bits": "9"}, {"bits": "1"}, {"symmetric": "maybe"}, {"group_size": "-4"}, {"scheme": "x"}]
)
def test_bad_options_are_refused(settings):
    with pytest.raises(QuantizationError):
        get_quantizer("rtn", **settings)


# --------------------------------------------------------------- tiny language models


def sentence_requests(tokenizer) -> list[tuple[list[int], list[int]]]:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [([prefix], tokenizer.encode(sentence, add_special_tokens=False)) for sentence in CORPUS]


def sentence_scores(model, tokenizer, batch_size: int = 8) -> torch.Tensor:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = score_continuations(model, sentence_requests(tokenizer), batch_size=batch_size, pad_token_id=pad)
    return torch.tensor([s.logprob for s in scores], dtype=torch.float64)


def _load(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def fp32_scores(tiny_gpt_neox_dir):
    model, tokenizer = _load(tiny_gpt_neox_dir)
    return sentence_scores(model, tokenizer)


def test_eight_bits_stays_close_two_bits_does_not(tiny_gpt_neox_dir, fp32_scores):
    changes = {}
    for bits in (8, 2):
        model, tokenizer = _load(tiny_gpt_neox_dir)
        RoundToNearest(bits=bits).postprocess_model(model)
        changes[bits] = (sentence_scores(model, tokenizer) - fp32_scores).abs().max().item()
    assert changes[8] < 0.02
    assert changes[2] > 5 * 0.02


@pytest.mark.parametrize(
    "settings", [{"bits": 4}, {"bits": 3, "group_size": 12, "symmetric": False, "quantize_lm_head": True}]
)
def test_batch_invariance(tiny_gpt_neox_dir, settings):
    model, tokenizer = _load(tiny_gpt_neox_dir)
    RoundToNearest(**settings).postprocess_model(model)
    by_size = {size: sentence_scores(model, tokenizer, batch_size=size) for size in (1, 8, 32)}
    assert torch.allclose(by_size[8], by_size[1], rtol=0, atol=1e-5)
    assert torch.allclose(by_size[32], by_size[1], rtol=0, atol=1e-5)


def test_every_linear_is_quantized_lm_head_only_on_request(tiny_gpt_neox_dir):
    reference, _ = _load(tiny_gpt_neox_dir)
    linears = [n for n, m in reference.named_modules() if isinstance(m, torch.nn.Linear)]
    head = next(n for n, m in reference.named_modules() if m is reference.get_output_embeddings())
    for include_head in (False, True):
        model, _ = _load(tiny_gpt_neox_dir)
        quantizer = RoundToNearest(bits=2, quantize_lm_head=include_head)
        quantizer.postprocess_model(model)
        modules = dict(model.named_modules())
        changed = [n for n in linears if not torch.equal(modules[n].weight, dict(reference.named_modules())[n].weight)]
        assert changed == (linears if include_head else [n for n in linears if n != head])
        assert quantizer.details["quantized_layers"] == len(changed)


def test_gpt2_conv1d_and_tied_lm_head(tiny_gpt2_dir):
    """GPT-2's Conv1D layers (weight [in, out]) are quantized per output channel; a tied head is untied."""
    reference, _ = _load(tiny_gpt2_dir)
    model, _ = _load(tiny_gpt2_dir)
    quantizer = RoundToNearest(bits=4, quantize_lm_head=True)
    quantizer.postprocess_model(model)
    attention = model.transformer.h[0].attn.c_attn.weight  # Conv1D, [in, out]
    expected = fake_quantize(reference.transformer.h[0].attn.c_attn.weight.t(), 4, None, True).t()
    assert torch.equal(attention, expected)
    assert torch.equal(model.get_input_embeddings().weight, reference.get_input_embeddings().weight)
    assert torch.equal(model.lm_head.weight, fake_quantize(reference.lm_head.weight, 4, None, True))
    assert quantizer.details["lm_head_untied"] is True


def test_record_through_the_harness_wrapper(tiny_gpt_neox_dir):
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(
        pretrained=tiny_gpt_neox_dir,
        device="cpu",
        batch_size=4,
        quantization="rtn",
        bits="6",
        group_size="16",
        symmetric="false",
    )
    info = lm.get_model_info()["quantization"]
    assert info["method"] == "rtn" and info["weight_bits"] == 6
    assert info["settings"] == {"bits": 6, "group_size": 16, "symmetric": False, "quantize_lm_head": False}
    assert info["effective_bits_per_weight"] == pytest.approx(6 + (16 + 6) / 16)  # widths 32 and 64: whole groups
    assert info["details"]["packed_model_bytes"] < info["model_bytes_before"]
    requests = [Instance("loglikelihood", {}, ("", sentence), i) for i, sentence in enumerate(CORPUS[:4])]
    got = [logprob for logprob, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    # the same model quantized by the hand-written reference (LM head kept), scored one sentence at a time
    model, tokenizer = _load(tiny_gpt_neox_dir)
    head = model.get_output_embeddings()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                module.weight.copy_(torch.from_numpy(reference_fake_quantize(module.weight.numpy(), 6, 16, False)))
    expected = [
        reference_causal_logprob(model, [tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False))[0]
        for s in CORPUS[:4]
    ]
    assert got == pytest.approx(expected, abs=1e-4)
    fp32, _ = _load(tiny_gpt_neox_dir)
    unquantized = [
        reference_causal_logprob(fp32, [tokenizer.bos_token_id], tokenizer.encode(s, add_special_tokens=False))[0]
        for s in CORPUS[:4]
    ]
    assert max(abs(a - b) for a, b in zip(got, unquantized)) > 1e-3  # 6 bits really moved the scores
