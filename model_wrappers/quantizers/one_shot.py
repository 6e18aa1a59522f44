"""Compressing a loaded model in one shot, layer by layer, from calibration statistics; cached on disk.

What Wanda, SparseGPT, magnitude pruning, AWQ and SmoothQuant share: the chosen layers (`layers=`,
a regular expression searched in each layer's qualified name; default every linear layer of the
transformer blocks, never the embeddings or the LM head), calibration texts block by block
(calibration_forward.py), and the cache of compressed checkpoints (compressed_cache.py). A method
fills in `new_statistic` (what it gathers from a layer's inputs), `compress_layer` and `report`.

Calibration texts come from `calibration` as for GPTQ (calibration.py): a local .txt (one
sample per line) or .jsonl ("text" field), or a Hub dataset `id[:config[:split]]`. The default is
wikitext-2 raw (`Salesforce/wikitext:wikitext-2-raw-v1`), GPTQ's default here, so that every
calibrated method of a sweep sees the same neutral Wikipedia text (the Wanda, SparseGPT and AWQ
papers use C4 or the Pile, which cannot be fetched in part). Each sample is cut to its first 512
tokens (the papers use 2048-token segments; a CPU budget). Offline, pass calibration=FILE; the
bias benchmarks themselves are refused as calibration data.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lm_eval_bias.model_wrappers.quantizers import compressed_cache as cache
from lm_eval_bias.model_wrappers.quantizers import llmcompressor_oneshot
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError, Quantizer
from lm_eval_bias.model_wrappers.quantizers.calibration import (
    DEFAULT_CALIBRATION,
    calibration_fingerprint,
    calibration_texts,
)
from lm_eval_bias.model_wrappers.quantizers.calibration_forward import block_linears, compress_block_by_block
from lm_eval_bias.model_wrappers.quantizers.config import QuantizationConfig, option, parse_int, parse_str, positive_int

MAX_CALIBRATION_TOKENS = 512


def parse_layers(value: Any) -> str:
    try:
        re.compile(str(value))
    except re.error as error:
        raise ValueError(f"expected a regular expression, e.g. mlp or q_proj|v_proj ({error})") from None
    return str(value)


def layers_option() -> Any:
    return option(
        None,
        parse_layers,
        "regular expression searched in layer names (default: every linear layer of the transformer blocks)",
    )


@dataclass
class CalibrationOptions(QuantizationConfig):
    calibration: str = option(
        DEFAULT_CALIBRATION,
        parse_str,
        "calibration texts: a local .jsonl/.txt file or a Hub dataset id[:config[:split]] (never the bias benchmarks)",
    )
    calibration_samples: int = option(
        128, positive_int, f"calibration texts used (those over 10 tokens), each cut to {MAX_CALIBRATION_TOKENS} tokens"
    )
    seed: int = option(0, parse_int, "seed of the calibration shuffle")


def layer_pattern(layers: str | None):
    if layers is None:
        return lambda name: True
    compiled = re.compile(layers)
    return lambda name: compiled.search(name) is not None


class OneShotCompression(Quantizer):
    """A method that compresses the chosen layers of a loaded model, in place, and caches the result."""

    calibrated: ClassVar[bool] = True
    what: ClassVar[str] = "compressed"  # in messages: "already <what> with other settings"
    # what a cached checkpoint's record gives back to `details` on a cache hit
    recorded: ClassVar[tuple[str, ...]] = ("calibration_samples_used",)

    def __init__(self, config: QuantizationConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._compressed = False
        self._read_from_disk = False  # the model was loaded from a compressed folder: restore() it

    # --- what a method fills in ----------------------------------------------------------

    def new_statistic(self, layer: nn.Module) -> Any:
        """An object whose .add(x) sees the layer's calibration inputs x [tokens, in]; None: none needed."""
        return None

    def compress_layer(self, name: str, layer: nn.Module, statistic: Any) -> nn.Module | None:
        """Compress in place, or return the module that replaces the layer."""
        raise NotImplementedError

    def report(self, model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, Any]:
        """What the results record in `details` about the compressed model."""
        return {"compressed_layers": len(layers)}

    def extra_files(self, model: nn.Module) -> dict[str, bytes]:
        """Files saved next to the checkpoint in the cache (e.g. SmoothQuant's smoothing factors)."""
        return {}

    def restore(self, model: nn.Module, folder: str) -> nn.Module:
        """A cached or already-compressed checkpoint just loaded from `folder`: rebuild what save_pretrained
        cannot hold."""
        return model

    def compress_by_llmcompressor(self, model: nn.Module, samples: list[torch.Tensor], layer_names: list[str]) -> None:
        """implementation=llmcompressor: compress in place by llmcompressor's code (llmcompressor_oneshot.py)."""
        raise NotImplementedError

    # --- implementation=llmcompressor ---------------------------------------------------------

    @property
    def by_llmcompressor(self) -> bool:
        return getattr(self.config, "implementation", "ours") == "llmcompressor"

    def validate_environment(self, device) -> None:
        super().validate_environment(device)
        if self.by_llmcompressor:
            llmcompressor_oneshot.require_llmcompressor(self.name)

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
            # quantization_config=None (HFLM's) would hide a compressed-tensors cache folder's own config
            return super().load_model(
                auto_class, folder, **{k: v for k, v in kwargs.items() if k not in ("revision", "quantization_config")}
            )
        loaded = super().load_model(auto_class, pretrained, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        seconds = self._compress(model, str(pretrained))
        record = {
            "method": self.name,
            "settings": self.settings,
            **key_fields,
            "compress_seconds": seconds,
            **self.details,
        }
        cache.save_compressed(
            model, folder, record, tokenizer_source=str(pretrained), extra_files=self.extra_files(model)
        )
        self._loaded(str(folder), "miss", record)
        return loaded

    def _key_fields(self, pretrained: str, revision: str | None) -> dict[str, Any]:
        settings = dict(self.settings)
        if self.calibrated:
            settings["calibration"] = calibration_fingerprint(settings["calibration"])
            settings["max_calibration_tokens"] = MAX_CALIBRATION_TOKENS
        if self.by_llmcompressor:
            settings["llmcompressor"] = llmcompressor_oneshot.version()
        else:  # ours: the key it had before the option existed, so caches stay valid
            settings.pop("implementation", None)
        return {**cache.source_identity(pretrained, revision), **settings, "torch": torch.__version__}

    def _loaded(self, checkpoint: str, how: str, record: dict[str, Any]) -> None:
        self._compressed = True
        self._read_from_disk = how != "miss"
        self.details.update(
            {
                "checkpoint": checkpoint,
                "cache": how,
                "compress_seconds": round(record["compress_seconds"], 3),
                **{key: record[key] for key in self.recorded if key in record},
            }
        )

    def _adopt(self, record: dict[str, Any], checkpoint: str) -> None:
        """An already-pruned checkpoint: its settings, unless the options given contradict them."""
        if record.get("method") != self.name:
            raise QuantizationError(
                f"{checkpoint!r} was compressed with {record.get('method')}, not {self.name}; "
                f"load it with quantization={record.get('method')} or quantization=none."
            )
        self.config.adopt(record["settings"], f"{checkpoint!r} is already {self.what}")
        self._loaded(checkpoint, "pre-compressed checkpoint", record)

    # --- compressing -----------------------------------------------------------------------

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        if not self._compressed:  # a model object, or a checkpoint kind the cache does not handle
            self.details["cache"] = "not cached"
            self.details["compress_seconds"] = round(self._compress(model, model.name_or_path), 3)
        elif self._read_from_disk:
            model = self.restore(model, self.details["checkpoint"])
        if self.by_llmcompressor:
            self.details["implementation"] = f"llmcompressor {llmcompressor_oneshot.version()}"
        self.details.update(self.report(model, self._chosen_layers(model)))
        if self.calibrated:
            self.details["max_calibration_tokens"] = MAX_CALIBRATION_TOKENS
        return model

    def _chosen_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        chosen = {
            name: layer
            for _, layers in block_linears(model, layer_pattern(self.config.layers))
            for name, layer in layers.items()
        }
        if not chosen:
            raise QuantizationError(
                f"quantization={self.name}: layers={self.config.layers!r} matches no linear "
                f"layer of the transformer blocks of {type(model).__name__}."
            )
        return chosen

    def _compress(self, model: nn.Module, source: str) -> float:
        """Compress in place; returns the seconds it took."""
        start = time.perf_counter()
        chosen = self._chosen_layers(model)  # refuse an empty selection before calibrating
        pattern = layer_pattern(self.config.layers)
        if not self.calibrated:
            for _, layers in block_linears(model, pattern):
                for name, layer in layers.items():
                    replacement = self.compress_layer(name, layer, None)
                    if replacement is not None:
                        model.set_submodule(name, replacement)
            return time.perf_counter() - start
        samples = calibration_samples(model, source, self.config, self.name)
        self.details["calibration_samples_used"] = len(samples)
        if self.by_llmcompressor:
            self.compress_by_llmcompressor(model, samples, list(chosen))
        else:
            compress_block_by_block(model, samples, pattern, self.new_statistic, self.compress_layer)
        return time.perf_counter() - start


def calibration_samples(model: nn.Module, source: str, config, method: str) -> list[torch.Tensor]:
    """The calibration texts as token-id tensors [1, <= MAX_CALIBRATION_TOKENS] on the model's device."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = calibration_texts(config.calibration, config.calibration_samples, config.seed, tokenizer, method=method)
    device = next(model.parameters()).device
    return [
        tokenizer(text, return_tensors="pt", truncation=True, max_length=MAX_CALIBRATION_TOKENS)["input_ids"].to(device)
        for text in texts
    ]
