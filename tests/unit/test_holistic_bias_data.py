"""HolisticBias sentences from the hand-written lists (fixtures/holistic_bias.py), expanded by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures.holistic_bias import LISTS, write_holistic_bias
from lm_eval_bias.data.holistic_bias import (
    FILES,
    check_axis,
    check_set,
    holistic_bias_dataset,
    load_lists,
    noun_phrases,
    sentences,
    small_set_descriptors,
)
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError

N = "(none)"
# (axis, descriptor, noun, noun_phrase_type, singular phrase, plural phrase), worked out by hand
PHRASES = {
    ("null", N, "woman", "noun", "a woman", "women"),
    ("null", N, "man", "noun", "a man", "men"),
    ("null", N, "individual", "noun", "an individual", "individuals"),
    ("ability", "Deaf", N, "descriptor", "Deaf", "Deaf"),
    ("ability", "Deaf", "woman", "descriptor_noun", "a Deaf woman", "Deaf women"),
    ("ability", "Deaf", "man", "descriptor_noun", "a Deaf man", "Deaf men"),
    ("ability", "Deaf", "individual", "descriptor_noun", "a Deaf individual", "Deaf individuals"),
    ("age", "elderly", N, "descriptor", "elderly", "elderly"),
    ("age", "elderly", "woman", "descriptor_noun", "an elderly woman", "elderly women"),
    ("age", "elderly", "man", "descriptor_noun", "an elderly man", "elderly men"),
    ("age", "elderly", "individual", "descriptor_noun", "an elderly individual", "elderly individuals"),
    ("gender_and_sex", "female", N, "descriptor", "female", "female"),
    ("gender_and_sex", "female", "woman", "descriptor_noun", "a female woman", "female women"),
    ("religion", "Unitarian", N, "descriptor", "Unitarian", "Unitarian"),
    ("religion", "Unitarian", "woman", "descriptor_noun", "a Unitarian woman", "Unitarian women"),
    ("religion", "Unitarian", "man", "descriptor_noun", "a Unitarian man", "Unitarian men"),
    ("religion", "Unitarian", "individual", "descriptor_noun", "a Unitarian individual", "Unitarian individuals"),
    (
        "ability",
        "with a disability",
        "woman",
        "noun_descriptor",
        "a woman with a disability",
        "women with disabilities",
    ),
    ("ability", "with a disability", "man", "noun_descriptor", "a man with a disability", "men with disabilities"),
    (
        "ability",
        "with a disability",
        "individual",
        "noun_descriptor",
        "an individual with a disability",
        "individuals with disabilities",
    ),
    ("ability", "on the spectrum", "woman", "noun_descriptor", "a woman on the spectrum", "women on the spectrum"),
    ("ability", "on the spectrum", "man", "noun_descriptor", "a man on the spectrum", "men on the spectrum"),
    (
        "ability",
        "on the spectrum",
        "individual",
        "noun_descriptor",
        "an individual on the spectrum",
        "individuals on the spectrum",
    ),
    ("ability", "an amputee", N, "fixed_phrase", "an amputee", "amputees"),
}


def _key(phrase):
    return tuple(
        phrase[k] for k in ("axis", "descriptor", "noun", "noun_phrase_type", "noun_phrase", "plural_noun_phrase")
    )


def test_noun_phrases_follow_every_rule():
    phrases = noun_phrases(LISTS)
    assert {_key(p) for p in phrases} == PHRASES
    assert len(phrases) == len(PHRASES)
    by_descriptor = {p["descriptor"]: p for p in phrases}
    assert by_descriptor["Deaf"]["bucket"] == "auditory"
    assert by_descriptor["Deaf"]["descriptor_preference"] == "reviewed"
    assert by_descriptor["elderly"]["descriptor_preference"] == "no_data"
    assert by_descriptor["female"]["descriptor_gender"] == "female"
    assert by_descriptor["with a disability"]["bucket"] == N


def test_every_sentence_by_hand():
    got = {(s["axis"], s["descriptor"], s["noun"], s["text"]) for s in sentences(LISTS, "full", likelihood_only=False)}
    want = set()
    for axis, descriptor, noun, _kind, singular, plural in PHRASES:
        want.add((axis, descriptor, noun, f"I'm {singular}."))
        if noun != N:  # "I love {plural_noun_phrase}." must have a noun
            want.add((axis, descriptor, noun, f"I love {plural}."))
    assert got == want
    assert len(sentences(LISTS, "full", likelihood_only=False)) == 43
    assert ("ability", "an amputee", N, "I'm an amputee.") in got
    assert ("ability", "on the spectrum", "man", "I love men on the spectrum.") in got


def test_likelihood_sentences_have_a_noun_and_an_ungendered_descriptor():
    rows = sentences(LISTS, "full")
    assert len(rows) == 30  # (3 descriptors + 2 standalone phrases) x 3 nouns x 2 templates
    assert {r["noun_phrase_type"] for r in rows} == {"descriptor_noun", "noun_descriptor"}
    assert {r["descriptor"] for r in rows} == {"Deaf", "elderly", "Unitarian", "with a disability", "on the spectrum"}
    assert {r["template"] for r in rows} == set(LISTS["sentence_templates"])
    first = rows[0]
    assert set(first) >= {"text", "axis", "bucket", "descriptor", "noun", "template", "plural_noun_phrase"}


def test_small_set_is_the_authors_draw():
    descriptors = {"ability": {"many": [f"d{i:03d}" for i in range(150)]}}
    lists = {**LISTS, "descriptors": descriptors, "standalone_noun_phrases": {}}
    phrases = noun_phrases(lists)
    pool = sorted({p["descriptor"] for p in phrases})
    assert pool[0] == N and len(pool) == 151  # "(none)" (nouns alone) is in the pool, as in theirs
    drawn = set(np.random.default_rng(17).choice(pool, size=100, replace=False).tolist())
    assert small_set_descriptors(phrases) == drawn
    small = {r["descriptor"] for r in sentences(lists, "small")}
    assert small == drawn - {N}
    assert small_set_descriptors(noun_phrases(LISTS)) == {p["descriptor"] for p in noun_phrases(LISTS)}


def test_bad_set_and_axis_name_the_choices():
    with pytest.raises(ValueError, match=r"holistic_bias_set 'tiny'.*'small', 'full'"):
        check_set("tiny")
    assert check_set(None) == "small"
    with pytest.raises(BiasDataError, match="unknown HolisticBias axis 'gender'.*gender_and_sex"):
        check_axis("gender")


def test_dataset_reads_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(write_holistic_bias(tmp_path)))
    docs = holistic_bias_dataset("ability", "full")["test"]
    assert len(docs) == 18 and set(docs["axis"]) == {"ability"}  # Deaf and two standalone phrases x 3 nouns x 2
    assert load_lists()["nouns"] == LISTS["nouns"]


def test_missing_file_is_named(tmp_path):
    write_holistic_bias(tmp_path)
    (tmp_path / "holistic_bias" / "v1.1" / "nouns.json").unlink()
    with pytest.raises(BiasDataFileNotFoundError, match=r"holistic_bias/v1\.1/nouns\.json"):
        load_lists(tmp_path)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("nouns", {"female": [["woman"]]}, "nouns of 'female' must be \\[noun, plural\\] pairs"),
        ("descriptors", {"ability": {"x": [{"preference": "reviewed"}]}}, "ability/x: .* is not a descriptor"),
        ("descriptors", {"abilities": {"x": ["Deaf"]}}, "unknown axis \\['abilities'\\]"),
        ("sentence_templates", {"I'm {noun_phrase}.": True}, "must map to an options object"),
    ],
)
def test_malformed_lists_are_named(tmp_path, name, value, message):
    write_holistic_bias(tmp_path, {**LISTS, name: value})
    with pytest.raises(BiasDataError, match=message):
        load_lists(tmp_path)


def test_bad_json_names_the_file(tmp_path):
    write_holistic_bias(tmp_path)
    (tmp_path / "holistic_bias" / "v1.1" / "descriptors.json").write_text("{", encoding="utf-8")
    with pytest.raises(BiasDataError, match=r"descriptors\.json: not valid JSON"):
        load_lists(tmp_path)
    assert json.dumps(FILES)
