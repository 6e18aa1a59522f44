"""SEAT test files: validation, where they are taken from, and the 17 tests of the study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.stereoset_seat import seat_test_content
from lm_eval_bias.data import sources
from lm_eval_bias.data.seat import ROLES, TESTS, load_seat_test, seat_dataset
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError


def write(tmp_path, content, name="sent-weat6") -> Path:
    path = tmp_path / "seat" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_seventeen_tests_of_the_study():
    assert {bias: len(tests) for bias, tests in TESTS.items()} == {"gender": 6, "race": 7, "religion": 4}
    assert TESTS["race"]["angry_black_woman_stereotype_b"] == "sent-angry_black_woman_stereotype_b"
    assert all(file == f"sent-{name}" for tests in TESTS.values() for name, file in tests.items())


def test_loads_the_four_sets(tmp_path):
    sets = load_seat_test(write(tmp_path, seat_test_content(0)))
    assert list(sets) == list(ROLES)
    assert sets["targ1"] == {"category": "Targets0A", "examples": seat_test_content(0)["targ1"]["examples"]}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("attr2"), r"missing key\(s\) 'attr2'; required keys: 'targ1', 'targ2', 'attr1', 'attr2'"),
        (lambda t: t["targ2"]["examples"].pop(), "targ1 has 3 examples and targ2 2; the permutation test needs"),
        (lambda t: t["attr1"].update(examples=[]), "'attr1' has no examples"),
        (
            lambda t: t["attr1"]["examples"].append(t["attr1"]["examples"][0]),
            r"attr1.examples\[3\]: .* repeats examples\[0\]",
        ),
        (lambda t: t["targ1"]["examples"].__setitem__(1, " "), r"targ1.examples\[1\]: ' ' is not a non-empty"),
        (lambda t: t.update(targ1=["a", "b"]), r"'targ1' must be an object"),
    ],
)
def test_bad_file_names_the_problem(tmp_path, change, message):
    content = seat_test_content(0)
    change(content)
    with pytest.raises(BiasDataError, match=message) as err:
        load_seat_test(write(tmp_path, content))
    assert "sent-weat6.jsonl" in str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(BiasDataError, match="the file is empty"):
        load_seat_test(write(tmp_path, ""))
    with pytest.raises(BiasDataError, match="not valid JSON"):
        load_seat_test(write(tmp_path, "{"))
    with pytest.raises(BiasDataFileNotFoundError):
        load_seat_test(tmp_path / "nothing.jsonl")


def test_source_routing(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    path = write(tmp_path, seat_test_content(1), name="sent-religion1")
    assert sources.benchmark_file("seat", data_dir=tmp_path, test="sent-religion1") == path
    seen = []
    monkeypatch.setattr(sources, "_download", lambda url: seen.append(url) or str(path))
    assert sources.benchmark_file("seat", test="sent-religion1") == path
    assert seen == ["https://raw.githubusercontent.com/McGill-NLP/bias-bench/main/data/seat/sent-religion1.jsonl"]
    with pytest.raises(BiasDataError, match="needs the field 'test'"):
        sources.benchmark_file("seat", data_dir=tmp_path)
    with pytest.raises(BiasDataFileNotFoundError, match=r"seat/<test>.jsonl"):
        sources.benchmark_file("seat", data_dir=tmp_path, test="weat99")


def test_dataset_is_one_document(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
    write(tmp_path, seat_test_content(2), name="sent-weat7")
    docs = seat_dataset("weat7", file="sent-weat7")["test"]
    assert len(docs) == 1 and docs[0]["test"] == "weat7" and docs[0]["file"] == "sent-weat7"
    assert docs[0]["attr2"] == seat_test_content(2)["attr2"]["examples"]
