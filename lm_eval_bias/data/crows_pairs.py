"""CrowS-Pairs (Nangia et al., EMNLP 2020): load and validate the authors' CSV.

The file (``crows_pairs_anonymized.csv``) has an unnamed index column, then
``sent_more``, ``sent_less``, ``stereo_antistereo``, ``bias_type``,
``annotations``, ``anon_writer``, ``anon_annotators``. Only the first four
named columns are used.

Rows in error messages are given as "data row N (index I)": N is the 1-based
record number after the header line, I the value of the CSV's index column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lm_eval_bias.data.sources import benchmark_file
from lm_eval_bias.data.text_files import control_characters, note_warning, utf8_error
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError
from lm_eval_bias.metrics.crows_pairs import DIRECTIONS  # the stereo_antistereo labels the metrics know

if TYPE_CHECKING:  # pragma: no cover
    import datasets

BIAS_TYPES = (
    "race-color",
    "gender",
    "socioeconomic",
    "nationality",
    "religion",
    "age",
    "sexual-orientation",
    "physical-appearance",
    "disability",
)
REQUIRED_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
OUTPUT_COLUMNS = ("pair_id", *REQUIRED_COLUMNS)


def _choices(values) -> str:
    return ", ".join(repr(v) for v in values)


def _row(position: int, index_value: object) -> str:
    return f"data row {position + 1} (index {index_value})"


def load_crows_pairs(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a CrowS-Pairs CSV in the authors' format.

    Returns a DataFrame with columns ``pair_id`` (the CSV's own index value,
    int), ``sent_more``, ``sent_less``, ``stereo_antistereo``, ``bias_type``,
    in file order. Sentences are returned verbatim; the two label columns are
    stripped of surrounding whitespace. A file without the leading index column
    gets ``pair_id`` 0, 1, 2, ... in file order.

    Raises :class:`BiasDataError` (naming the file, and the row / bad value /
    expected values where they apply) for an empty file, missing columns,
    unknown labels, empty sentences or a non-integer / duplicate index.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise BiasDataFileNotFoundError(f"{where}: CrowS-Pairs file not found")

    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BiasDataError(utf8_error(path, raw, exc, header_lines=1)) from None
    try:
        # dtype=str + keep_default_na=False: keep every field as written, so a
        # sentence such as "None" stays text and empty fields become "".
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BiasDataError(f"{where}: the file is empty (expected a CSV header and rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BiasDataError(f"{where}: not a readable CSV file: {exc}") from exc

    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise BiasDataError(
            f"{where}: missing required column(s) {_choices(missing)}; "
            f"required columns: {_choices(REQUIRED_COLUMNS)}; found: {_choices(frame.columns)}"
        )
    if len(frame) == 0:
        raise BiasDataError(f"{where}: the file has a header but no data rows")

    first = frame.columns[0]
    has_index = first == "" or first.startswith("Unnamed: ")
    if has_index:
        index = []
        for pos, raw in enumerate(frame[first].str.strip()):
            try:
                index.append(int(raw))
            except ValueError:
                raise BiasDataError(
                    f"{where}: data row {pos + 1}, index column: bad value {raw!r}; expected an integer pair id"
                ) from None
    else:
        index = list(range(len(frame)))

    seen: dict[int, int] = {}
    for pos, value in enumerate(index):
        if value in seen:
            raise BiasDataError(
                f"{where}: {_row(pos, value)}, index column: duplicate value {value} "
                f"(already used by data row {seen[value] + 1}); expected unique pair ids"
            )
        seen[value] = pos

    out = pd.DataFrame(
        {
            "pair_id": pd.Series(index, dtype="int64"),
            "sent_more": frame["sent_more"].to_numpy(),
            "sent_less": frame["sent_less"].to_numpy(),
            "stereo_antistereo": frame["stereo_antistereo"].str.strip().to_numpy(),
            "bias_type": frame["bias_type"].str.strip().to_numpy(),
        }
    )

    for pos, row in enumerate(out.itertuples(index=False)):
        for column in ("sent_more", "sent_less"):
            if not str(getattr(row, column)).strip():
                raise BiasDataError(
                    f"{where}: {_row(pos, row.pair_id)}, column {column!r}: "
                    f"empty sentence; expected a non-empty sentence"
                )
            found = control_characters(str(getattr(row, column)))
            if found:
                raise BiasDataError(
                    f"{where}: {_row(pos, row.pair_id)}, column {column!r}: control character(s) {found} in the "
                    "sentence; expected plain text (remove them, or fix the file's encoding)"
                )
        if row.sent_more == row.sent_less:
            raise BiasDataError(
                f"{where}: {_row(pos, row.pair_id)}: sent_more and sent_less are the same sentence "
                f"{row.sent_more[:60]!r}; a minimal pair needs two different sentences"
            )
        for column, valid in (("stereo_antistereo", DIRECTIONS), ("bias_type", BIAS_TYPES)):
            value = getattr(row, column)
            if value not in valid:
                raise BiasDataError(
                    f"{where}: {_row(pos, row.pair_id)}, column {column!r}: "
                    f"unknown value {value!r}; expected one of: {_choices(valid)}"
                )
    duplicates = duplicate_pairs(where, out)
    out.attrs["warnings"] = [message for _, message in duplicates]
    out.attrs["warned_pairs"] = [pair_ids for pair_ids, _ in duplicates]
    for message in out.attrs["warnings"]:
        _warn_once(message)
    return out


def duplicate_pairs(where: str, frame: pd.DataFrame) -> list[tuple[tuple[int, int], str]]:
    """One message per pair whose two sentences repeat an earlier pair's (legal, the authors' file has
    one: index 1459 and 1502; each copy counts as a pair, as in the paper).

    Args:
        where: the file, as messages name it.
        frame: the validated table (:func:`load_crows_pairs`).

    Returns:
        ((earlier pair_id, repeating pair_id), message) per repeat, in file order.
    """
    first: dict[tuple[str, str], int] = {}
    messages = []
    for pos, (pair_id, more, less) in enumerate(zip(frame["pair_id"], frame["sent_more"], frame["sent_less"])):
        if (more, less) in first:
            earlier = first[(more, less)]
            earlier_id = int(frame["pair_id"][earlier])
            messages.append(
                (
                    (earlier_id, int(pair_id)),
                    f"{where}: {_row(pos, pair_id)} repeats the pair of {_row(earlier, earlier_id)}; both are scored",
                )
            )
        else:
            first[(more, less)] = pos
    return messages


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Print a data warning once per process (each subtask reads the same file)."""
    if message not in _WARNED:
        _WARNED.add(message)
        import logging

        logging.getLogger("lm_eval.lm_eval_bias").warning("CrowS-Pairs: %s", message)


