"""Wanda, SparseGPT and SmoothQuant W8A8 through llmcompressor (vLLM's compression library), in place of our code.

    --model_args pretrained=PATH,quantization=wanda,sparsity=0.5,calibration=FILE,implementation=llmcompressor
    --model_args pretrained=PATH,quantization=smoothquant,alpha=0.5,calibration=FILE,implementation=llmcompressor

The same layers (`layers=`, default every linear layer of the blocks) and the same calibration
token ids go to llmcompressor's `oneshot`, run by its sequential pipeline (each block calibrated
on the output of the compressed blocks before it, as ours):
  wanda, sparsegpt: `WandaPruningModifier` / `SparseGPTModifier` with the same sparsity or N:M
    structure (its defaults: SparseGPT blocks of 128 columns, 1% dampening, as ours);
  smoothquant: `SmoothQuantModifier(smoothing_strength=alpha)` with llmcompressor's layer mappings for
    the architecture (s folded into the norm before q/k/v and before gate/up; s_j from the range
    max X_j - min X_j and 2 max|W_j|), then `QuantizationModifier(scheme="W8A8")`: int8 weights per
    output channel, int8 activations per token, dynamic, symmetric (batch-invariant, as ours), held
    by compressed-tensors' layers. Smoothing alone must leave the model's function unchanged; it is
    checked on a calibration text and refused when it does not (llmcompressor divides the norm's
    weight by s, which is wrong for Gemma's norms, x * (1 + weight), and its Gemma-3 mapping puts
    post_attention_layernorm, an output norm there, before gate/up).
The result goes through the same cache and record as our implementation's; `details.implementation`
says which one ran.

llmcompressor 0.14 pins transformers 5.17 (this package otherwise tracks the newest), so it is
an opt-in extra: `pip install -c constraints/cpu-torch.txt -e ".[llmcompressor]"` (docs/compression.md
says what that install changes). Its AWQ fails on CPU, so `awq` stays our own.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.config import one_of, option

INSTALL = (
    "pip install -c constraints/cpu-torch.txt -e '.[llmcompressor]' (in a checkout; it installs "
    "transformers 5.17, which llmcompressor 0.14 pins)"
)
PRUNING_MODIFIERS = {
    "wanda": "llmcompressor.modifiers.pruning.wanda:WandaPruningModifier",
    "sparsegpt": "llmcompressor.modifiers.pruning.sparsegpt:SparseGPTModifier",
}
METHODS = (*PRUNING_MODIFIERS, "smoothquant")
# mean |change| of the next-token log-probabilities that smoothing alone (no rounding) may cause: fp32 rounding
SMOOTHING_TOLERANCE = 1e-3
CHECK_TOKENS = 128
SMOOTHING_CHECK = ("smoothing_check_tokens", "smoothing_mean_abs_change_log_prob", "smoothing_max_abs_change_log_prob")


def implementation_option() -> Any:
    return option(
        "ours",
        one_of("ours", "llmcompressor"),
        "whose code compresses: ours (torch only) or "
        "llmcompressor's (the [llmcompressor] extra; llmcompressor_oneshot.py)",
    )


def require_llmcompressor(method: str) -> None:
    if method not in METHODS:
        raise QuantizationError(
            f"quantization={method}: implementation=llmcompressor is available for {', '.join(METHODS)} only."
        )
    if importlib.util.find_spec("llmcompressor") is None:
        raise QuantizationError(f"quantization={method},implementation=llmcompressor needs llmcompressor: {INSTALL}.")


def version() -> str:
    return importlib.metadata.version("llmcompressor")


def _modifier(path: str):
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def _oneshot(model: nn.Module, recipe: list, samples: list[torch.Tensor] | None, max_length: int) -> None:
    from datasets import Dataset
    from llmcompressor import oneshot

    if samples is None:  # a data-free recipe
        oneshot(model=model, recipe=recipe)
        return
    ids = [sample[0].tolist() for sample in samples]
    dataset = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]})
    oneshot(
        model=model,
        dataset=dataset,
        recipe=recipe,
        num_calibration_samples=len(ids),
        max_seq_length=max_length,
        shuffle_calibration_samples=False,
        pipeline="sequential",
    )


def prune(
    model: nn.Module,
    samples: list[torch.Tensor],
    method: str,
    layer_names: list[str],
    sparsity: float | None,
    structure: str | None,
    max_length: int,
) -> None:
    """Prune `layer_names` of `model` in place with llmcompressor's `method`, calibrated on `samples`
    (token-id tensors [1, length])."""
    options: dict[str, Any] = {"targets": list(layer_names)}
    if structure is not None:
        n, m = structure.split(":")
        options.update(sparsity=1 - int(n) / int(m), mask_structure=structure)
    else:
        options["sparsity"] = sparsity
    _oneshot(model, [_modifier(PRUNING_MODIFIERS[method])(**options)], samples, max_length)


def _next_token_log_probs(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """log p(token | the tokens before it) for every token of `ids` [1, length] but the first: the causal scorer's."""
    from lm_eval_bias.scoring.causal import continuation_token_logprobs

    tokens = ids[0].tolist()
    (scored,) = continuation_token_logprobs(model, [(tokens[:1], tokens[1:])], batch_size=1, pad_token_id=0)
    return torch.tensor(scored.logprobs)


def smooth_and_quantize(
    model: nn.Module, samples: list[torch.Tensor], layer_names: list[str], alpha: float, max_length: int
) -> dict[str, Any]:
    """SmoothQuant then W8A8 on `layer_names`, in place; returns what the smoothing check measured."""
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    probe = samples[0][:, :CHECK_TOKENS]
    before = _next_token_log_probs(model, probe)
    _oneshot(model, [SmoothQuantModifier(smoothing_strength=alpha)], samples, max_length)
    change = (_next_token_log_probs(model, probe) - before).abs()
    check = dict(zip(SMOOTHING_CHECK, (int(change.numel()), float(change.mean()), float(change.max()))))
    if check["smoothing_mean_abs_change_log_prob"] > SMOOTHING_TOLERANCE:
        raise QuantizationError(
            f"quantization=smoothquant,implementation=llmcompressor: llmcompressor's smoothing, which must leave the "
            f"model's function unchanged before any rounding, moved the next-token log-probabilities of a calibration "
            f"text by {check['smoothing_mean_abs_change_log_prob']:.3g} on average (max "
            f"{check['smoothing_max_abs_change_log_prob']:.3g}; fp32 rounding stays under {SMOOTHING_TOLERANCE:g}): "
            f"its layer mappings do not fit {type(model).__name__} (it divides each norm's weight by s, which is "
            "wrong for a norm computing x * (1 + weight), as Gemma's do). Use implementation=ours, which divides "
            "each layer's own input by its s and so fits any architecture."
        )
    _oneshot(model, [QuantizationModifier(targets=list(layer_names), scheme="W8A8")], None, max_length)
    return check
