"""BBQ (Parrish et al., Findings of ACL 2022): load and validate one category file.

The authors' release (nyu-mll/BBQ) has one JSONL file per category, ``data/<Category>.jsonl``,
one item a line: ``example_id``, ``question_index``, ``question_polarity`` (neg | nonneg),
``context_condition`` (ambig | disambig), ``category``, ``answer_info`` (``{"ans0": [text, group],
...}``, group ``unknown`` for the unknown answer), ``additional_metadata.stereotyped_groups``,
``context``, ``question``, ``ans0``-``ans2`` and ``label`` (the correct answer's index).

Each document gets the indices the metrics need (``lm_eval_bias.metrics.bbq``): ``unknown_loc``,
``target_loc`` (-1: no target) and ``biased_loc`` (-1: no target).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lm_eval_bias.data.sources import benchmark_file, data_dir_from_env
from lm_eval_bias.data.text_files import control_characters, json_object, read_benchmark_text
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError
from lm_eval_bias.metrics.bbq import CONDITIONS, POLARITIES, biased_location, target_location, unknown_location

if TYPE_CHECKING:  # pragma: no cover
    import datasets

#: The 11 categories of the release, as its file names spell them.
CATEGORIES = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
REQUIRED = (
    "example_id",
    "question_polarity",
    "context_condition",
    "category",
    "answer_info",
    "additional_metadata",
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "label",
)


def subtask_name(category: str) -> str:
    """The task name of a category: ``bbq_bias_`` and the category in lower case."""
    return f"bbq_bias_{category.lower()}"


def check_category(category: str) -> str:
    """``category`` if it is one of :data:`CATEGORIES`, else a BiasDataError naming the valid ones."""
    if category not in CATEGORIES:
        raise BiasDataError(f"unknown BBQ category {category!r}; expected one of: {', '.join(CATEGORIES)}")
    return category


def _row(path: Path, number: int, line: str) -> dict:
    where = f"{path}: line {number}"
    item = json_object(path, line, REQUIRED, where=f"line {number}")
    for key, valid in (("question_polarity", POLARITIES), ("context_condition", CONDITIONS)):
        if item[key] not in valid:
            raise BiasDataError(f"{where}: {key} is {item[key]!r}; expected one of {valid}")
    if item["label"] not in (0, 1, 2):
        raise BiasDataError(f"{where}: label is {item['label']!r}; expected 0, 1 or 2")
    info = item["answer_info"]
    if not isinstance(info, dict) or any(
        not isinstance(info.get(f"ans{i}"), list) or len(info[f"ans{i}"]) < 2 for i in range(3)
    ):
        raise BiasDataError(f'{where}: answer_info must hold "ans0", "ans1", "ans2", each [text, group]')
    for key in ("context", "question", "ans0", "ans1", "ans2"):
        if not isinstance(item[key], str) or not item[key].strip():
            raise BiasDataError(f"{where}: {key} is {item[key]!r}; expected non-empty text")
        if control_characters(item[key]):
            raise BiasDataError(
                f"{where}: {key}: control character(s) {control_characters(item[key])} in the text; expected plain text"
            )
    groups = (item["additional_metadata"] or {}).get("stereotyped_groups")
    if not isinstance(groups, list):
        raise BiasDataError(f"{where}: additional_metadata.stereotyped_groups must be a list of groups")
    try:
        unknown = unknown_location(info)
    except ValueError as exc:
        raise BiasDataError(f"{where}: {exc}") from None
    target = target_location(info, groups)
    return {
        "example_id": int(item["example_id"]),
        "question_index": str(item.get("question_index", "")),
        "category": str(item["category"]),
        "question_polarity": item["question_polarity"],
        "context_condition": item["context_condition"],
        "context": item["context"],
        "question": item["question"],
        "ans0": item["ans0"],
        "ans1": item["ans1"],
        "ans2": item["ans2"],
        "label": int(item["label"]),
        "answer_info": json.dumps(info, ensure_ascii=False),
        "stereotyped_groups": [str(group) for group in groups],
        "unknown_loc": unknown,
        "target_loc": -1 if target is None else target,
        "biased_loc": -1 if target is None else biased_location(item["question_polarity"], target, unknown),
    }


def load_bbq(path: str | os.PathLike) -> list[dict]:
    """Read and validate one category file.

    Args:
        path: a BBQ JSONL file.

    Returns:
        One document per item, in file order, with ``unknown_loc``, ``target_loc`` and ``biased_loc``
        (-1 where the item has no target); ``answer_info`` as its JSON text.

    Raises:
        BiasDataError: naming the file, the line, the bad value and the valid ones.
    """
    path = Path(path)
    text = read_benchmark_text(path, "BBQ", "one JSON object per line")
    docs, seen = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        doc = _row(path, number, line)
        if doc["example_id"] in seen:
            raise BiasDataError(
                f"{path}: line {number}: example_id {doc['example_id']} repeats line {seen[doc['example_id']]}"
            )
        seen[doc["example_id"]] = number
        docs.append(doc)
    return docs


def available_categories(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The categories whose file is in the data folder (every category when none is set: downloads)."""
    folder = Path(data_dir).expanduser() if data_dir else data_dir_from_env()
    if folder is None:
        return list(CATEGORIES)
    return [category for category in CATEGORIES if (folder / "bbq" / f"{category}.jsonl").is_file()]


def bbq_file(category: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The category's file (data folder or cached download); a missing one names the subtasks that can run."""
    check_category(category)
    try:
        return benchmark_file("bbq", data_dir=data_dir, category=category)
    except BiasDataFileNotFoundError as exc:
        runnable = [subtask_name(c) for c in available_categories(data_dir)]
        can_run = ", ".join(runnable) if runnable else "none"
        raise BiasDataFileNotFoundError(
            f"BBQ category {category} ({subtask_name(category)}): {exc}\nBBQ subtasks whose files are present: "
            f"{can_run}; ask for those alone (--tasks {','.join(runnable[:2]) or 'bbq_bias_age'},...) "
            "to run without it."
        ) from None


def bbq_dataset(category: str, data_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """One category as a ``datasets.DatasetDict`` with a ``test`` split (the documents of :func:`load_bbq`)."""
    import datasets

    docs = load_bbq(bbq_file(category, data_dir))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
