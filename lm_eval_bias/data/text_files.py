"""Reading a benchmark's text file: found, UTF-8 and not empty, or one BiasDataError naming the file."""

from __future__ import annotations

import os
from pathlib import Path

from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError


def read_benchmark_text(path: str | os.PathLike, what: str, expected: str) -> str:
    """The text of `path`; `what` names the file in errors ("SEAT test"), `expected` says what it should hold."""
    path = Path(path)
    if not path.is_file():
        raise BiasDataFileNotFoundError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BiasDataError(f"{path}: not a UTF-8 text file: {exc}") from exc
    if not text.strip():
        raise BiasDataError(f"{path}: the file is empty (expected {expected})")
    return text
