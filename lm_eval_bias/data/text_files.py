"""Reading a benchmark's text file: found, UTF-8 and not empty, or one BiasDataError naming the file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError


def read_benchmark_text(path: str | os.PathLike, what: str, expected: str) -> str:
    """The text of `path`; `what` names the file in errors ("SEAT test"), `expected` says what it should hold."""
    path = Path(path)
    if not path.is_file():
        raise BiasDataFileNotFoundError(f"{path}: {what} file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BiasDataError(utf8_error(path, raw, exc)) from None
    if not text.strip():
        raise BiasDataError(f"{path}: the file is empty (expected {expected})")
    return text


def utf8_error(path: str | os.PathLike, raw: bytes, exc: UnicodeDecodeError, header_lines: int = 0) -> str:
    """The message for a file that is not UTF-8: the line (after ``header_lines``, the data row) of the bad byte."""
    line = raw[: exc.start].count(b"\n") + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    row = f" (data row {line - header_lines})" if header_lines and line > header_lines else ""
    return (
        f"{path}: line {line}{row}, column {column}: byte 0x{raw[exc.start]:02x} is not valid UTF-8 "
        f"({exc.reason}); save the file as UTF-8"
    )


# C0 control characters but tab, newline and carriage return, and DEL
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_characters(text: str) -> str:
    """The control characters in ``text`` (NUL, and any other but tab and newline), as a readable list; "" if none."""
    found = sorted(set(CONTROL_CHARACTER.findall(text)))
    return ", ".join(f"U+{ord(ch):04X}" + (" (NUL)" if ch == "\0" else "") for ch in found)


def json_object(path: str | os.PathLike, text: str, required: tuple[str, ...], where: str = "", hint: str = "") -> dict:
    """`text` parsed as one JSON object holding every key in `required`; errors name the file and `where`."""
    prefix = f"{path}: {where}: " if where else f"{path}: "
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BiasDataError(f"{prefix}not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}){hint}") from None
    if not isinstance(value, dict):
        raise BiasDataError(f"{prefix}expected a JSON object, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise BiasDataError(
            f"{prefix}missing key(s) {', '.join(map(repr, missing))}; required keys: {', '.join(map(repr, required))}"
        )
    return value


_COLLECTING: list[list[str]] = []


def note_warning(message: str) -> None:
    """Hand a data warning (legal but unusual input) to every :func:`collecting_warnings` block open now."""
    for bucket in _COLLECTING:
        if message not in bucket:
            bucket.append(message)


@contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """The data warnings noted while the block runs (a task records those of the data it read)."""
    bucket: list[str] = []
    _COLLECTING.append(bucket)
    try:
        yield bucket
    finally:
        _COLLECTING.remove(bucket)
