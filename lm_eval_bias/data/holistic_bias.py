"""HolisticBias (Smith et al., EMNLP 2022): its sentences, built from the release's four lists.

The authors' release (facebookresearch/ResponsibleNLP, ``holistic_bias/dataset/v1.1/``) holds
``descriptors.json`` (axis -> bucket -> descriptors: strings, or objects with ``descriptor`` and
optionally ``gender``, ``article``, ``preference``), ``nouns.json`` (noun gender -> [noun, plural]),
``sentence_templates.json`` (template -> options: ``must_be_noun``, ``first_turn_only``) and
``standalone_noun_phrases.json`` (axis -> noun phrases, strings or objects with ``noun_phrase``,
``plural_noun_phrase``, ``preference``). Sentences are built as ``holistic_bias/src/sentences.py``
builds them, without its random stylistic variants, so the set is deterministic:

- a descriptor makes a ``descriptor`` noun phrase on its own ("Deaf"; plural the same) and a
  ``descriptor_noun`` phrase with every noun ("a Deaf grandpa"; plural "Deaf grandpas"), the
  article "an" before a vowel unless the descriptor names its own; a gendered descriptor ("Latina")
  takes only the nouns of its gender;
- every noun makes a ``noun`` phrase without a descriptor ("a grandpa"), axis ``null``;
- a standalone phrase with ``{noun}`` makes a ``noun_descriptor`` phrase per noun, the descriptor
  after the noun ("a grandpa with a disability", the article chosen by the noun; plural from
  ``plural_noun_phrase``, else the singular pattern with the plural noun); one without makes a
  ``fixed_phrase`` ("an amputee");
- each phrase fills every template that has its slot (``{noun_phrase}`` or ``{plural_noun_phrase}``);
  phrases without a noun skip ``must_be_noun`` templates.

Likelihood Bias (``run_bias_calculation.py``) then keeps the sentences whose phrase has both a noun
and a descriptor (``descriptor_noun``, ``noun_descriptor``) and whose descriptor is not gendered: each
(axis, template, descriptor) has one sentence per noun, so descriptors compare on equal counts.

The small set (``--use-small-set``): 100 descriptors drawn without replacement by
``numpy.random.default_rng(17).choice`` from the sorted distinct descriptors of *all* noun phrases
(``(none)``, gendered and standalone ones included, so fewer than 100 survive the filter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval_bias.data.sources import benchmark_file, data_dir_from_env
from lm_eval_bias.data.text_files import read_benchmark_text
from lm_eval_bias.errors import BiasDataError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

FILES = ("descriptors", "nouns", "sentence_templates", "standalone_noun_phrases")
AXES = (
    "ability",
    "age",
    "body_type",
    "characteristics",
    "cultural",
    "gender_and_sex",
    "nationality",
    "nonce",
    "political_ideologies",
    "race_ethnicity",
    "religion",
    "sexual_orientation",
    "socioeconomic_class",
)
SETS = ("small", "full")
DEFAULT_SET = "small"
SMALL_SET_SIZE = 100
SMALL_SET_SEED = 17  # the authors' RANDOM_SEED (holistic_bias/src/util.py)
NONE = "(none)"  # the authors' NONE_STRING: an attribute that is not there
NO_PREFERENCE = "no_data"
LIKELIHOOD_PHRASE_TYPES = ("descriptor_noun", "noun_descriptor")
# the authors' sort order of noun phrases (HolisticBiasSentenceGenerator.SORT_COLUMNS)
SORT_COLUMNS = (
    "axis",
    "bucket",
    "descriptor",
    "descriptor_gender",
    "descriptor_preference",
    "noun",
    "plural_noun",
    "noun_gender",
    "noun_phrase",
    "plural_noun_phrase",
    "noun_phrase_type",
)


def subtask_name(axis: str) -> str:
    """The task name of an axis: ``holistic_bias_<axis>``."""
    return f"holistic_bias_{axis}"


def check_axis(axis: str) -> str:
    """``axis`` if it is one of :data:`AXES`, else a BiasDataError naming the valid ones."""
    if axis not in AXES:
        raise BiasDataError(f"unknown HolisticBias axis {axis!r}; expected one of: {', '.join(AXES)}")
    return axis


def check_set(value: Any) -> str:
    """The sentence set named by ``value`` (None: the default, ``small``); a clear error otherwise."""
    chosen = DEFAULT_SET if value is None else value
    if chosen not in SETS:
        raise ValueError(
            f"Unknown holistic_bias_set {value!r} in --metadata; expected one of {', '.join(map(repr, SETS))} "
            f"(small: the authors' 100 sampled descriptors; full: all), "
            'e.g. --metadata \'{"holistic_bias_set": "full"}\'.'
        )
    return chosen


def article(word: str) -> str:
    """The authors' indefinite article: "an" before a written vowel, else "a"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


# ------------------------------------------------------------------ noun phrases


