"""The on-disk cache of compressed checkpoints, shared by every method that compresses a model itself.

A compressed model is saved under `$LM_EVAL_BIAS_CACHE/<method>/<key>` (default
`~/.cache/lm_eval_bias/<method>/<key>`) and loaded back from there. The key (`cache_key`) hashes the
model (path or Hub id, revision, its weight files' names, sizes and modification times:
`model_source`), every setting, the calibration data's content and the cache format, so a sweep
never compresses the same thing twice. A folder appears complete or not at all (`staged_folder`:
written under a temporary name, then renamed into place).

GPTQ (gptq.py) saves gptqmodel's checkpoint with its own record file; the methods that compress a
loaded model in place (one_shot.py) use `save_compressed`, with a record file naming the method and
its settings. That record file also marks a folder as already compressed: such a checkpoint (a cache
folder copied elsewhere, or a model saved after compression) is loaded as it is, never compressed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

RECORD_FILE = "lm_eval_bias_compression.json"
CACHE_FORMAT = 1
KEY_LENGTH = 20  # hex digits of the sha256 that name a cache folder


def cache_root() -> Path:
    """The folder holding every method's cache.

    Returns:
        `$LM_EVAL_BIAS_CACHE`, or `~/.cache/lm_eval_bias` when it is unset or empty.
    """
    return Path(os.environ.get("LM_EVAL_BIAS_CACHE") or Path.home() / ".cache" / "lm_eval_bias")


def cache_key(key_fields: dict[str, Any]) -> str:
    """The name of the cache folder for these fields.

    Args:
        key_fields: everything the compressed checkpoint depends on (JSON-serialisable, or turned into
            strings); the cache format is added to them (a "format" field of their own replaces it).

    Returns:
        The first 20 hex digits of the sha256 of the fields as sorted JSON.
    """
    fields = {"format": CACHE_FORMAT, **key_fields}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:KEY_LENGTH]


def cache_folder(method: str, key_fields: dict[str, Any]) -> Path:
    """Where `method`'s checkpoint for these key fields is cached (it may not exist yet).

    Args:
        method: the method's name, the cache's subfolder.
        key_fields: as for `cache_key`.

    Returns:
        `cache_root() / method / cache_key(key_fields)`.
    """
    return cache_root() / method / cache_key(key_fields)


def model_source(name_or_path: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    """The local folder holding a checkpoint, and what identifies its weights.

    Args:
        name_or_path: a local folder or a Hub id (downloaded, or found in the Hub cache).
        revision: the Hub revision, or None.

    Returns:
        (the folder, {model, revision, resolved folder, [(file name, size, mtime in ns)] of its
        .safetensors / .bin / .json files}).
    """
    path = Path(name_or_path)
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(name_or_path, revision=revision))
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return path, {"model": str(name_or_path), "revision": revision, "resolved": str(path.resolve()), "files": stats}


def source_identity(name_or_path: str, revision: str | None) -> dict[str, Any]:
    """What identifies the checkpoint's weights (the second half of `model_source`)."""
    return model_source(name_or_path, revision)[1]


@contextlib.contextmanager
def staged_folder(folder: Path, marker: str) -> Iterator[Path]:
    """A temporary folder next to `folder`, renamed to `folder` when the block completes.

    A folder of the cache is thus complete or absent. If another process renamed its own copy into
    place first (the rename fails), that copy is kept when it holds `marker`; the temporary folder
    is removed in every case.

    Args:
        folder: the final folder (its parent is created).
        marker: the file whose presence makes a folder complete (the record file).

    Returns:
        A context manager yielding the temporary folder to write into.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield staging
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / marker).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
    with staged_folder(folder, RECORD_FILE) as staging:
        model.save_pretrained(staging)
        if tokenizer_source is not None:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(staging)
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str))
