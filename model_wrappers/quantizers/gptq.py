"""GPTQ (Frantar et al., 2023) through gptqmodel: quantize on the fly, cached, or load a GPTQ checkpoint.

    --model_args pretrained=PATH,quantization=gptq,bits=4,group_size=128,calibration=calib.txt
    --model_args pretrained=GPTQ_CHECKPOINT,quantization=gptq

A checkpoint whose config already holds a GPTQ `quantization_config` is loaded as it is
(transformers -> optimum -> gptqmodel kernels); its bits / group size / act-order are
read from it and any conflicting option is an error. Any other checkpoint is loaded, then
quantized by gptqmodel with `bits` (2, 3, 4, 8), `group_size` (default 128; -1 = one
group per output channel; it must divide every layer's input width, as gptqmodel's
kernels need whole groups), `desc_act` (act-order, default false), symmetric, damping
0.05, no group-aware reordering: the GPTQ of the paper. Unless `dtype=` is given,
everything that is not a GPTQ weight (embeddings, norms, LM head, activations) is fp32.

`kernel` picks gptqmodel's inference kernel (a `gptqmodel.utils.backend.BACKEND` value).
The default `gptq_torch` dequantizes and runs an ordinary matmul, so a sentence's score does
not depend on the batch it is in; `auto` lets gptqmodel pick its fastest kernel for the
machine, some of which (e.g. the CPU int4pack kernel) change scores with the batch size.

The result is saved under `$LM_EVAL_BIAS_CACHE/gptq/<key>` (default
`~/.cache/lm_eval_bias/gptq/<key>`) and loaded back from there (compressed_cache.py). The key
hashes the model (path or Hub id, revision, its weight files' names, sizes and modification
times), every setting, the calibration data's content and the gptqmodel version, so a grid never
quantizes the same thing twice. A folder appears complete or not at all (renamed into place).

Calibration (`calibration`, calibration.py): a local file (`.jsonl`: the "text" field of each line;
anything else: one sample per non-empty line) or a Hub dataset `id[:config[:split]]`
(column "text", split "train" by default; default `Salesforce/wikitext:wikitext-2-raw-v1`).
The texts are shuffled with `random.Random(seed)` and the first `calibration_samples`
(default 128) of more than 10 tokens are used (gptqmodel drops shorter ones on its own).

On CPU gptqmodel needs at least two CPU workers: `GPTQMODEL_CPU_WORKERS` is set to
max(2, its default) unless already set, and quantization runs with `offload_to_disk=False`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lm_eval_bias.model_wrappers.loading import stored_bits_per_weight
from lm_eval_bias.model_wrappers.quantizers.base import (
    GPTQ_INSTALL,
    QuantizationError,
    Quantizer,
    fp32_unless_given,
    quiet_kernel_override,
)
from lm_eval_bias.model_wrappers.quantizers.calibration import (
    DEFAULT_CALIBRATION,
    calibration_fingerprint,
    calibration_texts,
)
from lm_eval_bias.model_wrappers.quantizers.compressed_cache import (
    CACHE_FORMAT,
    cache_folder,
    model_source,
    staged_folder,
)
from lm_eval_bias.model_wrappers.quantizers.config import (
    QuantizationConfig,
    one_of,
    option,
    parse_bool,
    parse_int,
    parse_str,
    positive_int,
)

DAMP_PERCENT = 0.05
SETTINGS_FILE = "lm_eval_bias_gptq.json"  # the record of a cached GPTQ checkpoint: its presence marks it complete
BATCH_INVARIANT_KERNEL = "gptq_torch"


def parse_gptq_group_size(value: Any) -> int:
    size = -1 if value is None or str(value).strip().lower() in ("", "none") else parse_int(value)
    if size != -1 and size < 1:
        raise ValueError("expected a positive integer, or -1 for one group per output channel")
    return size


def parse_kernel(value: Any) -> str:
    return str(value).strip().lower()


@dataclass
class GptqConfig(QuantizationConfig):
    bits: int = option(4, one_of(2, 3, 4, 8), "bits per weight code: 2, 3, 4 or 8")
    group_size: int = option(
        128,
        parse_gptq_group_size,
        "input columns per scale (must divide every layer's input width); -1: one group per output channel",
    )
    desc_act: bool = option(False, parse_bool, "act-order: quantize columns by decreasing activation size")
    calibration: str = option(
        DEFAULT_CALIBRATION,
        parse_str,
        "calibration texts: a local .jsonl/.txt file or a Hub dataset id[:config[:split]]",
    )
    calibration_samples: int = option(128, positive_int, "calibration texts used (those over 10 tokens)")
    seed: int = option(0, parse_int, "seed of the calibration shuffle and of quantization")
    kernel: str = option(
        BATCH_INVARIANT_KERNEL,
        parse_kernel,
        "gptqmodel inference kernel (a BACKEND value: auto or gptq_*); gptq_torch scores do not depend on the batch",
    )

    @property
    def weight_bits(self) -> int:
        return self.bits


def ensure_cpu_workers() -> None:
    """gptqmodel's CPU thread pool fails with fewer than two workers (its default on 2 cores)."""
    default = min(12, max(1, ((os.cpu_count() or 1) + 1) // 2))
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, default)))


