"""AWQ and SmoothQuant W8A8: one layer against hand-written references, then on a tiny Llama: scores, batch
invariance, cache and already-quantized checkpoints, bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.harness import corpus_sentence_scores as sentence_scores
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.awq import InputSample, search_scales
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.rtn import fake_quantize
from lm_eval_bias.model_wrappers.quantizers.smoothquant import InputMax, SmoothQuant, W8A8Linear


def _layer(rows=16, columns=64, tokens=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, columns, generator=generator) * 0.05
    inputs = torch.randn(tokens, columns, generator=generator)
    inputs[:, 3] *= 40.0  # an outlier channel, as in LLM activations
    inputs[:, 17] *= 15.0
    return weight, inputs


# --------------------------------------------------------------- SmoothQuant on one layer


def reference_w8a8(weight: np.ndarray, inputs: np.ndarray, alpha: float) -> np.ndarray:
    """Token by token and row by row, in float64: smooth, int8-quantize both sides, multiply the codes."""
    s = np.maximum(np.abs(inputs).max(axis=0), 1e-5) ** alpha / np.maximum(np.abs(weight).max(axis=0), 1e-5) ** (
        1 - alpha
    )
    w = weight * s
    out = np.zeros((inputs.shape[0], weight.shape[0]))
    w_scales = np.abs(w).max(axis=1) / 127
    w_codes = np.clip(np.round(w / w_scales[:, None]), -127, 127)
    for t, x in enumerate(inputs / s):
        x_scale = np.abs(x).max() / 127
        x_codes = np.clip(np.round(x / x_scale), -127, 127)
        out[t] = (w_codes @ x_codes) * w_scales * x_scale  # an int8 GEMM with int32 accumulation, then the scales
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.8])
def test_smoothquant_layer_matches_the_int8_reference(alpha):
    weight, inputs = _layer()
    quantizer = get_quantizer("smoothquant", alpha=alpha)
    statistic = InputMax(None)
    statistic.add(inputs)
    layer = torch.nn.Linear(64, 16, bias=False)
    layer.weight.data = weight.clone()
    quantized = quantizer.compress_layer("layer", layer, statistic)
    expected = reference_w8a8(weight.double().numpy(), inputs.double().numpy(), alpha)
    np.testing.assert_allclose(quantized(inputs).detach().double().numpy(), expected, rtol=0, atol=2e-5)


def test_smoothing_cuts_the_error_of_outlier_activations():
    weight, inputs = _layer()
    exact = inputs @ weight.t()
    errors = {}
    for alpha in (0.0, 0.5):
        statistic = InputMax(None)
        statistic.add(inputs)
        layer = torch.nn.Linear(64, 16, bias=False)
        layer.weight.data = weight.clone()
        errors[alpha] = float(
            ((SmoothQuant(alpha=alpha).compress_layer("l", layer, statistic)(inputs) - exact) ** 2).sum()
        )
    assert errors[0.5] < 0.5 * errors[0.0]  # alpha=0 is plain W8A8 per-token / per-channel


def test_activation_scales_are_per_token():
    layer = W8A8Linear(torch.eye(4), None, torch.ones(4), transposed=False)
    x = torch.tensor([[[1.0, 0.5, 0.25, 0.001], [100.0, 0.5, 0.25, 0.001]]])
    alone = layer(x[:, :1])
    together = layer(x)
    assert torch.equal(together[:, :1], alone)  # the large second token does not change the first one's codes


# --------------------------------------------------------------- AWQ on one layer


def test_awq_search_is_the_grid_argmin_and_beats_rtn():
    weight, inputs = _layer(columns=128)
    statistic = InputSample(None)
    statistic.add(inputs)
    quantized, ratio = search_scales(weight, statistic, bits=4, group_size=32)
    mean_abs = inputs.abs().mean(dim=0)
    errors = []
    for step in range(20):  # the paper's search written out: s = mean|x|^r, normalised; Q(W s) / s
        s = mean_abs.clamp(min=1e-4) ** (step / 20)
        s = s / (s.max() * s.min()).sqrt()
        candidate = fake_quantize(weight * s, 4, 32, symmetric=False) / s
        errors.append(float(((inputs @ candidate.t() - inputs @ weight.t()) ** 2).sum()))
    assert ratio == int(np.argmin(errors)) / 20
    assert ratio > 0  # the outlier channels make scaling worth it
    rtn = fake_quantize(weight, 4, 32, symmetric=False)
    awq_error = float(((inputs @ quantized.t() - inputs @ weight.t()) ** 2).sum())
    assert awq_error == pytest.approx(min(errors), rel=1e-6)
    assert awq_error < 0.9 * float(((inputs @ rtn.t() - inputs @ weight.t()) ** 2).sum())


# --------------------------------------------------------------- options


@pytest.mark.parametrize(
    "method, options, named",
    [
        ("awq", {"bits": "1"}, "from 2 to 8"),
        ("awq", {"group_size": "-4"}, "positive integer"),
        ("smoothquant", {"alpha": "1.5"}, "from 0.0 to 1.0"),
        (
            "smoothquant",
            {"bits": "4"},
            "its options: calibration, calibration_samples, seed, alpha, layers, implementation",
        ),
        ("smoothquant", {"implementation": "vllm"}, "one of ours, llmcompressor"),
    ],
)
def test_bad_options_get_one_clear_error(method, options, named):
    with pytest.raises(QuantizationError, match=f"quantization={method}") as error:
        get_quantizer(method, **options)
    assert named in str(error.value)


# --------------------------------------------------------------- a tiny Llama


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "neutral.txt"
    path.write_text("\n".join(" ".join(CORPUS[i : i + 3]) for i in range(0, len(CORPUS), 3)) + "\n")
    return str(path)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))


def _quantized(model_dir, method, calibration_file, **options):
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    return QuantizedHFLM(
        pretrained=model_dir,
        device="cpu",
        batch_size=8,
        quantization=method,
        calibration=calibration_file,
        calibration_samples="8",
        **options,
    )


@pytest.mark.parametrize(
    "method, options",
    [("awq", {"bits": "4", "group_size": "16"}), ("awq", {"bits": "8"}), ("smoothquant", {"alpha": "0.5"})],
)
def test_tiny_llama_scores_batch_invariance_and_cache(tiny_llama_dir, calibration_file, method, options, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    dense = sentence_scores(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), tokenizer)
    lm = _quantized(tiny_llama_dir, method, calibration_file, **options)
    record = lm.get_model_info()["quantization"]
    assert record["details"]["quantized_layers"] == 14 and record["details"]["cache"] == "miss"
    by_size = {size: sentence_scores(lm.model, tokenizer, batch_size=size) for size in (1, 8, 32)}
    assert torch.allclose(by_size[8], by_size[1], rtol=0, atol=1e-5)
    assert torch.allclose(by_size[32], by_size[1], rtol=0, atol=1e-5)
    change = (by_size[1] - dense).abs().max().item()
    assert 0 < change < 0.5

    from lm_eval_bias.model_wrappers.quantizers.one_shot import OneShotCompression

    monkeypatch.setattr(OneShotCompression, "_compress", lambda *a: pytest.fail("quantized twice"))
    again = _quantized(tiny_llama_dir, method, calibration_file, **options)
    assert again.get_model_info()["quantization"]["details"]["cache"] == "hit"
    assert torch.equal(sentence_scores(again.model, tokenizer, batch_size=8), by_size[8])
    checkpoint = record["details"]["checkpoint"]  # an already-quantized folder loads as it is
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    loaded = QuantizedHFLM(pretrained=checkpoint, device="cpu", quantization=method)
    assert loaded.get_model_info()["quantization"]["details"]["cache"] == "pre-compressed checkpoint"
    assert torch.equal(sentence_scores(loaded.model, tokenizer, batch_size=8), by_size[8])


def test_awq_effective_bits(tiny_llama_dir, calibration_file):
    record = _quantized(tiny_llama_dir, "awq", calibration_file, bits="4", group_size="16").get_model_info()[
        "quantization"
    ]
    assert record["weight_bits"] == 4
    assert record["effective_bits_per_weight"] == pytest.approx(4 + (16 + 4) / 16)  # widths 32, 64: whole groups


@pytest.mark.parametrize("method", ["smoothquant", "wanda", "sparsegpt"])
def test_llmcompressor_implementation_without_llmcompressor_says_what_to_install(method, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llmcompressor" else real(name, *a)
    )
    quantizer = get_quantizer(method, implementation="llmcompressor")
    with pytest.raises(
        QuantizationError,
        match=rf"quantization={method},implementation=llmcompressor needs llmcompressor: "
        r"pip install .*\[llmcompressor\]",
    ):
        quantizer.validate_environment("cpu")
    get_quantizer(method).validate_environment("cpu")  # ours needs nothing more
