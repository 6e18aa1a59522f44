"""SEAT (May et al., NAACL 2019): load and validate one association test.

A test file (as distributed with bias-bench, ``data/seat/<test>.jsonl``) is one JSON
object with the keys ``targ1``, ``targ2``, ``attr1``, ``attr2``, each
``{"category": str, "examples": [str, ...]}``: two target sets X, Y and two attribute
sets A, B. The permutation test needs |X| = |Y|. bias-bench keys encodings by sentence, so
a sentence repeated within a set would silently count once there; here it is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from lm_eval_bias.data.sources import benchmark_file
from lm_eval_bias.data.text_files import control_characters, json_object, read_benchmark_text
from lm_eval_bias.errors import BiasDataError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

ROLES = ("targ1", "targ2", "attr1", "attr2")

#: The 17 tests of the study, by bias type: test name -> data file (the sentence
#: versions, ``sent-*``, as May et al. 2019 and bias-bench use them).
TESTS: dict[str, dict[str, str]] = {
    "gender": {name: f"sent-{name}" for name in ("weat6", "weat6b", "weat7", "weat7b", "weat8", "weat8b")},
    "race": {
        name: f"sent-{name}"
        for name in (
            "angry_black_woman_stereotype",
            "angry_black_woman_stereotype_b",
            "weat3",
            "weat3b",
            "weat4",
            "weat5",
            "weat5b",
        )
    },
    "religion": {name: f"sent-{name}" for name in ("religion1", "religion1b", "religion2", "religion2b")},
}


def load_seat_test(path: str | os.PathLike) -> dict[str, dict]:
    """Read and validate one SEAT test: ``{role: {"category": str, "examples": [str, ...]}}``
    for the roles targ1, targ2, attr1, attr2 (other keys are ignored)."""
    path = Path(path)
    text = read_benchmark_text(path, "SEAT test", f"one JSON object with keys {', '.join(ROLES)}")
    test = json_object(path, text, ROLES)
    out = {}
    for role in ROLES:
        entry = test[role]
        if not isinstance(entry, dict) or not isinstance(entry.get("examples"), list):
            raise BiasDataError(f'{path}: {role!r} must be an object {{"category": ..., "examples": [...]}}')
        examples = entry["examples"]
        if not examples:
            raise BiasDataError(f"{path}: {role!r} has no examples")
        seen: dict[str, int] = {}
        for index, example in enumerate(examples):
            if not isinstance(example, str) or not example.strip():
                raise BiasDataError(f"{path}: {role}.examples[{index}]: {example!r} is not a non-empty string")
            if control_characters(example):
                raise BiasDataError(
                    f"{path}: {role}.examples[{index}]: control character(s) {control_characters(example)} in "
                    "the sentence; expected plain text"
                )
            if example in seen:
                raise BiasDataError(
                    f"{path}: {role}.examples[{index}]: {example!r} repeats examples[{seen[example]}]; "
                    "expected distinct examples"
                )
            seen[example] = index
        out[role] = {"category": str(entry.get("category", role)), "examples": list(examples)}
    if len(out["targ1"]["examples"]) != len(out["targ2"]["examples"]):
        raise BiasDataError(
            f"{path}: targ1 has {len(out['targ1']['examples'])} examples and targ2 "
            f"{len(out['targ2']['examples'])}; the permutation test needs target sets of equal size"
        )
    return out


def seat_dataset(
    test: str,
    file: str | None = None,
    data_dir: str | os.PathLike | None = None,
    **_ignored,
) -> datasets.DatasetDict:
    """One SEAT test as a ``DatasetDict`` with one split, ``"test"``, holding one document.

    For lm-eval's ``custom_dataset`` hook. ``file`` is the data file's name without
    ``.jsonl`` (default: ``test``).
    """
    import datasets

    path = benchmark_file("seat", data_dir=data_dir, test=file or test)
    sets = load_seat_test(path)
    row = {"test": test, "file": Path(path).stem}
    for role in ROLES:
        row[f"{role}_category"] = sets[role]["category"]
        row[role] = sets[role]["examples"]
    features = datasets.Features(
        {
            "test": datasets.Value("string"),
            "file": datasets.Value("string"),
            **{f"{role}_category": datasets.Value("string") for role in ROLES},
            **{role: datasets.Sequence(datasets.Value("string")) for role in ROLES},
        }
    )
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([row], features=features)})
