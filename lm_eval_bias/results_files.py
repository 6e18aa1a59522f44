"""Reading lm-eval's results files back whole, and naming the file and line of what does not read.

`lm_eval --output_path DIR --log_samples` writes `results_<date>.json` and one
`samples_<task>_<date>.jsonl` per task. A file cut short (a full disk, a copy interrupted, a
crash mid-write) fails to parse with Python's bare `Expecting ',' delimiter: line 1 column
1331`; here it fails with an `UnreadableFileError` whose message starts with the file's path
and the line. A samples file cut exactly at a line ends cleanly but holds fewer rows than its
results file's `n-samples` says: `samples_rows_problem` names that too. A study's cell also
records each file's size and SHA-256 when it finishes (`lm_eval_bias.study.integrity`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


class UnreadableFileError(ValueError):
    """A results, samples or cell.json file that does not read back whole.

    Attributes:
        path: the file.
        reason: what is wrong, with the line where there is one ("line 3, column 1331: Expecting ',' delimiter").
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def read_json(path: str | Path) -> Any:
    """A JSON file's content.

    Args:
        path: the file.

    Returns:
        The parsed value.

    Raises:
        UnreadableFileError: it cannot be read, is not UTF-8, or is not (whole) JSON; the message names
            the file and the line and column.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableFileError(path, error.strerror or str(error)) from error
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UnreadableFileError(path, f"{_where(data, error.start)}: not UTF-8 ({error.reason})") from error
    except json.JSONDecodeError as error:
        if not data.strip():
            raise UnreadableFileError(path, "empty file") from error
        raise UnreadableFileError(path, f"line {error.lineno}, column {error.colno}: {error.msg}") from error


def iter_jsonl(path: str | Path) -> Iterator[Any]:
    """The rows of a JSON-lines file, blank lines skipped.

    Args:
        path: the file.

    Returns:
        An iterator over the parsed rows.

    Raises:
        UnreadableFileError: a line is not UTF-8 or not JSON (the message names the file and the line), or
            the file cannot be read.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise UnreadableFileError(path, error.strerror or str(error)) from error
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise UnreadableFileError(
                    path, f"line {number}, column {error.start + 1}: not UTF-8 ({error.reason})"
                ) from error
            except json.JSONDecodeError as error:
                cut = "" if raw.endswith(b"\n") else " (the file ends inside this line: cut short?)"
                raise UnreadableFileError(path, f"line {number}, column {error.colno}: {error.msg}{cut}") from error


def count_jsonl(path: str | Path) -> int:
    """How many rows a JSON-lines file holds, every line parsed.

    Args:
        path: the file.

    Returns:
        The number of non-blank lines.

    Raises:
        UnreadableFileError: as ``iter_jsonl``.
    """
    return sum(1 for _ in iter_jsonl(path))


def samples_rows_problem(path: str | Path, rows: int, results: dict[str, Any], task: str) -> str:
    """Whether a samples file holds as many rows as its results file says the task scored.

    Args:
        path: the samples file (for the message).
        rows: the rows it holds (``count_jsonl``).
        results: the parsed results file it belongs to.
        task: its leaf task.

    Returns:
        "" when they agree or the results do not say (no ``n-samples`` entry); else the reason.
    """
    expected = (results.get("n-samples") or {}).get(task, {})
    expected = expected.get("effective") if isinstance(expected, dict) else None
    if not isinstance(expected, int) or expected == rows:
        return ""
    return f"{rows} rows, but its results file says {task} scored {expected} (cut short?)"


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes.

    Args:
        path: the file.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
