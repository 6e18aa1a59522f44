"""GPTQ calibration texts: a local file (.jsonl "text" fields, else one sample per line) or a Hub
dataset `id[:config[:split]]` (column "text", split "train" by default), shuffled with a seed."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError

MIN_CALIBRATION_TOKENS = 10  # gptqmodel silently drops calibration samples of this length or less


def calibration_texts(spec: str, samples: int, seed: int, tokenizer) -> list[str]:
    texts = [t.strip() for t in (_local_texts(Path(spec)) if Path(spec).is_file() else _hub_texts(spec))]
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
    path = Path(spec)
    if path.is_file():
        return f"file:{path.name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return f"hub:{spec}"


def _local_texts(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return lines


def _hub_texts(spec: str) -> list[str]:
    name, config, split = (spec.split(":") + [None, None])[:3]
    try:
        import datasets

        return list(datasets.load_dataset(name, config, split=split or "train")["text"])
    except Exception as error:  # offline, unknown id, no "text" column
        raise QuantizationError(
            f"quantization=gptq could not load calibration={spec!r} ({type(error).__name__}: {error}). "
            "Pass calibration=PATH to a local text file (one sample per line) or .jsonl with a \"text\" field."
        ) from error