# --- the model being quantized ------------------------------------------------------------


def gptq_config_of(config) -> dict[str, Any] | None:
    """The checkpoint's own quantization config (from a model config), if it is already quantized."""
    quantization_config = getattr(config, "quantization_config", None)
    if quantization_config is None:
        return None
    return quantization_config if isinstance(quantization_config, dict) else quantization_config.to_dict()


def gptq_layers(model: nn.Module) -> list[nn.Module]:
    """The packed GPTQ layers of a loaded model (they hold `qweight`)."""
    layers = [module for module in model.modules() if hasattr(module, "qweight")]
    if not layers:
        raise QuantizationError(f"quantization=gptq: {type(model).__name__} holds no GPTQ layer after loading.")
    return layers


class GPTQ(Quantizer):
    name = "gptq"
    config_class = GptqConfig
    config: GptqConfig
    requires = ("gptqmodel", GPTQ_INSTALL)
    loads_checkpoints = ("gptq",)

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._revision: str | None = None
        self._device = torch.device("cpu")
        self._loaded_from_cache: tuple[str, str] | None = None

    def validate_environment(self, device) -> None:
        ensure_cpu_workers()
        super().validate_environment(device)
        self._device = torch.device(device)
        if importlib.util.find_spec("optimum") is None:
            raise QuantizationError(f"quantization=gptq loads GPTQ checkpoints through optimum: {GPTQ_INSTALL}.")
        from gptqmodel.utils.backend import BACKEND

        kernels = sorted(b.value for b in BACKEND if b.value == "auto" or b.value.startswith("gptq_"))
        if self.config.kernel not in kernels:
            raise QuantizationError(
                f"quantization=gptq: unknown kernel={self.config.kernel!r}; choose one of {', '.join(kernels)}."
            )

    def update_load_kwargs(self, load_kwargs: dict[str, Any]) -> dict[str, Any]:
        self._revision = load_kwargs.get("revision")
        load_kwargs = dict(load_kwargs)
        if load_kwargs.get("quantization_config") is not None:  # a GPTQ checkpoint: choose its kernel
            load_kwargs["quantization_config"] = self._with_kernel(load_kwargs["quantization_config"])
        return fp32_unless_given(load_kwargs)

    def _with_kernel(self, quantization_config):
        from transformers import GPTQConfig

        config = quantization_config if isinstance(quantization_config, dict) else quantization_config.to_dict()
        if "gptq" not in str(config.get("quant_method", "")).lower():
            return quantization_config  # not ours to change; postprocess_model names the problem
        return GPTQConfig.from_dict({**config, "backend": self.config.kernel})

    def load_model(self, auto_class, pretrained, *args, **kwargs):
        """A checkpoint folder or Hub id is never loaded in full precision: the cached GPTQ checkpoint
        is loaded directly, and on a miss gptqmodel quantizes from the source files first."""
        # HFLM passes the checkpoint's own quantization_config when it has one: then it is loaded as it is
        if args or kwargs.get("quantization_config") is not None or kwargs.get("gguf_file") or kwargs.get("subfolder"):
            with quiet_kernel_override():
                return super().load_model(auto_class, pretrained, *args, **kwargs)
        from transformers import AutoConfig

        revision = kwargs.get("revision")
        config = AutoConfig.from_pretrained(
            pretrained, revision=revision, trust_remote_code=kwargs.get("trust_remote_code")
        )
        with torch.device("meta"):
            self._check_group_size(auto_class.from_config(config))
        checkpoint, cache = self._cached_checkpoint(str(pretrained), revision, self._device)
        self._loaded_from_cache = (str(checkpoint), cache)
        load_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("revision", "gguf_file", "subfolder", "quantization_config")
        }
        return self._load_checkpoint(auto_class, checkpoint, **load_kwargs)

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        ensure_cpu_workers()
        if self._loaded_from_cache is not None:
            checkpoint, cache = self._loaded_from_cache
            return self._finish(model, checkpoint=checkpoint, cache=cache)
        existing = gptq_config_of(model.config)
        if existing is not None:
            self._adopt_checkpoint_settings(existing, model.name_or_path)
            return self._finish(model, checkpoint=model.name_or_path, cache="pre-quantized checkpoint")
        # a model object handed over already loaded (pretrained=<PreTrainedModel>)
        self._check_group_size(model)
        device = next(model.parameters()).device
        checkpoint, cache = self._cached_checkpoint(model.name_or_path, self._revision, device)
        quantized = self._load_checkpoint(type(model), checkpoint, dtype=model.dtype, device_map={"": device})
        del model
        return self._finish(quantized, checkpoint=str(checkpoint), cache=cache)

    def _cached_checkpoint(self, name_or_path: str, revision: str | None, device) -> tuple[Path, str]:
        """The cache folder for this model and these settings, filled by quantizing it if empty."""
        source, identity = model_source(name_or_path, revision)
        key_fields = {
            "format": CACHE_FORMAT,
            **identity,
            **{k: v for k, v in self.settings.items() if k not in ("calibration", "kernel")},  # kernel: load time only
            "calibration": calibration_fingerprint(self.config.calibration),
            "sym": True,
            "act_group_aware": False,
            "damp_percent": DAMP_PERCENT,
            "gptqmodel": _gptqmodel_version(),
        }
        checkpoint = cache_folder(self.name, key_fields)
        if (checkpoint / SETTINGS_FILE).is_file():
            return checkpoint, "hit"
        self._quantize(source, checkpoint, key_fields, device)
        return checkpoint, "miss"

    def _load_checkpoint(self, model_class, checkpoint: Path, **load_kwargs) -> nn.Module:
        """A checkpoint of our cache, with the chosen kernel."""
        saved_config = json.loads((checkpoint / "config.json").read_text())["quantization_config"]
        with quiet_kernel_override():
            return model_class.from_pretrained(
                checkpoint, quantization_config=self._with_kernel(saved_config), **load_kwargs
            )

    def _check_group_size(self, model: nn.Module) -> None:
        """gptqmodel's kernels need whole groups: refuse before spending the calibration time."""
        size = self.config.group_size
        head = model.get_output_embeddings()
        widths = {m.in_features for m in model.modules() if isinstance(m, nn.Linear) and m is not head}
        ragged = sorted(w for w in widths if size > 0 and w % size)
        if ragged:
            raise QuantizationError(
                f"quantization=gptq: group_size={size} does not divide the input width {ragged[0]} of some layers "
                f"of {type(model).__name__}; choose a divisor of {', '.join(map(str, sorted(widths)))}, or -1."
            )

    def _quantize(self, source: Path, checkpoint: Path, key_fields: dict[str, Any], device: torch.device) -> None:
        from gptqmodel import GPTQConfig, GPTQModel

        settings = self.settings
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        texts = calibration_texts(settings["calibration"], settings["calibration_samples"], settings["seed"], tokenizer)
        config = GPTQConfig(
            bits=settings["bits"],
            group_size=settings["group_size"],
            desc_act=settings["desc_act"],
            act_group_aware=False,
            sym=True,
            damp_percent=DAMP_PERCENT,
            offload_to_disk=False,
        )
        start = time.perf_counter()
        torch.manual_seed(settings["seed"])
        model = GPTQModel.load(str(source), config, device=str(device))
        model.quantize(texts, batch_size=1)
        with staged_folder(checkpoint, SETTINGS_FILE) as staging:  # a checkpoint folder is complete or absent
            model.save(str(staging))
            seconds = time.perf_counter() - start
            record = {**key_fields, "calibration_samples_used": len(texts), "quantize_seconds": seconds}
            (staging / SETTINGS_FILE).write_text(json.dumps(record, indent=2, default=str))
        del model

    def _adopt_checkpoint_settings(self, config: dict[str, Any], checkpoint: str) -> None:
        method = str(config.get("quant_method", "")).lower()
        if "gptq" not in method:
            raise QuantizationError(
                f"{checkpoint!r} is already quantized with {method or 'another method'}, not GPTQ (if its weights are "
                "plain floats, the quantization_config entry in its config.json is stale: remove it)."
            )
        found = {
            "bits": config.get("bits"),
            "group_size": config.get("group_size"),
            "desc_act": bool(config.get("desc_act")),
        }
        self.config.adopt(found, f"{checkpoint!r} is a GPTQ checkpoint")  # the record says what it holds
        self.details = {"sym": config.get("sym")}  # a checkpoint of someone else's making: its own sym

    def _finish(self, model: nn.Module, checkpoint: str, cache: str) -> nn.Module:
        layers = gptq_layers(model)
        weight_cache = _cache_dequantized_weights(layers)
        record_file = Path(checkpoint) / SETTINGS_FILE
        record = json.loads(record_file.read_text()) if record_file.is_file() else {}
        self.effective_bits_per_weight = round(stored_bits_per_weight(layers), 4)
        ours = {} if "sym" in self.details else {"sym": True, "act_group_aware": False, "damp_percent": DAMP_PERCENT}
        self.details = {
            **ours,
            **self.details,
            "gptqmodel_version": _gptqmodel_version(),
            "checkpoint": checkpoint,
            "cache": cache,
            "kernel_class": type(layers[0]).__name__,
            "dequantized_weight_cache": weight_cache,
            **({"calibration_samples_used": record["calibration_samples_used"]} if record else {}),
            **({"quantize_seconds": round(record["quantize_seconds"], 2)} if record else {}),
        }
        return model


def _cache_dequantized_weights(layers: list[nn.Module]) -> bool:
    """On a CPU, gptqmodel's torch kernel keeps each layer's dequantized weight after its first use
    (its own switch, ``enable_weight_cache``; env GPTQ_TORCH_CACHE_WEIGHTS) instead of dequantizing
    it again in every forward: the same weights, so the same scores, at fp32 speed. It costs the
    memory of the quantized layers in fp32; on accelerators, where that memory is the point, it stays off."""
    if not layers or any(
        layer.qweight.device.type != "cpu" or not hasattr(layer, "enable_weight_cache") for layer in layers
    ):
        return False
    for layer in layers:
        layer.enable_weight_cache(True)
    return True


def _gptqmodel_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gptqmodel")
    except PackageNotFoundError:
        return None
