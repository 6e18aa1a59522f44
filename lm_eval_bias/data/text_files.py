"""Reading a benchmark's text file: found, UTF-8 and not empty, or one BiasDataError naming the file."""

from __future__ import annotations

import json
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


def json_object(path: str | os.PathLike, text: str, required: tuple[str, ...], where: str = "", hint: str = "") -> dict:
    """`text` parsed as one JSON object holding every key in `required`; errors name the file and `where`."""
    prefix = f"{path}: {where}: " if where else f"{path}: "
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BiasDataError(f"{prefix}not valid JSON ({exc.msg}, line {exc.lineno}){hint}") from None
    if not isinstance(value, dict):
        raise BiasDataError(f"{prefix}expected a JSON object, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise BiasDataError(
            f"{prefix}missing key(s) {', '.join(map(repr, missing))}; required keys: {', '.join(map(repr, required))}"
        )
    return value
