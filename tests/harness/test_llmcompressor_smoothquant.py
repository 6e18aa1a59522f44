"""smoothquant,implementation=llmcompressor: llmcompressor's SmoothQuant + W8A8 against a second implementation
of its definition (written here with our W8A8 layer), its cache round trip through the compressed-tensors
loader, batch invariance, and the refusal where its smoothing changes the model (Gemma's norms).

Runs where the [llmcompressor] extra is installed (it pins transformers 5.17); skipped elsewhere."""

from __future__ import annotations

import pytest
import torch

from fixtures.corpus import CORPUS, write_calibration_jsonl
from fixtures.harness import evaluate, our_tasks, sample_scores
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.one_shot import calibration_samples
from lm_eval_bias.model_wrappers.quantizers.smoothquant import SmoothQuantConfig

pytest.importorskip("llmcompressor")

ALPHA = 0.5


@pytest.fixture
def calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))
    return write_calibration_jsonl(tmp_path / "neutral.jsonl")


def int8(x: torch.Tensor, dim: int) -> torch.Tensor:
    """compressed-tensors' symmetric int8 grid: scale = max|x| / 127.5 per slice, codes round-half-even in
    [-128, 127] (so the largest magnitude lands on 127 or -128, not on 127 as in our smoothquant)."""
    scale = x.abs().amax(dim=dim, keepdim=True) / 127.5
    return torch.clamp(torch.round(x / scale), -128, 127) * scale


class SmoothedW8A8(torch.nn.Module):
    def __init__(self, weight: torch.Tensor, s: torch.Tensor) -> None:
        super().__init__()
        self.weight, self.s = int8(weight * s, dim=1), s  # s W, int8 per output row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(int8(x / self.s, dim=-1), self.weight)  # X / s, int8 per token