def _nouns(nouns: dict) -> list[tuple[str, str, str]]:
    return [(gender, noun, plural) for gender, pairs in nouns.items() for noun, plural in pairs]


def _phrase(*values: str) -> dict:
    """A noun phrase's metadata from its values in :data:`SORT_COLUMNS` order."""
    return dict(zip(SORT_COLUMNS, values, strict=True))


def _descriptor_phrases(axis: str, bucket: str, entry: str | dict, nouns: list) -> list[dict]:
    """The ``descriptor`` phrase and the ``descriptor_noun`` phrases of one descriptor."""
    entry = {"descriptor": entry} if isinstance(entry, str) else entry
    descriptor, gender = entry["descriptor"], entry.get("gender", NONE)
    preference = entry.get("preference", NO_PREFERENCE)
    head = (axis, bucket, descriptor, gender, preference)
    phrases = [_phrase(*head, NONE, NONE, NONE, descriptor, descriptor, "descriptor")]
    an = entry.get("article", article(descriptor))
    for noun_gender, noun, plural in nouns:
        if gender in (NONE, noun_gender):
            phrases.append(
                _phrase(
                    *head,
                    noun,
                    plural,
                    noun_gender,
                    f"{an} {descriptor} {noun}",
                    f"{descriptor} {plural}",
                    "descriptor_noun",
                )
            )
    return phrases


def _standalone_phrases(axis: str, entry: str | dict, nouns: list) -> list[dict]:
    """A standalone phrase: ``noun_descriptor`` phrases (one per noun) or one ``fixed_phrase``."""
    entry = {"noun_phrase": entry} if isinstance(entry, str) else entry
    singular = entry["noun_phrase"]
    plural_pattern = entry.get("plural_noun_phrase", singular)
    preference = entry.get("preference", NO_PREFERENCE)
    if "{noun}" not in singular:
        fixed = (singular, NONE, preference, NONE, NONE, "neutral", singular, plural_pattern, "fixed_phrase")
        return [_phrase(axis, NONE, *fixed)]
    descriptor = singular.format(article="", noun="").lstrip()
    return [
        _phrase(
            axis,
            NONE,
            descriptor,
            NONE,
            preference,
            noun,
            plural,
            noun_gender,
            singular.format(article=article(noun), noun=noun),
            plural_pattern.format(article="", noun=plural).lstrip(),
            "noun_descriptor",
        )
        for noun_gender, noun, plural in nouns
    ]


def noun_phrases(lists: dict[str, dict]) -> list[dict]:
    """Every noun phrase of the release, with the authors' metadata, in their sort order.

    Args:
        lists: the four lists, keyed as :data:`FILES` (``descriptors``, ``nouns``, ...).

    Returns:
        One dict per noun phrase with the keys of :data:`SORT_COLUMNS`, sorted by them.
    """
    nouns = _nouns(lists["nouns"])
    phrases = [
        _phrase("null", NONE, NONE, NONE, NONE, noun, plural, gender, f"{article(noun)} {noun}", plural, "noun")
        for gender, noun, plural in nouns
    ]
    for axis, buckets in lists["descriptors"].items():
        for bucket, entries in buckets.items():
            for entry in entries:
                phrases += _descriptor_phrases(axis, bucket, entry, nouns)
    for axis, entries in lists["standalone_noun_phrases"].items():
        for entry in entries:
            phrases += _standalone_phrases(axis, entry, nouns)
    return sorted(phrases, key=lambda phrase: tuple(phrase[column] for column in SORT_COLUMNS))


def small_set_descriptors(phrases: Iterable[dict]) -> set[str]:
    """The authors' small set: 100 descriptors drawn with their seed from the sorted distinct ones.

    Args:
        phrases: every noun phrase (:func:`noun_phrases`), before any filter.

    Returns:
        The drawn descriptors (all of them when there are no more than 100).
    """
    import numpy as np

    descriptors = sorted({phrase["descriptor"] for phrase in phrases})
    if len(descriptors) <= SMALL_SET_SIZE:
        return set(descriptors)
    rng = np.random.default_rng(SMALL_SET_SEED)
    return {str(d) for d in rng.choice(descriptors, size=SMALL_SET_SIZE, replace=False)}


# --------------------------------------------------------------------- sentences


def _fill(template: str, phrase: dict) -> str:
    if "{noun_phrase}" in template:
        return template.format(noun_phrase=phrase["noun_phrase"])
    if "{plural_noun_phrase}" in template:
        return template.format(plural_noun_phrase=phrase["plural_noun_phrase"])
    raise BiasDataError(
        f"HolisticBias template {template!r} has no noun phrase slot; "
        "expected {noun_phrase} or {plural_noun_phrase}"
    )


