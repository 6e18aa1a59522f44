"""The on-disk cache of compressed checkpoints for methods that compress a loaded model in place.

A compressed model is saved with `save_pretrained` under `$LM_EVAL_BIAS_CACHE/<method>/<key>`
(default `~/.cache/lm_eval_bias/<method>/<key>`) with a record file naming the method and its
settings, and loaded back from there. The key hashes the model (path or Hub id, revision, its
weight files' names, sizes and modification times, as for GPTQ), every setting, the calibration
data's content and the cache format, so a sweep never compresses the same thing twice. A folder
appears complete or not at all (written under a temporary name, then renamed into place).

The same record file marks a folder as already compressed: such a checkpoint (a cache folder
copied elsewhere, or a model saved after compression) is loaded as it is, never compressed again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from lm_eval_bias.model_wrappers.quantizers.gptq import cache_root as gptq_cache_root
from lm_eval_bias.model_wrappers.quantizers.gptq import model_source

RECORD_FILE = "lm_eval_bias_compression.json"
CACHE_FORMAT = 1


def cache_folder(method: str, key_fields: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **key_fields}, sort_keys=True, default=str).encode())
    return gptq_cache_root().parent / method / key.hexdigest()[:20]


def source_identity(name_or_path: str, revision: str | None) -> dict[str, Any]:
    """What identifies the checkpoint's weights (see gptq.model_source)."""
    return model_source(name_or_path, revision)[1]


def read_record(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def save_compressed(
    model: nn.Module,
    folder: Path,
    record: dict[str, Any],
    tokenizer_source: str | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> None:
    """save_pretrained(model), its tokenizer, the record (and extra files) into `folder`, atomically:
    with the tokenizer the folder is a checkpoint of its own (pretrained=FOLDER loads it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        if tokenizer_source is not None:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(staging)
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str))
        try:
            staging.rename(folder)
        except OSError:
            if read_record(folder) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
