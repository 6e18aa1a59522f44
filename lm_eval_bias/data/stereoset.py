"""StereoSet (Nadeem et al., ACL 2021): load and validate the dev or the test set.

Two layouts are accepted, recognised by their content:

* the authors' nested ``dev.json``: ``{"version": ..., "data": {"intrasentence": [...],
  "intersentence": [...]}}``, each cluster ``{id, target, bias_type, context, sentences}``
  with one sentence per ``gold_label`` (stereotype, anti-stereotype, unrelated);
* the flattened JSONL (one cluster per line) with keys ``type``, ``target``,
  ``bias_type``, ``context``, ``stereotype``, ``anti-stereotype``, ``unrelated``.

Both give the same table: one row per cluster with columns :data:`OUTPUT_COLUMNS`.
Intrasentence contexts hold the word ``BLANK``; their candidates are whole sentences.
Intersentence candidates are the sentence that follows the context.

Errors name the file and the cluster: "line N" (JSONL, 1-based) or
"data.<split>[i] (id ...)" (nested JSON, 0-based as in the file).
"""

from __future__ import annotations

import json
import os
import string
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lm_eval_bias.data.sources import benchmark_file
from lm_eval_bias.data.text_files import control_characters, json_object, read_benchmark_text
from lm_eval_bias.errors import BiasDataError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

SPLITS = ("intrasentence", "intersentence")
# stereoset_split -> benchmark data name (lm_eval_bias.data.sources.CANONICAL_FILES)
FILE_SPLITS = {"dev": "stereoset", "test": "stereoset_test"}
DOMAINS = ("gender", "profession", "race", "religion")
LABELS = ("stereotype", "anti-stereotype", "unrelated")
FLAT_KEYS = ("type", "target", "bias_type", "context", *LABELS)
BLANK = "BLANK"
# Columns of the loaded table; "anti-stereotype" becomes a valid identifier.
CANDIDATES = ("stereotype", "anti_stereotype", "unrelated")
OUTPUT_COLUMNS = ("cluster_id", "split", "target", "bias_type", "context", *CANDIDATES)


def _choices(values) -> str:
    return ", ".join(repr(v) for v in values)