def normalize_bias_type(bias_type: str) -> str:
    """Map a bias type in CSV spelling ("race-color") or task-name spelling
    ("race_color", any case) to the CSV spelling; raise on an unknown one."""
    key = str(bias_type).strip().lower().replace("_", "-")
    if key not in BIAS_TYPES:
        raise BiasDataError(
            f"unknown CrowS-Pairs bias type {bias_type!r}; expected one of: "
            f"{_choices(BIAS_TYPES)} (underscores instead of hyphens are accepted too)"
        )
    return key


def crows_pairs_dataset(
    bias_type: str | None = None,
    data_dir: str | os.PathLike | None = None,
    **_ignored,
) -> datasets.DatasetDict:
    """CrowS-Pairs as a ``DatasetDict`` with one split, ``"test"``.

    For lm-eval's ``custom_dataset`` hook, which is called with
    ``**metadata, **dataset_kwargs`` (extra keys such as ``pretrained`` or
    ``version`` are ignored). ``bias_type`` keeps only one bias type (either
    spelling, see :func:`normalize_bias_type`); ``data_dir`` is a local data
    folder (see :func:`lm_eval_bias.data.sources.benchmark_file`).
    """
    import datasets

    wanted = normalize_bias_type(bias_type) if bias_type is not None else None
    path = benchmark_file("crows_pairs", data_dir=data_dir)
    frame = load_crows_pairs(path)
    kept = set(frame["pair_id"]) if wanted is None else set(frame["pair_id"][frame["bias_type"] == wanted])
    for pair_ids, message in zip(frame.attrs.get("warned_pairs", []), frame.attrs.get("warnings", [])):
        if kept & set(pair_ids):  # the task reading these pairs records the warning (configs.<task>.metadata)
            note_warning(message)
    if wanted is not None:
        frame = frame[frame["bias_type"] == wanted].reset_index(drop=True)
        if len(frame) == 0:
            raise BiasDataError(f"{path}: no pairs of bias type {wanted!r}")
    features = datasets.Features(
        {
            "pair_id": datasets.Value("int64"),
            **{c: datasets.Value("string") for c in REQUIRED_COLUMNS},
        }
    )
    test = datasets.Dataset.from_pandas(frame, features=features, preserve_index=False)
    return datasets.DatasetDict({"test": test})
