"""Calibration texts for every calibrated method (GPTQ, Wanda, SparseGPT, AWQ, SmoothQuant).

A local file (.jsonl "text" fields, else one sample per line) or a Hub dataset `id[:config[:split]]`
(column "text", split "train" by default; default wikitext-2 raw, so that every calibrated method of
a sweep sees the same neutral Wikipedia text), shuffled with a seed. The bias benchmarks themselves
are refused: a model calibrated on the sentences it is then scored on would be measured on its own
calibration set. Running the texts through a model block by block: calibration_forward.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from pathlib import Path

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError

DEFAULT_CALIBRATION = "Salesforce/wikitext:wikitext-2-raw-v1"
MIN_CALIBRATION_TOKENS = 10  # gptqmodel silently drops calibration samples of this length or less
BIAS_BENCHMARK_NAMES = re.compile(r"crows[_-]?pairs|stereoset|(^|[^a-z])s?eat[_-]?bias|sent-(weat|angry|heilman)", re.I)


def calibration_texts(spec: str, samples: int, seed: int, tokenizer, method: str = "gptq") -> list[str]:
    """The calibration texts a method uses.

    Args:
        spec: a local .jsonl / text file, or a Hub dataset `id[:config[:split]]`.
        samples: how many texts to take at most.
        seed: the seed of the shuffle (`random.Random(seed)`).
        tokenizer: the model's tokenizer, to count tokens.
        method: the method's name, for error messages.

    Returns:
        The first `samples` non-empty texts of more than MIN_CALIBRATION_TOKENS tokens, in shuffled order.
    """
    _refuse_bias_benchmarks(spec, method)
    texts = [t.strip() for t in (_local_texts(Path(spec)) if Path(spec).is_file() else _hub_texts(spec, method))]
    random.Random(seed).shuffle(texts)
    chosen = []
    for text in texts:
        if len(chosen) == samples:
            break
        if text and len(tokenizer(text)["input_ids"]) > MIN_CALIBRATION_TOKENS:
            chosen.append(text)
    if not chosen:
        raise QuantizationError(f"calibration={spec!r} holds no text of more than {MIN_CALIBRATION_TOKENS} tokens.")
    return chosen


def calibration_fingerprint(spec: str) -> str:
    """What a cache key records of the calibration data.

    Args:
        spec: as for `calibration_texts`.

    Returns:
        A local file's name and sha256 (its content, not its path), or the Hub spec as given.
    """
    path = Path(spec)
    if path.is_file():
        return f"file:{path.name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return f"hub:{spec}"


def _local_texts(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return lines


def _refuse_bias_benchmarks(spec: str, method: str) -> None:
    """By location (under LM_EVAL_BIAS_DATA_DIR) or by name (the file's, or the Hub id)."""
    data_dir = os.environ.get("LM_EVAL_BIAS_DATA_DIR")
    is_file = Path(spec).is_file()
    inside_data = bool(data_dir) and is_file and Path(data_dir).resolve() in Path(spec).resolve().parents
    if inside_data or BIAS_BENCHMARK_NAMES.search(Path(spec).name if is_file else spec):
        raise QuantizationError(
            f"quantization={method}: calibration={spec!r} is (or lies among) the bias benchmarks; calibrating on the "
            "sentences that are then scored would bias the measurement. Use neutral text, e.g. wikitext."
        )


def _hub_texts(spec: str, method: str = "gptq") -> list[str]:
    name, config, split = (spec.split(":") + [None, None])[:3]
    try:
        import datasets

        return list(datasets.load_dataset(name, config, split=split or "train")["text"])
    except Exception as error:  # offline, unknown id, no "text" column
        raise QuantizationError(
            f"quantization={method} could not load calibration={spec!r} ({type(error).__name__}: {error}). "
            'Pass calibration=PATH to a local text file (one sample per line) or .jsonl with a "text" field.'
        ) from error