def load_stereoset(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a StereoSet file (nested ``dev.json`` or flattened JSONL).

    Returns one row per cluster, in file order (nested files: intrasentence first), with
    columns :data:`OUTPUT_COLUMNS`. ``cluster_id`` is the authors' id (nested) or
    ``"line-N"`` (JSONL). Raises :class:`BiasDataError` naming the file, the cluster, the
    field, the bad value and the expected values.
    """
    path = Path(path)
    stat = path.stat() if path.is_file() else None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size) if stat else None
    return (_parsed(*key) if key else _parse(path)).copy()


@lru_cache(maxsize=4)
def _parsed(resolved: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """One parse per file version: the harness builds each of the 8 subtasks from the same file."""
    return _parse(Path(resolved))


def _parse(path: Path) -> pd.DataFrame:
    text = read_benchmark_text(path, "StereoSet", "StereoSet JSON or JSONL")
    if path.suffix.lower() == ".json":  # the authors' nested file (dev.json, test.json): one JSON object
        nested = json_object(path, text, ("data",), hint="; expected the authors' nested StereoSet JSON file")
    else:
        nested = _as_nested(text)
    rows = _nested_rows(path, nested) if nested is not None else _flat_rows(path, text)
    if not rows:
        raise BiasDataError(f"{path}: the file holds no StereoSet clusters")
    for where, row in rows:
        _validate(path, where, row)
    return pd.DataFrame([row for _, row in rows], columns=list(OUTPUT_COLUMNS))


def _as_nested(text: str):
    """The parsed object when the whole text is one JSON object with a "data" key."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return None
    return whole if isinstance(whole, dict) and "data" in whole else None


def _nested_rows(path: Path, whole: dict) -> list[tuple[str, dict]]:
    data = whole["data"]
    if not isinstance(data, dict) or not any(split in data for split in SPLITS):
        raise BiasDataError(f'{path}: "data" must be an object with the keys {_choices(SPLITS)}')
    rows = []
    for split in SPLITS:
        for index, cluster in enumerate(data.get(split) or []):
            where = f"data.{split}[{index}]"
            if not isinstance(cluster, dict):
                raise BiasDataError(f"{path}: {where}: expected a JSON object, got {type(cluster).__name__}")
            where += f" (id {cluster.get('id')!r})"
            missing = [k for k in ("id", "target", "bias_type", "context", "sentences") if k not in cluster]
            if missing:
                raise BiasDataError(f"{path}: {where}: missing key(s) {_choices(missing)}")
            by_label = {}
            for sentence in cluster["sentences"] if isinstance(cluster["sentences"], list) else []:
                label = sentence.get("gold_label") if isinstance(sentence, dict) else None
                if label not in LABELS:
                    raise BiasDataError(
                        f"{path}: {where}: sentence with gold_label {label!r}; expected one of: {_choices(LABELS)}"
                    )
                if label in by_label:
                    raise BiasDataError(f"{path}: {where}: two sentences with gold_label {label!r}")
                by_label[label] = sentence.get("sentence")
            if set(by_label) != set(LABELS):
                missing = [label for label in LABELS if label not in by_label]
                raise BiasDataError(f"{path}: {where}: no sentence with gold_label {_choices(missing)}")
            row = {
                "cluster_id": str(cluster["id"]),
                "split": split,
                **{k: cluster[k] for k in ("target", "bias_type", "context")},
                **{column: by_label[label] for column, label in zip(CANDIDATES, LABELS)},
            }
            rows.append((where, row))
    return rows


def _flat_rows(path: Path, text: str) -> list[tuple[str, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        record = json_object(path, line, FLAT_KEYS, where=where, hint="; expected one cluster per line")
        row = {
            "cluster_id": f"line-{number}",
            "split": record["type"],
            **{k: record[k] for k in ("target", "bias_type", "context")},
            **{column: record[label] for column, label in zip(CANDIDATES, LABELS)},
        }
        rows.append((where, row))
    return rows


def _validate(path: Path, where: str, row: dict) -> None:
    for column, valid in (("split", SPLITS), ("bias_type", DOMAINS)):
        if row[column] not in valid:
            field = "type" if column == "split" else column
            raise BiasDataError(
                f"{path}: {where}, {field!r}: unknown value {row[column]!r}; expected one of: {_choices(valid)}"
            )
    for column in ("target", "context", *CANDIDATES):
        value = row[column]
        if not isinstance(value, str) or not value.strip():
            field = column.replace("_", "-") if column in CANDIDATES else column
            raise BiasDataError(f"{path}: {where}, {field!r}: {value!r} is not a non-empty string")
        if control_characters(value):
            field = column.replace("_", "-") if column in CANDIDATES else column
            raise BiasDataError(
                f"{path}: {where}, {field!r}: control character(s) {control_characters(value)} in the text; "
                "expected plain text"
            )
    if row["split"] == "intrasentence":
        if BLANK not in row["context"]:
            raise BiasDataError(
                f"{path}: {where}, 'context': {row['context']!r} has no {BLANK!r}; "
                "intrasentence contexts mark the word to fill in with BLANK"
            )
        for column in CANDIDATES:
            if not blank_filler(row["context"], row[column]):
                raise BiasDataError(
                    f"{path}: {where}, {column.replace('_', '-')!r}: {row[column]!r} has no word (other than "
                    f"punctuation) at the position of BLANK in the context {row['context']!r}"
                )


def blank_filler(context: str, sentence: str) -> str:
    """The word of ``sentence`` that fills the context's BLANK, as bias-bench derives it.

    The sentence's space-separated word at the index of the (last) context word holding
    BLANK, with punctuation removed; "" when the sentence has no word there.
    """
    index = max(i for i, word in enumerate(context.split(" ")) if BLANK in word)
    words = sentence.split(" ")
    return words[index].translate(str.maketrans("", "", string.punctuation)) if index < len(words) else ""


def normalize_domain(domain: str) -> str:
    key = str(domain).strip().lower()
    if key not in DOMAINS:
        raise BiasDataError(f"unknown StereoSet bias type {domain!r}; expected one of: {_choices(DOMAINS)}")
    return key


def stereoset_file(stereoset_split: str = "dev", data_dir: str | os.PathLike | None = None) -> Path:
    """The StereoSet file of ``stereoset_split``: ``dev`` (dev.json, or the flattened JSONL) or
    ``test`` (bias-bench's test.json, the split bias-bench and Gonçalves & Strubell evaluate)."""
    if stereoset_split not in FILE_SPLITS:
        raise BiasDataError(f"unknown stereoset_split {stereoset_split!r}; expected one of: {_choices(FILE_SPLITS)}")
    return benchmark_file(FILE_SPLITS[stereoset_split], data_dir=data_dir)


def stereoset_dataset(
    split: str,
    bias_type: str | None = None,
    data_dir: str | os.PathLike | None = None,
    stereoset_split: str = "dev",
    **_ignored,
) -> datasets.DatasetDict:
    """One StereoSet split as a ``DatasetDict`` with one split, ``"validation"`` (whichever file
    ``stereoset_split`` names: the harness reads it under that one name).

    For lm-eval's ``custom_dataset`` hook (extra metadata keys are ignored). ``split`` is
    ``intrasentence`` or ``intersentence``; ``bias_type`` keeps one domain.
    """
    import datasets

    if split not in SPLITS:
        raise BiasDataError(f"unknown StereoSet split {split!r}; expected one of: {_choices(SPLITS)}")
    path = stereoset_file(stereoset_split, data_dir=data_dir)
    frame = load_stereoset(path)
    keep = frame["split"] == split
    if bias_type is not None:
        keep &= frame["bias_type"] == normalize_domain(bias_type)
    frame = frame[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise BiasDataError(f"{path}: no {split} clusters" + (f" of bias type {bias_type!r}" if bias_type else ""))
    features = datasets.Features({c: datasets.Value("string") for c in OUTPUT_COLUMNS})
    dataset = datasets.Dataset.from_pandas(frame, features=features, preserve_index=False)
    return datasets.DatasetDict({"validation": dataset})
