"""What magnitude, Wanda and SparseGPT pruning share: options, masks, calibration, cache, measured sparsity.

    --model_args pretrained=PATH,quantization=wanda,sparsity=0.5,calibration=calib.txt
    --model_args pretrained=PATH,quantization=magnitude,structure=2:4

Options: `sparsity` (fraction of weights set to zero, 0 < s < 1; default 0.5) or `structure=N:M`
(semi-structured: in every group of M consecutive weights of a row, along the input dimension,
at most N stay non-zero; 2:4 is what sparse tensor cores run), `layers` (a regular expression
searched in each layer's qualified name, e.g. `layers=mlp` or `layers=q_proj|v_proj`; default:
every linear layer of the transformer blocks, never the embeddings or the LM head). Methods
that calibrate also take `calibration`, `calibration_samples` (default 128) and `seed`.

Calibration texts come from `calibration` as for GPTQ (gptq_calibration.py): a local .txt (one
sample per line) or .jsonl ("text" field), or a Hub dataset `id[:config[:split]]`. The default
is wikitext-2 raw (`Salesforce/wikitext:wikitext-2-raw-v1`), GPTQ's default here, so that every
calibrated method of a sweep sees the same neutral Wikipedia text (the Wanda and SparseGPT papers
use C4, which cannot be fetched in part). Each sample is cut to its first 512 tokens (the papers
use 2048-token segments; a CPU budget). Offline, pass calibration=FILE; the bias benchmarks
themselves are refused as calibration data.

Pruned weights are stored as exact zeros in the model's own dtype (a dense checkpoint), which is
what every sparse format decodes to. The results record the measured fraction of zeros in the
pruned layers and in the whole model (embeddings and LM head included), the layers pruned, the
time taken, and where the checkpoint came from (cache hit/miss, see compressed_cache.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers import compressed_cache as cache
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer
from lm_eval_bias.model_wrappers.quantizers.calibration_forward import (
    block_linears,
    compress_block_by_block,
    set_weight_matrix,
    weight_matrix,
)
from lm_eval_bias.model_wrappers.quantizers.config import (
    QuantizationConfig,
    option,
    parse_float,
    parse_int,
    parse_str,
    positive_int,
)
from lm_eval_bias.model_wrappers.quantizers.gptq import DEFAULT_CALIBRATION
from lm_eval_bias.model_wrappers.quantizers.gptq_calibration import calibration_fingerprint, calibration_texts

MAX_CALIBRATION_TOKENS = 512


def parse_sparsity(value: Any) -> float:
    sparsity = parse_float(value)
    if not 0 < sparsity < 1:
        raise ValueError("expected a fraction strictly between 0 and 1, e.g. 0.5")
    return sparsity


def parse_structure(value: Any) -> str:
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(value))
    if not match or not 0 < int(match[1]) < int(match[2]):
        raise ValueError("expected N:M with 0 < N < M (N of every M weights kept), e.g. 2:4 or 4:8")
    return f"{int(match[1])}:{int(match[2])}"


def parse_layers(value: Any) -> str:
    try:
        re.compile(str(value))
    except re.error as error:
        raise ValueError(f"expected a regular expression, e.g. mlp or q_proj|v_proj ({error})") from None
    return str(value)


@dataclass
class PruningConfig(QuantizationConfig):
    sparsity: float | None = option(None, parse_sparsity, "fraction of weights zeroed, 0 < s < 1 (default 0.5 "
                                    "unless structure is given)")
    structure: str | None = option(None, parse_structure, "N:M semi-structured sparsity instead: at most N "
                                   "non-zeros in every M consecutive inputs of a row, e.g. 2:4")
    layers: str | None = option(None, parse_layers, "regular expression searched in layer names (default: every "
                                "linear layer of the transformer blocks)")

    def validate(self) -> None:
        if self.sparsity is not None and self.structure is not None:
            raise QuantizationError(f"{type(self).__name__}: give sparsity=FRACTION or structure=N:M, not both.")
        if self.sparsity is None and self.structure is None:
            self.sparsity = 0.5

    @property
    def target_sparsity(self) -> float:
        """The fraction of zeros asked for (N:M: 1 - N/M)."""
        if self.structure is None:
            return self.sparsity
        n, m = structure_numbers(self.structure)
        return 1 - n / m


@dataclass
class CalibratedPruningConfig(PruningConfig):
    calibration: str = option(DEFAULT_CALIBRATION, parse_str, "calibration texts: a local .jsonl/.txt file or a Hub "
                              "dataset id[:config[:split]] (never the bias benchmarks)")
    calibration_samples: int = option(128, positive_int, "calibration texts used (those over 10 tokens), each cut "
                                      f"to {MAX_CALIBRATION_TOKENS} tokens")
    seed: int = option(0, parse_int, "seed of the calibration shuffle")


def structure_numbers(structure: str) -> tuple[int, int]:
    n, m = structure.split(":")
    return int(n), int(m)


def prune_mask(scores: torch.Tensor, sparsity: float | None, structure: str | None, per_row: bool) -> torch.Tensor:
    """True where a weight of the [out, in] `scores` is pruned: the lowest scores, taken per layer,
    per row, or per group of M inputs (ties broken by position, so the count is exact)."""
    rows, columns = scores.shape
    if structure is not None:
        n, m = structure_numbers(structure)
        if columns % m:
            raise QuantizationError(f"structure={structure}: a layer's input width {columns} is not a multiple of {m}.")
        groups = scores.reshape(rows, columns // m, m)
        lowest = torch.argsort(groups, dim=-1, stable=True)[..., : m - n]
        return torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True).reshape(rows, columns)
    if per_row:
        lowest = torch.argsort(scores, dim=1, stable=True)[:, : round(sparsity * columns)]
        return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)
    lowest = torch.argsort(scores.flatten(), stable=True)[: round(sparsity * scores.numel())]
    return torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device).scatter_(0, lowest, True).reshape(rows, columns)


def layer_pattern(layers: str | None):
    if layers is None:
        return lambda name: True
    compiled = re.compile(layers)
    return lambda name: compiled.search(name) is not None


def measured_sparsity(model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
    """Fractions of exact zeros in the pruned layers' weights and in every distinct model tensor."""
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers.values())
    weights = sum(layer.weight.numel() for layer in layers.values())
    seen, model_zeros, model_weights = set(), 0, 0
    for tensor in model.state_dict().values():
        key = (tensor.data_ptr(), tensor.numel())
        if key not in seen and tensor.is_floating_point():
            seen.add(key)
            model_zeros += int((tensor == 0).sum())
            model_weights += tensor.numel()
    return {
        "pruned_layers": len(layers),
        "pruned_layer_weights": weights,
        "measured_sparsity_pruned_layers": round(zeros / max(weights, 1), 6),
        "measured_sparsity_model": round(model_zeros / max(model_weights, 1), 6),
    }


