"""Where benchmark data files come from: a local data folder, or a cached download.

Every benchmark goes through :func:`benchmark_file`. The lookup order is

1. the ``data_dir`` argument,
2. the ``LM_EVAL_BIAS_DATA_DIR`` environment variable,
3. the canonical URL in :data:`CANONICAL_FILES`, downloaded once and cached by
   the ``datasets`` download machinery (so later offline runs reuse the cache).

A data folder is laid out like the authors' releases, e.g.::

    <data dir>/crows_pairs/crows_pairs_anonymized.csv
    <data dir>/stereoset/dev.json          (or the flattened stereoset/stereoset_dev.jsonl)
    <data dir>/stereoset/test.json         (the test split, read under the paper protocol)
    <data dir>/seat/sent-weat6.jsonl       (one file per SEAT test)
    <data dir>/bbq/Age.jsonl               (one file per BBQ category)
    <data dir>/holistic_bias/v1.1/nouns.json  (and descriptors, sentence_templates, standalone_noun_phrases)

A relative path may hold ``{fields}`` that the caller fills in (``benchmark_file("seat",
test="sent-weat6")``); :data:`ALTERNATIVE_FILES` lists other names accepted in a data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError

DATA_DIR_ENV = "LM_EVAL_BIAS_DATA_DIR"

#: benchmark name -> (path relative to a data folder, canonical download URL).
CANONICAL_FILES: dict[str, tuple[str, str]] = {
    "crows_pairs": (
        "crows_pairs/crows_pairs_anonymized.csv",
        "https://raw.githubusercontent.com/nyu-mll/crows-pairs/master/data/crows_pairs_anonymized.csv",
    ),
    "stereoset": (
        "stereoset/dev.json",
        "https://raw.githubusercontent.com/moinnadeem/StereoSet/master/data/dev.json",
    ),
    # the test split bias-bench and Gonçalves & Strubell evaluate (same nested format as dev.json)
    "stereoset_test": (
        "stereoset/test.json",
        "https://raw.githubusercontent.com/McGill-NLP/bias-bench/main/data/stereoset/test.json",
    ),
    "seat": (
        "seat/{test}.jsonl",
        "https://raw.githubusercontent.com/McGill-NLP/bias-bench/main/data/seat/{test}.jsonl",
    ),
    # one file per category (lm_eval_bias.data.bbq.CATEGORIES)
    "bbq": (
        "bbq/{category}.jsonl",
        "https://raw.githubusercontent.com/nyu-mll/BBQ/main/data/{category}.jsonl",
    ),
    # the four lists HolisticBias v1.1 builds its sentences from (lm_eval_bias.data.holistic_bias.FILES)
    "holistic_bias": (
        "holistic_bias/v1.1/{file}.json",
        "https://raw.githubusercontent.com/facebookresearch/ResponsibleNLP/main/holistic_bias/dataset/v1.1/{file}.json",
    ),
}

#: benchmark name -> further relative paths accepted in a data folder, tried in order
#: after the canonical one (never downloaded).
ALTERNATIVE_FILES: dict[str, tuple[str, ...]] = {
    "stereoset": ("stereoset/stereoset_dev.jsonl",),
}


def _layout() -> str:
    lines = []
    for name, (relative, _) in CANONICAL_FILES.items():
        alternatives = "".join(f" (or {alt})" for alt in ALTERNATIVE_FILES.get(name, ()))
        lines.append(f"    <folder>/{relative.replace('{', '<').replace('}', '>')}{alternatives}")
    return "\n".join(lines)


def _canonical(name: str) -> tuple[str, str]:
    try:
        return CANONICAL_FILES[name]
    except KeyError:
        raise BiasDataError(
            f"unknown benchmark data name {name!r}; expected one of: " + ", ".join(repr(k) for k in CANONICAL_FILES)
        ) from None


def data_dir_from_env() -> Path | None:
    """The folder named by ``LM_EVAL_BIAS_DATA_DIR``, or None when unset/empty."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _download(url: str) -> str:
    """Download ``url`` once through ``datasets`` and return the cached local path.

    Offline (``HF_DATASETS_OFFLINE=1``) an already cached copy is returned.
    """
    from datasets import DownloadConfig, DownloadManager

    manager = DownloadManager(download_config=DownloadConfig(max_retries=1))
    return manager.download(url)


def benchmark_file(name: str, data_dir: str | os.PathLike | None = None, **fields: str) -> Path:
    """Local path of benchmark ``name``'s data file (see :data:`CANONICAL_FILES`).

    With ``data_dir`` (or ``$LM_EVAL_BIAS_DATA_DIR``) set, returns
    ``<dir>/<relative path>`` (or the first of :data:`ALTERNATIVE_FILES` that exists)
    and raises :class:`BiasDataFileNotFoundError` if none exists. Otherwise downloads
    (or reuses the cached download of) the canonical URL; a failed download raises
    :class:`BiasDataFileNotFoundError` explaining how to use a local folder.
    ``fields`` fill the ``{placeholders}`` of the relative path and the URL.
    """
    relative, url = _canonical(name)
    try:
        relative, url = relative.format(**fields), url.format(**fields)
        alternatives = [alt.format(**fields) for alt in ALTERNATIVE_FILES.get(name, ())]
    except KeyError as missing:
        raise BiasDataError(f"benchmark data {name!r} needs the field {missing} (e.g. test=...)") from None

    if data_dir is not None and str(data_dir).strip():
        folder, origin = Path(data_dir).expanduser(), "the data_dir argument"
    else:
        folder, origin = data_dir_from_env(), f"${DATA_DIR_ENV}"

    if folder is not None:
        path = folder / relative
        for candidate in (path, *(folder / alt for alt in alternatives)):
            if candidate.is_file():
                return candidate
        if folder.exists() and not folder.is_dir():
            raise BiasDataError(
                f"{name} data: {str(folder)!r} (taken from {origin}) is not a folder but a file; "
                f"point {DATA_DIR_ENV} (or data_dir) at the folder that holds {relative}"
            )
        problem = (
            f"the folder {str(folder)!r} does not exist" if not folder.is_dir() else f"{str(path)!r} does not exist"
        )
        raise BiasDataFileNotFoundError(
            f"{name} data file not found: {problem} (data folder taken from {origin}; "
            f"{DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV, '')!r}). "
            f"Expected layout:\n{_layout()}\n"
            f"Point {DATA_DIR_ENV} (or data_dir) at a folder laid out like this, "
            f"or set neither to download {url}."
        )

    try:
        return Path(_download(url))
    except BiasDataError:
        raise
    except Exception as exc:  # offline, no network, HTTP error, ...
        raise BiasDataFileNotFoundError(
            f"could not download the {name} data from {url} "
            f"({type(exc).__name__}: {exc}) and no local data folder is set. "
            f"Set {DATA_DIR_ENV} to a folder laid out like:\n{_layout()}\n"
            f"e.g. {DATA_DIR_ENV}=/path/to/data with the file at "
            f"/path/to/data/{relative}."
        ) from exc
