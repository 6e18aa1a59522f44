"""Whether a finished cell's files are whole.

When a cell finishes, its `cell.json` records what was written beside it: under `files`, each
results and samples file's path (relative to the cell's folder), size in bytes and SHA-256. A
cell folder counts as finished only if every recorded file is there with that size and hash;
a file truncated or changed later makes the cell *damaged*, and the study runs it again.

Cells finished before this record existed have no `files` key. They are still finished when
their files read back whole: every `results_*.json` parses as lm-eval results, every
`samples_*.jsonl` parses line by line and holds as many rows as the results' `n-samples` says.
The record is not part of the cell's hash (the hash covers the cell's settings only), so old
and new cells of the same settings share one folder name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lm_eval_bias.results_files import (
    UnreadableFileError,
    count_jsonl,
    read_json,
    samples_rows_problem,
    sha256,
)

FILES_KEY = "files"
DATE = re.compile(r"_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl?$")


def file_record(folder: Path, record_name: str) -> dict[str, dict[str, Any]]:
    """Relative path -> {"bytes", "sha256"} for every file under `folder` except the marker itself."""
    return {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != record_name
    }


def cell_problem(folder: Path, record_name: str) -> str:
    """ "" when the cell folder is finished and whole; else one line naming the file and what is wrong."""
    marker = folder / record_name
    if not marker.is_file():
        return f"{marker}: missing (a cell folder the study did not finish)"
    try:
        record = read_json(marker)
    except UnreadableFileError as error:
        return str(error)
    if not isinstance(record, dict):
        return f"{marker}: not a cell record"
    files = record.get(FILES_KEY)
    if files is None:
        return _legacy_problem(folder)
    if not isinstance(files, dict) or not files:
        return f"{marker}: '{FILES_KEY}' lists no files"
    for relative, expected in files.items():
        problem = _recorded_file_problem(folder / relative, expected, marker.name)
        if problem:
            return problem
    return ""


def _recorded_file_problem(path: Path, expected: Any, marker: str) -> str:
    if not isinstance(expected, dict):
        return f"{path}: {marker} records it without a size and hash"
    if not path.is_file():
        return f"{path}: missing ({marker} records {expected.get('bytes')} bytes)"
    size = path.stat().st_size
    if size != expected.get("bytes"):
        return f"{path}: {size} bytes, {marker} recorded {expected.get('bytes')} (cut short or changed)"
    if sha256(path) != expected.get("sha256"):
        return f"{path}: its SHA-256 differs from the one {marker} recorded (changed after the cell finished)"
    return ""


def _legacy_problem(folder: Path) -> str:
    """A cell finished before sizes and hashes were recorded: its files must parse whole."""
    results = sorted(folder.rglob("results_*.json"))
    if not results:
        return f"{folder}: no results_*.json"
    counts: dict[str, Any] = {}
    for path in results:
        try:
            data = read_json(path)
        except UnreadableFileError as error:
            return str(error)
        if not isinstance(data, dict) or "results" not in data:
            return f"{path}: not an lm-eval results file (no 'results')"
        counts.update(data.get("n-samples") or {})
    for path in sorted(folder.rglob("samples_*.jsonl")):
        try:
            rows = count_jsonl(path)
        except UnreadableFileError as error:
            return str(error)
        match = DATE.search(path.name)
        task = path.name[len("samples_") : match.start()] if match else path.stem[len("samples_") :]
        problem = samples_rows_problem(path, rows, {"n-samples": counts}, task)
        if problem:
            return f"{path}: {problem}"
    return ""