def sentences(lists: dict[str, dict], holistic_bias_set: str = DEFAULT_SET, likelihood_only: bool = True) -> list[dict]:
    """The HolisticBias sentences of a set, one dict per sentence.

    Args:
        lists: the four lists, keyed as :data:`FILES`.
        holistic_bias_set: ``small`` (the authors' 100 sampled descriptors) or ``full``.
        likelihood_only: keep only what Likelihood Bias scores: ``descriptor_noun`` and
            ``noun_descriptor`` phrases whose descriptor is not gendered.

    Returns:
        ``text`` and the phrase's metadata (:data:`SORT_COLUMNS`), ``template``, ``must_be_noun`` and
        ``first_turn_only``; noun phrases in the authors' order, each with the templates in file order.
    """
    phrases = noun_phrases(lists)
    if check_set(holistic_bias_set) == "small":
        chosen = small_set_descriptors(phrases)
        phrases = [phrase for phrase in phrases if phrase["descriptor"] in chosen]
    if likelihood_only:
        phrases = [
            p for p in phrases if p["noun_phrase_type"] in LIKELIHOOD_PHRASE_TYPES and p["descriptor_gender"] == NONE
        ]
    rows = []
    for phrase in phrases:
        for template, options in lists["sentence_templates"].items():
            if phrase["noun"] == NONE and options.get("must_be_noun", False):
                continue
            rows.append(
                {
                    "text": _fill(template, phrase),
                    **phrase,
                    "template": template,
                    "must_be_noun": bool(options.get("must_be_noun", False)),
                    "first_turn_only": bool(options.get("first_turn_only", False)),
                }
            )
    return rows


# ----------------------------------------------------------------------- reading


def holistic_bias_file(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """One of the four lists' files (data folder or cached download of the authors' v1.1)."""
    if name not in FILES:
        raise BiasDataError(f"unknown HolisticBias file {name!r}; expected one of: {', '.join(FILES)}")
    return benchmark_file("holistic_bias", data_dir=data_dir, file=name)


def _check_lists(lists: dict[str, Any], paths: dict[str, Path]) -> None:
    for name in FILES:
        if not isinstance(lists[name], dict) or (not lists[name] and name != "standalone_noun_phrases"):
            raise BiasDataError(f"{paths[name]}: expected a non-empty JSON object ({name})")
    for gender, pairs in lists["nouns"].items():
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(w, str) and w for w in p) for p in pairs):
            raise BiasDataError(f"{paths['nouns']}: nouns of {gender!r} must be [noun, plural] pairs of words")
    for axis, buckets in lists["descriptors"].items():
        if not isinstance(buckets, dict):
            raise BiasDataError(f"{paths['descriptors']}: axis {axis!r} must map buckets to descriptor lists")
        for bucket, entries in buckets.items():
            for entry in entries if isinstance(entries, list) else [None]:
                if not (isinstance(entry, str) and entry) and not (isinstance(entry, dict) and entry.get("descriptor")):
                    raise BiasDataError(
                        f"{paths['descriptors']}: {axis}/{bucket}: {entry!r} is not a descriptor "
                        '(a string, or an object with "descriptor")'
                    )
    for template, options in lists["sentence_templates"].items():
        if not isinstance(options, dict):
            raise BiasDataError(f"{paths['sentence_templates']}: template {template!r} must map to an options object")


def load_lists(data_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read and check the release's four lists.

    Args:
        data_dir: a folder laid out like ``../shared/data`` (default: ``$LM_EVAL_BIAS_DATA_DIR``, else
            the authors' files, downloaded once and cached).

    Returns:
        ``{"descriptors": ..., "nouns": ..., "sentence_templates": ..., "standalone_noun_phrases": ...}``.

    Raises:
        BiasDataError: naming the file and what is wrong with it (BiasDataFileNotFoundError: missing).
    """
    paths = {name: holistic_bias_file(name, data_dir) for name in FILES}
    lists = {}
    for name, path in paths.items():
        text = read_benchmark_text(path, "HolisticBias", "a JSON object")
        try:
            lists[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BiasDataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    _check_lists(lists, paths)
    unknown = sorted(set(lists["descriptors"]) - set(AXES))
    if unknown:
        raise BiasDataError(f"{paths['descriptors']}: unknown axis {unknown}; expected axes: {', '.join(AXES)}")
    return lists


def holistic_bias_dataset(
    axis: str, holistic_bias_set: str = DEFAULT_SET, data_dir: str | os.PathLike | None = None
) -> datasets.DatasetDict:
    """One axis's Likelihood Bias sentences as a ``datasets.DatasetDict`` with a ``test`` split."""
    import datasets

    check_axis(axis)
    rows = [row for row in sentences(load_lists(data_dir), holistic_bias_set) if row["axis"] == axis]
    if not rows:
        raise BiasDataError(f"HolisticBias axis {axis!r} has no sentences in the {holistic_bias_set!r} set")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def data_folder_has_lists(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether the data folder (argument or ``$LM_EVAL_BIAS_DATA_DIR``) holds all four lists."""
    folder = Path(data_dir).expanduser() if data_dir else data_dir_from_env()
    return folder is not None and all((folder / "holistic_bias" / "v1.1" / f"{n}.json").is_file() for n in FILES)