class Pruner(Quantizer):
    """One pruning criterion = a subclass filling in `prune_weight` (and the statistic it needs)."""

    config_class = CalibratedPruningConfig
    config: PruningConfig
    calibrated: ClassVar[bool] = True
    # the comparison group of unstructured pruning: each output row (Wanda) or the whole layer
    per_row: ClassVar[bool] = False

    def __init__(self, config: PruningConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._compressed = False

    # --- what a criterion fills in -------------------------------------------------------

    def new_statistic(self, layer: nn.Module) -> Any:
        return None

    def prune_weight(self, weight: torch.Tensor, statistic: Any) -> torch.Tensor:
        """The pruned [out, in] fp32 weight."""
        raise NotImplementedError

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        return prune_mask(scores, self.config.sparsity, self.config.structure, self.per_row)

    # --- loading: cache, already-pruned checkpoints --------------------------------------

    def load_model(self, auto_class, pretrained, *args, **kwargs):
        if args or any(kwargs.get(k) for k in ("quantization_config", "gguf_file", "subfolder")):
            return super().load_model(auto_class, pretrained, *args, **kwargs)  # pruned in postprocess_model
        record = cache.read_record(pretrained)
        if record is not None:
            self._adopt(record, str(pretrained))
            return super().load_model(auto_class, pretrained, **kwargs)
        key_fields = self._key_fields(str(pretrained), kwargs.get("revision"))
        folder = cache.cache_folder(self.name, key_fields)
        if cache.read_record(folder) is not None:
            self._loaded(str(folder), "hit", cache.read_record(folder))
            return super().load_model(auto_class, folder, **{k: v for k, v in kwargs.items() if k != "revision"})
        loaded = super().load_model(auto_class, pretrained, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        seconds = self._prune(model, str(pretrained))
        record = {"method": self.name, "settings": self.settings, **key_fields, "compress_seconds": seconds,
                  **self.details}
        cache.save_compressed(model, folder, record, tokenizer_source=str(pretrained))
        self._loaded(str(folder), "miss", record)
        return loaded

    def _key_fields(self, pretrained: str, revision: str | None) -> dict[str, Any]:
        settings = dict(self.settings)
        if self.calibrated:
            settings["calibration"] = calibration_fingerprint(settings["calibration"])
            settings["max_calibration_tokens"] = MAX_CALIBRATION_TOKENS
        return {**cache.source_identity(pretrained, revision), **settings, "torch": torch.__version__}

    def _loaded(self, checkpoint: str, how: str, record: dict[str, Any]) -> None:
        self._compressed = True
        self.details.update({"checkpoint": checkpoint, "cache": how, "compress_seconds": round(record["compress_seconds"], 3),
                             **({"calibration_samples_used": record["calibration_samples_used"]}
                                if "calibration_samples_used" in record else {})})

    def _adopt(self, record: dict[str, Any], checkpoint: str) -> None:
        """An already-pruned checkpoint: its settings, unless the options given contradict them."""
        if record.get("method") != self.name:
            raise QuantizationError(f"{checkpoint!r} was compressed with {record.get('method')}, not {self.name}; "
                                    f"load it with quantization={record.get('method')} or quantization=none.")
        found = record["settings"]
        given = {name: getattr(self.config, name) for name in self.config.given_options()}
        conflicts = [f"{k}={v} (checkpoint: {found.get(k)})" for k, v in given.items() if found.get(k) != v]
        if conflicts:
            raise QuantizationError(f"{checkpoint!r} is already pruned with other settings: {', '.join(conflicts)}.")
        for name, value in found.items():
            setattr(self.config, name, value)
        self._loaded(checkpoint, "pre-compressed checkpoint", record)

    # --- pruning -------------------------------------------------------------------------

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        if not self._compressed:  # a model object, or a checkpoint kind the cache does not handle
            self.details["cache"] = "not cached"
            self.details["compress_seconds"] = round(self._prune(model, model.name_or_path), 3)
        self.details.update({"target_sparsity": self.config.target_sparsity,
                             "storage": "dense, pruned weights stored as zeros",
                             **measured_sparsity(model, self._chosen_layers(model))})
        if self.calibrated:
            self.details["max_calibration_tokens"] = MAX_CALIBRATION_TOKENS
        return model

    def _chosen_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        chosen = {name: layer for _, layers in block_linears(model, layer_pattern(self.config.layers))
                  for name, layer in layers.items()}
        if not chosen:
            raise QuantizationError(f"quantization={self.name}: layers={self.config.layers!r} matches no linear "
                                    f"layer of the transformer blocks of {type(model).__name__}.")
        return chosen

    def _prune(self, model: nn.Module, source: str) -> float:
        """Prune in place; returns the seconds it took."""
        start = time.perf_counter()
        self._chosen_layers(model)  # refuse an empty selection before calibrating
        pattern = layer_pattern(self.config.layers)
        if not self.calibrated:
            for _, layers in block_linears(model, pattern):
                for name, layer in layers.items():
                    self._prune_layer(name, layer, None)
            return time.perf_counter() - start
        samples = calibration_samples(model, source, self.config, self.name)
        self.details["calibration_samples_used"] = len(samples)
        compress_block_by_block(model, samples, pattern, self.new_statistic, self._prune_layer)
        return time.perf_counter() - start

    def _prune_layer(self, name: str, layer: nn.Module, statistic: Any) -> None:
        with torch.no_grad():
            set_weight_matrix(layer, self.prune_weight(weight_matrix(layer).detach().float(), statistic))


def calibration_samples(model: nn.Module, source: str, config, method: str) -> list[torch.Tensor]:
    """The calibration texts as token-id tensors [1, <= MAX_CALIBRATION_TOKENS] on the model's device."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = calibration_texts(config.calibration, config.calibration_samples, config.seed, tokenizer, method=method)
    device = next(model.parameters()).device
    return [tokenizer(text, return_tensors="pt", truncation=True, max_length=MAX_CALIBRATION_TOKENS)["input_ids"].to(device)
            for text in texts]
