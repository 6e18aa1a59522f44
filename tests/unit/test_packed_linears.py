"""lm_eval_bias.scoring.packed_linears: oneDNN-packed fp32 linears inside a scope, plain ones outside."""

from __future__ import annotations

import pytest
import torch

from lm_eval_bias.scoring import packed_linears as packing

pytestmark = pytest.mark.skipif(not packing.onednn_available(), reason="this PyTorch build has no oneDNN")


class Subclassed(torch.nn.Linear):
    """A Linear subclass (as quantized layers are): its own forward must be left alone."""


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(12, 32),
        torch.nn.GELU(),
        torch.nn.Linear(32, 12, bias=False),
        Subclassed(12, 12),
        torch.nn.Linear(12, 8).to(torch.bfloat16).float(),  # fp32 again: packable
    )


def by_hand(model: torch.nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
    """The same network written out with matmuls in float64."""
    first, _, second, third, fourth = model
    hidden = inputs.double() @ first.weight.double().T + first.bias.double()
    hidden = torch.nn.functional.gelu(hidden)
    hidden = hidden @ second.weight.double().T
    hidden = hidden @ third.weight.double().T + third.bias.double()
    return hidden @ fourth.weight.double().T + fourth.bias.double()


def test_packed_outputs_match_float64_by_hand_on_3d_inputs():
    model = small_model()
    inputs = torch.randn(3, 5, 12)
    with torch.inference_mode(), packing.packed_linears(model) as packed:
        outputs = model(inputs)
    assert packed == 3  # the three plain Linear layers, not the subclass
    assert torch.allclose(outputs.double(), by_hand(model, inputs), rtol=1e-5, atol=1e-5)


def test_only_plain_fp32_cpu_linears_are_packed():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), Subclassed(4, 4), torch.nn.Linear(4, 4).to(torch.bfloat16))
    with packing.packed_linears(model) as packed:
        assert packed == 1
        assert "forward" in vars(model[0])
        assert "forward" not in vars(model[1]) and "forward" not in vars(model[2])


def test_leaving_the_scope_restores_the_plain_forward_bit_for_bit():
    model = small_model()
    inputs = torch.randn(4, 12)
    with torch.inference_mode():
        before = model(inputs)
        with packing.packed_linears(model):
            model(inputs)
        after = model(inputs)
    assert not any("forward" in vars(module) for module in model.modules())
    assert torch.equal(before, after)


def test_an_error_inside_the_scope_still_restores():
    model = small_model()
    with pytest.raises(RuntimeError, match="boom"), packing.packed_linears(model):
        raise RuntimeError("boom")
    assert not any("forward" in vars(module) for module in model.modules())


def test_nested_scopes_pack_once_and_restore_in_order():
    model = small_model()
    with packing.packed_linears(model) as outer, packing.packed_linears(model) as inner:
        assert (outer, inner) == (3, 0)
    assert not any("forward" in vars(module) for module in model.modules())


def test_nothing_is_packed_where_onednn_is_switched_off():
    model = small_model()
    with torch.backends.mkldnn.flags(enabled=False), packing.packed_linears(model) as packed:
        assert packed == 0
        assert not any("forward" in vars(module) for module in model.modules())


# ------------------------------------------------------------------ the masked scorers use it


def _score_crows(model, tokenizer):
    from lm_eval_bias.scoring.masked import score_minimal_pairs

    return [
        s
        for pair in score_minimal_pairs(
            model, tokenizer, [("The poor man was lazy.", "The rich man was lazy.")], batch_size=2
        )
        for s in pair
    ]


def _score_stereoset(model, tokenizer):
    from lm_eval_bias.scoring.stereoset import score_masked

    context = "The chess player was BLANK."
    return score_masked(
        model,
        tokenizer,
        [
            ("intrasentence", context, "The chess player was asian.", "target_word"),
            ("intersentence", "He plays chess.", "He is smart.", "pll"),
        ],
        batch_size=2,
    )


@pytest.mark.parametrize("scorer", [_score_crows, _score_stereoset])
def test_masked_scorers_run_packed_and_agree_with_the_unpacked_product(tiny_bert_dir, scorer):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    packed_calls = []
    layer = next(m for m in model.modules() if type(m) is torch.nn.Linear)
    layer.register_forward_hook(lambda module, *_: packed_calls.append("forward" in vars(module)))
    with torch.backends.mkldnn.flags(enabled=False):
        unpacked = scorer(model, tokenizer)  # MKL's product, nothing packed
    assert packed_calls and not any(packed_calls)
    packed_calls.clear()
    scores = scorer(model, tokenizer)
    assert packed_calls and all(packed_calls)
    assert not any("forward" in vars(module) for module in model.modules())
    assert scores == pytest.approx(unpacked, abs=1e-5)
