"""``--model_args`` checks of ``quantized_hf`` / ``distilled_hf`` that run before any model loads.

Each refuses one kind of bad input with a :class:`~lm_eval_bias.errors.BiasOptionError` that
names the option and its valid values (docs/errors.md):

- a key given twice (``bits=4,bits=8``): lm-eval's parsers keep the last one silently;
- a key that is no option of HFLM, of ``quantized_hf`` or of any compression method but close to
  one (``bitz`` for rtn's ``bits``): other unknown keys still go to ``from_pretrained``, as in ``hf``;
- an unknown ``dtype`` (``float8``);
- a local ``pretrained=`` folder that does not exist (absolute, ``./``, ``../`` or ``~`` paths,
  or a relative path with more than one ``/``; ``org/name`` stays a Hub id).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasOptionError, did_you_mean

DTYPES = ("auto", "float32", "float16", "bfloat16", "float64", "float", "half", "double")
OWN_OPTIONS = ("quantization", "backend", "mlm_score", "long_inputs", "teacher", "teacher_revision")
# keys HFLM hands on to transformers' from_pretrained (never taken for typos of our options)
FROM_PRETRAINED = (
    "attn_implementation",
    "low_cpu_mem_usage",
    "device_map",
    "torch_dtype",
    "use_safetensors",
    "variant",
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "max_memory",
    "offload_state_dict",
    "quantization_config",
    "output_loading_info",
    "key_mapping",
    "rope_scaling",
)


def repeated_keys(pairs: Iterable[str]) -> dict[str, list[str]]:
    """key -> every value given for it, for each key of ``key=value`` items given more than once.

    Args:
        pairs: the ``key=value`` items, as split from the command line.

    Returns:
        The repeated keys (empty when every key is given once).
    """
    seen: dict[str, list[str]] = {}
    for item in pairs:
        key, _, value = str(item).partition("=")
        seen.setdefault(key.strip(), []).append(value)
    return {key: values for key, values in seen.items() if len(values) > 1}


def check_repeated(pairs: Iterable[str], option: str = "--model_args") -> None:
    """Refuse ``key=value`` items that give a key twice (lm-eval would keep the last one silently)."""
    repeated = repeated_keys(pairs)
    if repeated:
        given = "; ".join(
            f"{key} is given {len(v)} times ({', '.join(f'{key}={x}' for x in v)})" for key, v in repeated.items()
        )
        raise BiasOptionError(f"{option}: {given}; give each key once")


def split_items(args: str) -> list[str]:
    """``a=1,b=[2,3]`` -> ["a=1", "b=[2,3]"]: commas inside brackets, braces or quotes do not split."""
    items, buf, depth, quote = [], [], 0, None
    for char in str(args):
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append("".join(buf))
            buf = []
            continue
        buf.append(char)
    items.append("".join(buf))
    return [item for item in items if item.strip()]


@cache
def hflm_options() -> frozenset[str]:
    """The named parameters of lm-eval's HFLM (and of our wrappers)."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_bias.protocol import METADATA_KEYS  # lm-eval merges model_args into the task metadata

    names = {p for p in inspect.signature(HFLM.__init__).parameters if p not in ("self", "kwargs")}
    extra = {"batch_size", "max_batch_size", "device"}
    return frozenset(names | set(OWN_OPTIONS) | set(FROM_PRETRAINED) | set(METADATA_KEYS) | extra)


def check_near_misses(method: str, rest: Mapping[str, Any], method_options: Iterable[str], all_options: Iterable[str]):
    """Refuse a key that is no known option but close to one (a typo would otherwise reach transformers).

    Args:
        method: the compression method (``quantization=``).
        rest: the model_args left once the method's options are taken out.
        method_options: the options the method takes.
        all_options: every option of any method.
    """
    known = hflm_options()
    method_options = tuple(method_options)
    for key in rest:
        if key in known:
            continue
        close = did_you_mean(key, method_options)
        if close:
            raise BiasOptionError(
                f"quantization={method} does not take {key}{close}; its options: {', '.join(method_options) or 'none'}."
            )
        close = did_you_mean(key, sorted(known | set(all_options)))
        if close:
            raise BiasOptionError(f"--model_args: unknown option {key}{close}")


def check_dtype(dtype: Any) -> None:
    """Refuse a ``dtype`` that names no floating-point torch dtype (HFLM would fail with getattr(torch, ...))."""
    if dtype is None or not isinstance(dtype, str) or dtype == "auto":
        return
    import torch

    value = getattr(torch, dtype, None)
    if not (isinstance(value, torch.dtype) and value.is_floating_point and value.itemsize >= 2):
        raise BiasOptionError(
            f"--model_args: dtype={dtype} is not a dtype a model loads in; use one of {', '.join(DTYPES)}"
        )


def looks_local(pretrained: str) -> bool:
    """``pretrained`` is meant as a local folder, not a Hub id (``org/name``)."""
    text = str(pretrained)
    return (
        os.path.isabs(text)
        or text.startswith(("./", "../", "~", ".\\", "..\\"))
        or text in (".", "..")
        or text.count("/") > 1
    )


def check_pretrained(pretrained: Any) -> None:
    """Refuse a local ``pretrained=`` path that does not exist, or is a file, before any loading."""
    if not isinstance(pretrained, (str, os.PathLike)) or not looks_local(str(pretrained)):
        return
    path = Path(pretrained).expanduser()
    if not path.exists():
        raise BiasOptionError(
            f"--model_args: pretrained={pretrained}: no such folder (a local model folder must exist; "
            "a Hub model is named org/name)"
        )
    if not path.is_dir():
        raise BiasOptionError(f"--model_args: pretrained={pretrained} is a file; expected a model folder")