def reference_model(model_dir: str, calibration: str):
    """llmcompressor's definition, written out: per channel j of each norm feeding q/k/v (input_layernorm) and
    gate/up (post_attention_layernorm), s_j = (max X_j - min X_j)^alpha / (2 max|W_:,j| over those layers)^(1-alpha)
    from the norm's calibration outputs; each of those layers computes q8(X / s) q8(s W)^T; o_proj and down_proj
    plain W8A8 (s = 1). The tiny Llama has no biases."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = SmoothQuantConfig.from_options(
        {"calibration": calibration, "calibration_samples": 8}, method="smoothquant"
    )
    ranges: dict[str, list[torch.Tensor]] = {}

    def keep(name):
        def hook(module, inputs, output):
            flat = output.reshape(-1, output.shape[-1])
            low, high = flat.min(0).values, flat.max(0).values
            old = ranges.setdefault(name, [low, high])
            ranges[name] = [torch.minimum(old[0], low), torch.maximum(old[1], high)]

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if n.endswith("layernorm")]
    with torch.no_grad():
        for sample in calibration_samples(model, model_dir, config, "smoothquant"):
            model(sample)
    for handle in handles:
        handle.remove()
    for index, block in enumerate(model.model.layers):
        groups = {
            "input_layernorm": ("self_attn", ("q_proj", "k_proj", "v_proj")),
            "post_attention_layernorm": ("mlp", ("gate_proj", "up_proj")),
        }
        for norm, (parent, names) in groups.items():
            low, high = ranges[f"model.layers.{index}.{norm}"]
            owner = getattr(block, parent)
            weight_max = 2 * torch.cat([getattr(owner, n).weight for n in names]).abs().amax(0)
            s = ((high - low).pow(ALPHA) / weight_max.pow(1 - ALPHA)).clamp(min=1e-5)
            for n in names:
                layer = getattr(owner, n)
                setattr(owner, n, SmoothedW8A8(layer.weight.detach(), s))
        for owner, n in ((block.self_attn, "o_proj"), (block.mlp, "down_proj")):
            layer = getattr(owner, n)
            setattr(owner, n, SmoothedW8A8(layer.weight.detach(), torch.ones(layer.in_features)))
    return model


def next_token_log_probs(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]


def load(model_dir, calibration, **options):
    return QuantizedHFLM(
        pretrained=model_dir,
        quantization="smoothquant",
        calibration=calibration,
        calibration_samples=8,
        device="cpu",
        **options,
    )


def test_llmcompressor_smoothquant_is_its_definition(tiny_llama_dir, calibration):
    theirs = load(tiny_llama_dir, calibration, implementation="llmcompressor")
    ours = load(tiny_llama_dir, calibration)
    reference = reference_model(tiny_llama_dir, calibration)
    ids = torch.tensor([theirs.tokenizer(" ".join(CORPUS[:6]))["input_ids"]])
    expected = next_token_log_probs(reference, ids)
    got = next_token_log_probs(theirs.model, ids)
    # the same codes up to fp32 rounding (the norm folds 1/s into its weight, the reference divides its
    # output), which may move an activation across a rounding boundary now and then
    assert (got - expected).abs().max() < 2e-4
    # our smoothquant (one s per layer, from max|X|) is a different model: the comparison can tell them apart
    assert (next_token_log_probs(ours.model, ids) - expected).abs().max() > 10 * (got - expected).abs().max()
    details = theirs.get_model_info()["quantization"]["details"]
    assert details["implementation"].startswith("llmcompressor ") and details["quantized_layers"] == 14
    assert details["smoothing_mean_abs_change_log_prob"] < 1e-5
    # int8 codes and one fp32 scale per output row (symmetric: no zero point stored), by hand
    layers = [tuple(m.weight.shape) for m in reference.modules() if isinstance(m, SmoothedW8A8)]
    bits = sum(o * i * 8 + o * 32 for o, i in layers) / sum(o * i for o, i in layers)
    assert theirs.get_model_info()["quantization"]["effective_bits_per_weight"] == pytest.approx(bits, abs=1e-4)


def test_llmcompressor_smoothquant_cache_round_trip_and_batch_invariance(
    tiny_llama_dir, calibration, crows_pairs_fixture_csv, monkeypatch
):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    args = f"pretrained={tiny_llama_dir},quantization=smoothquant,calibration={calibration},calibration_samples=8"
    theirs = args + ",implementation=llmcompressor"
    miss = evaluate("quantized_hf", theirs, ["crows_pairs_bias"], batch_size=8, task_manager=our_tasks())
    hit = evaluate("quantized_hf", theirs, ["crows_pairs_bias"], batch_size=8, task_manager=our_tasks())
    alone = evaluate("quantized_hf", theirs, ["crows_pairs_bias"], batch_size=1, task_manager=our_tasks())
    assert miss["config"]["quantization"]["details"]["cache"] == "miss"
    assert hit["config"]["quantization"]["details"]["cache"] == "hit"
    assert hit["config"]["quantization"]["details"]["smoothing_check_tokens"] > 0  # the record travels with the cache
    ours = evaluate("quantized_hf", args, ["crows_pairs_bias"], task_manager=our_tasks())
    moved = 0
    for subtask in miss["samples"]:
        # the compressed-tensors checkpoint reloaded scores exactly as the model it was saved from
        assert sample_scores(hit, subtask) == sample_scores(miss, subtask)
        for doc, (more, less) in sample_scores(hit, subtask).items():
            # per-token activation scales: batch 1 and 8 differ by fp32 summation order only, which can move an
            # activation across an int8 rounding boundary (one sentence here moves by 1.3e-5)
            assert sample_scores(alone, subtask)[doc] == pytest.approx((more, less), abs=1e-4)
            moved += sample_scores(ours, subtask)[doc] != pytest.approx((more, less), abs=1e-5)
    assert moved > 0


def test_llmcompressor_smoothing_that_changes_the_model_is_refused(tiny_gemma2_dir, calibration):
    with pytest.raises(
        QuantizationError, match=r"smoothing.*moved the next-token log-probabilities.*implementation=ours"
    ):
        load(tiny_gemma2_dir, calibration, implementation="llmcompressor")
